"""benchmarks/report.py: one JSON + one markdown table per benchmark run, naming the machine; the merge of a run's
reports into README.md; a real bench script writing its report (smallest settings)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_machine_names_the_hardware_not_the_host(report):
    m = report.machine()
    for key in ("cpu", "logical_cores", "usable_cores", "memory_gib", "load_1min", "utc", "torch", "torch_threads",
                "cuda", "nvdiffrast", "git_commit"):
        assert key in m
    assert m["usable_cores"] >= 1 and m["torch_threads"] >= 1
    host = os.uname().nodename
    assert len(host) < 6 or host not in json.dumps(m)


def test_report_writes_json_and_markdown(report, tmp_path):
    r = report.Report("speed")
    r.add(batch=1, ms_per_image=12.5, backend="torch")
    r.add(batch=8, ms_per_image=3.25, backend="torch", peak_mb=100.0)
    r.note("a note")
    json_path, md_path = r.write(tmp_path / "run")
    assert json_path == tmp_path / "run" / "speed.json" and md_path == tmp_path / "run" / "speed.md"
    data = json.loads(json_path.read_text())
    assert data["benchmark"] == "speed" and data["notes"] == ["a note"]
    assert data["rows"] == [{"batch": 1, "ms_per_image": 12.5, "backend": "torch"},
                            {"batch": 8, "ms_per_image": 3.25, "backend": "torch", "peak_mb": 100.0}]
    assert data["machine"]["cpu"] == report.machine()["cpu"]
    md = md_path.read_text()
    assert "Machine: " + data["machine"]["cpu"] in md
    assert "| batch | ms_per_image | backend | peak_mb |" in md
    assert "| 8 | 3.25 | torch | 100.00 |" in md and "| 1 | 12.50 | torch |  |" in md


def test_collect_merges_reports(report, tmp_path):
    for name, value in (("alpha", 1.5), ("beta", 2.5)):
        r = report.Report(name)
        r.add(value=value)
        r.write(tmp_path)
    (tmp_path / "other.json").write_text('{"not": "a report"}')
    readme = report.collect(tmp_path)
    assert readme == tmp_path / "README.md"
    text = readme.read_text()
    assert "## alpha" in text and "## beta" in text and text.index("## alpha") < text.index("## beta")
    assert "| 1.50 |" in text and "| 2.50 |" in text and text.count("Machine: ") == 2
    assert "other.json" in text


def test_bench_render_writes_its_report(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(BENCH / "bench_render.py"), "--batches", "1", "--size", "32",
                           "--repeats", "1", "--threads", "1", "--cpu-only", "--flame", "ict", "generated",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "forward" in proc.stdout  # the printed figures stay
    data = json.loads((tmp_path / "render.json").read_text())
    assert data["benchmark"] == "render" and data["machine"]["torch_threads"] == 1
    ict, generated = data["rows"]  # one row per head, ICT first
    assert (ict["flame"], generated["flame"]) == ("ict", "generated")
    assert ict["vertices"] > generated["vertices"]  # the ICT head is the larger mesh (10,000 vs 5,824)
    for row in (ict, generated):
        assert row["backend"] == "torch" and row["device"] == "cpu" and row["batch"] == 1 and row["size"] == 32
        assert row["forward_ms_per_image"] > 0 and row["peak_mb"] > 0
    assert "| ict | 10000 | torch | cpu | 1 | 32 |" in (tmp_path / "render.md").read_text()


def test_columns_pick_the_table_and_the_json_keeps_every_field(report, tmp_path):
    r = report.Report("wide", columns=["batch", "images_per_s"])
    r.add(batch=4, images_per_s=1234.5, pretrained=["identity", "mrf"], finite=True)
    json_path, md_path = r.write(tmp_path)
    assert json.loads(json_path.read_text())["rows"][0]["pretrained"] == ["identity", "mrf"]
    md = md_path.read_text()
    assert "| batch | images_per_s |\n|---|---|\n| 4 | 1,234 |" in md and "pretrained" not in md
    assert report.peak_memory_mb() > 0 and report.peak_memory_mb("cpu") > 0
