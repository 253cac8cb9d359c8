"""Benchmark reports: one JSON + one markdown table per benchmark and run, naming the machine they ran on.

    report = Report("render")            # the machine is described when the report is made
    report.add(backend="torch", batch=8, forward_ms=3.2)
    report.write("outputs/bench")        # -> outputs/bench/render.json, outputs/bench/render.md
    collect("outputs/bench")             # every report of the folder -> outputs/bench/README.md

The bench scripts import it as a sibling module (``python benchmarks/bench_x.py`` puts benchmarks/ on sys.path).
``python benchmarks/report.py DIR`` runs :func:`collect`. The machine description holds no host name.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import subprocess
from pathlib import Path

DEFAULT_OUT = "outputs/bench"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def _nvdiffrast() -> bool:
    try:
        from decalite.render.raster_nvdiffrast import is_available
    except ImportError:
        return importlib.util.find_spec("nvdiffrast") is not None
    return bool(is_available())


def machine() -> dict:
    """What the figures ran on: CPU, cores, memory, torch, CUDA, nvdiffrast, load at start, time, commit."""
    info: dict = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git_commit(),
    }
    try:
        import torch
    except ImportError:
        return info
    info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(), cuda=None, cuda_memory_gib=None)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(cuda=props.name, cuda_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda_devices=torch.cuda.device_count())
    info["nvdiffrast"] = _nvdiffrast()
    return info


def machine_line(m: dict) -> str:
    """One line naming the machine, for the markdown above a table."""
    parts = [f"{m.get('cpu')}, {m.get('logical_cores')} logical cores ({m.get('usable_cores')} usable)"]
    if m.get("memory_gib") is not None:
        parts.append(f"{m['memory_gib']} GiB RAM")
    if "torch" in m:
        parts.append(f"torch {m['torch']} ({m.get('torch_threads')} threads)")
        gpu = f"{m['cuda']} ({m['cuda_memory_gib']} GiB)" if m.get("cuda") else "none"
        parts.append(f"CUDA: {gpu}, nvdiffrast: {'yes' if m.get('nvdiffrast') else 'no'}")
    parts.append(f"1-min load at start {m.get('load_1min')}")
    parts.append(f"{m.get('utc')}, commit {m.get('git_commit') or '?'}")
    return "Machine: " + "; ".join(parts)


def peak_memory_mb(device=None) -> float:
    """Peak memory so far in MB: ``torch.cuda.max_memory_allocated`` on a CUDA device, else this process's peak
    resident set (``ru_maxrss``, kB on Linux)."""
    if device is not None and getattr(device, "type", str(device).split(":")[0]) == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # nan
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A markdown table of ``rows``; the columns are ``columns`` or every key, in order of first appearance."""
    if not rows:
        return "(no rows)\n"
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _section(data: dict, heading: str = "#") -> str:
    text = f"{heading} {data['benchmark']}\n\n{machine_line(data.get('machine', {}))}\n\n"
    text += "".join(f"- {note}\n" for note in data.get("notes", []))
    text += "\n" if data.get("notes") else ""
    return text + markdown_table(data.get("rows", []), data.get("columns"))


class Report:
    """The rows of one benchmark run; ``write`` puts ``<name>.json`` and ``<name>.md`` into a folder."""

    def __init__(self, name: str, columns: list[str] | None = None) -> None:
        self.name, self.columns = name, columns
        self.machine = machine()
        self.rows: list[dict] = []
        self.notes: list[str] = []

    def add(self, **row) -> dict:
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)

    def data(self) -> dict:
        data = {"benchmark": self.name, "machine": self.machine, "rows": self.rows, "notes": self.notes}
        if self.columns:
            data["columns"] = self.columns  # the markdown table's columns; the JSON rows keep every field
        return data

    def write(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``<out_dir>/<name>.json`` and ``<out_dir>/<name>.md``; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        data = self.data()
        json_path, md_path = out / f"{self.name}.json", out / f"{self.name}.md"
        json_path.write_text(json.dumps(data, indent=1, default=str) + "\n")
        md_path.write_text(_section(data))
        return json_path, md_path


def collect(out_dir: str | os.PathLike) -> Path:
    """Merge every report (``*.json`` with a benchmark and rows) of ``out_dir`` into ``<out_dir>/README.md``, one
    section per benchmark; returns its path."""
    out = Path(out_dir)
    sections, skipped, commits = [], [], set()
    for path in sorted(out.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            skipped.append(path.name)
            continue
        if isinstance(data, dict) and "benchmark" in data and isinstance(data.get("rows"), list):
            sections.append(_section(data, "##"))
            commits.add(data.get("machine", {}).get("git_commit"))
        else:
            skipped.append(path.name)
    text = f"# Benchmarks ({len(sections)} reports)\n\nFigures of one `make bench` run; printed, never asserted.\n\n"
    if len(commits) > 1:
        text += f"Note: these reports come from {len(commits)} commits (an earlier run's files are in the folder).\n\n"
    text += "\n".join(sections)
    if skipped:
        text += "\nOther files in this folder: " + ", ".join(skipped) + "\n"
    readme = out / "README.md"
    out.mkdir(parents=True, exist_ok=True)
    readme.write_text(text)
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description="Merge the reports of a bench run into DIR/README.md.")
    parser.add_argument("out", nargs="?", default=DEFAULT_OUT)
    args = parser.parse_args()
    print(f"wrote {collect(args.out)}")


if __name__ == "__main__":
    main()
