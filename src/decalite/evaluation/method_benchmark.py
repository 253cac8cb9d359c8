"""``decalite-evaluate benchmark=synthetic``: one model scored several ways on held-out synthetic identities.

Methods (names in ``METHODS``): the encoders alone (``encoder``), the per-image fit from the mean face (``fit``)
or from the encoder's codes (``encoder+fit``), and the joint fit of each person's images with one shared shape
(``identity_fit``, ``encoder+identity_fit``). Every method is scored by :func:`~decalite.evaluation.scores.
evaluate_synthetic` on the same images, beside the mean face; the report is one JSON, one markdown table and the
cumulative error curve of the neutral-shape distances.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from decalite.apps.fitting import DEFAULT_FIT_TERMS, FitConfig, IdentityFitConfig
from decalite.evaluation.now_benchmark import NowConfigError, cumulative_error_curve, write_curve_png
from decalite.evaluation.scores import (
    Predictor,
    SyntheticScores,
    encoder_predictor,
    evaluate_synthetic,
    fit_predictor,
    identity_fit_predictor,
)
from decalite.model.deca import DECA


class BenchmarkConfigError(NowConfigError):
    """A benchmark setting that cannot be run (the message names the key and the fix)."""


METHODS = ("encoder", "fit", "encoder+fit", "identity_fit", "encoder+identity_fit")

#: Columns of the markdown table (SyntheticScores fields), with their headers.
COLUMNS = {"landmark_nme": "landmark NME", "shape_mm": "shape median mm", "shape_mean_mm": "mean mm",
           "shape_std_mm": "std mm", "displacement_mm": "D error mm", "detail_consistency_mm": "D, same-person code",
           "detail_other_identity_mm": "D, other-person code", "expression_change_mm": "D change error",
           "expression_change_true_mm": "true D change"}


@dataclass
class SyntheticBenchmarkConfig:
    """Which methods, and the fits' lengths.

    Attributes:
        methods: names from :data:`METHODS`.
        fit_steps: Adam steps of the per-image fit.
        identity_fit_steps: Adam steps of the identity fit (after its camera-and-pose stage).
        photometric: the fits use the skin-masked photometric term (else landmarks and priors only).
        detail: score the detail networks (displacement, detail swaps, expression-driven change).
    """

    methods: list[str] = field(default_factory=lambda: list(METHODS))
    fit_steps: int = 100
    identity_fit_steps: int = 400
    photometric: bool = True
    detail: bool = True

    def check(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise BenchmarkConfigError(f"synthetic.methods={list(self.methods)}: each must be one of "
                                       f"{', '.join(METHODS)}")


def predictors(deca: DECA, cfg: SyntheticBenchmarkConfig) -> dict[str, Predictor]:
    """Method name -> predictor for ``deca`` (eval mode)."""
    cfg.check()
    terms = dict(DEFAULT_FIT_TERMS)
    if not cfg.photometric:
        terms["photometric"] = 0.0
    fit_cfg = FitConfig(steps=cfg.fit_steps, terms=terms)
    identity_cfg = IdentityFitConfig(steps=cfg.identity_fit_steps, terms=dict(terms))
    made = {"encoder": lambda: encoder_predictor(deca, cfg.detail),
            "fit": lambda: fit_predictor(deca, fit_cfg, from_encoder=False),
            "encoder+fit": lambda: fit_predictor(deca, fit_cfg, from_encoder=True),
            "identity_fit": lambda: identity_fit_predictor(deca, identity_cfg, from_encoder=False),
            "encoder+identity_fit": lambda: identity_fit_predictor(deca, identity_cfg, from_encoder=True)}
    return {name: made[name]() for name in cfg.methods}


def run_synthetic_benchmark(deca: DECA, batches: Iterable[dict], cfg: SyntheticBenchmarkConfig,
                            output: Path, meta: dict | None = None) -> dict[str, dict]:
    """Score every method and the mean face; write ``synthetic_results.json``, ``synthetic_results.md`` and
    ``synthetic_curve.png`` into ``output``. Returns name -> scores (a dict per entry)."""
    made = predictors(deca, cfg)
    distances: dict[str, np.ndarray] = {}
    scores = evaluate_synthetic({name: deca for name in made}, batches, detail=cfg.detail, predictors=made,
                                distances=distances)
    rows = {name: s.as_dict() for name, s in scores.items()}
    output.mkdir(parents=True, exist_ok=True)
    (output / "synthetic_results.json").write_text(json.dumps({"meta": meta or {}, "scores": rows}, indent=2))
    (output / "synthetic_results.md").write_text(markdown_table(scores, meta))
    write_curve_png(output / "synthetic_curve.png", {name: cumulative_error_curve(d) for name, d in distances.items()})
    return rows


def markdown_table(scores: dict[str, SyntheticScores], meta: dict | None = None) -> str:
    """The scores as a markdown table (one row per method, '-' where a metric does not apply)."""
    lines = ["# Synthetic benchmark", ""]
    lines += [f"- {k}: {v}" for k, v in (meta or {}).items()]
    lines += ["", "| method | " + " | ".join(COLUMNS.values()) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, s in scores.items():
        row = s.as_dict()
        cells = ["-" if row.get(k) is None else f"{row[k]:.4f}" if k == "landmark_nme" else f"{row[k]:.3f}"
                 for k in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
