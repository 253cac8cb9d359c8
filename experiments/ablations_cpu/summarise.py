"""Collect the ablation runs of run.sh into one table: mean and std over seeds of the held-out scores, and each
ablation's difference from its baseline in units of the seed spread.

    python experiments/ablations_cpu/summarise.py outputs/ablations_cpu   # writes results.json and results.md there
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

#: ablation -> the run it is compared with (same stage, same start checkpoint, same seeds)
BASELINE = {"synthetic_cpu": None, "ablation_no_shape_consistency": "synthetic_cpu",
            "synthetic_cpu_detail": None, "ablation_no_detail_consistency": "synthetic_cpu_detail",
            "ablation_no_symmetry": "synthetic_cpu_detail"}
COARSE_KEYS = ("landmark_nme", "shape_mm")
DETAIL_KEYS = ("displacement_mm", "detail_consistency_mm", "detail_other_identity_mm", "expression_change_mm")


def collect(root: Path) -> dict[str, dict[str, list[float]]]:
    """experiment -> metric -> one value per seed (the trained model's held-out score, "after")."""
    runs: dict[str, dict[str, list[float]]] = {}
    for exp in BASELINE:
        for path in sorted((root / exp).glob("seed*/eval/train_eval.json")):
            after = json.loads(path.read_text())["after"]
            for key, value in after.items():
                if value is not None:
                    runs.setdefault(exp, {}).setdefault(key, []).append(float(value))
    return runs


def reference(root: Path) -> dict[str, float]:
    """The mean face (and D = 0) on the same held-out images: every run is scored on the same ones."""
    for path in sorted(root.glob("*/seed*/eval/train_eval.json")):
        return {k: v for k, v in json.loads(path.read_text())["mean_face"].items() if v is not None}
    return {}


def summarise(runs: dict[str, dict[str, list[float]]], mean_face: dict[str, float]) -> tuple[dict, str]:
    summary: dict[str, dict] = {"mean_face": mean_face}
    lines = ["| run | baseline | seeds | " + " | ".join(COARSE_KEYS + DETAIL_KEYS) + " |",
             "|---|---|---|" + "---|" * len(COARSE_KEYS + DETAIL_KEYS),
             "| mean face (D = 0) | - | - | " + " | ".join(f"{mean_face[k]:.4f}" if k in mean_face else "-"
                                                     for k in COARSE_KEYS + DETAIL_KEYS) + " |"]
    for exp, metrics in runs.items():
        base = BASELINE[exp]
        keys = COARSE_KEYS if exp in ("synthetic_cpu", "ablation_no_shape_consistency") else COARSE_KEYS + DETAIL_KEYS
        row, cells = {}, []
        for key in COARSE_KEYS + DETAIL_KEYS:
            values = metrics.get(key, [])
            if key not in keys or not values:
                cells.append("-")
                continue
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            row[key] = {"values": values, "mean": mean, "std": std}
            cell = f"{mean:.4f} ± {std:.4f}"
            if base and key in runs.get(base, {}):
                ref = runs[base][key]
                spread = max(std, statistics.stdev(ref) if len(ref) > 1 else 0.0)
                diff = mean - statistics.fmean(ref)
                row[key]["minus_baseline"] = diff
                cell += f" ({diff:+.4f}" + (f", {diff / spread:+.1f} sd)" if spread > 0 else ")")
            cells.append(cell)
        seeds = max((len(v) for v in metrics.values()), default=0)
        summary[exp] = {"baseline": base, "seeds": seeds, "metrics": row}
        lines.append(f"| {exp} | {base or '-'} | {seeds} | " + " | ".join(cells) + " |")
    return summary, "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    root = Path(argv[1] if len(argv) > 1 else "outputs/ablations_cpu")
    runs = collect(root)
    if not runs:
        raise SystemExit(f"no results under {root}: run experiments/ablations_cpu/run.sh first")
    summary, table = summarise(runs, reference(root))
    (root / "results.json").write_text(json.dumps(summary, indent=2))
    (root / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main(sys.argv)
