"""``decalite-evaluate``: the synthetic benchmark (see :mod:`decalite.evaluation.scores`) on the held-out
identities of the experiment's synthetic data, for the untrained networks, a checkpoint and the mean face.

    decalite-evaluate model.checkpoint=outputs/train/synthetic_cpu/detail/checkpoints/last.ckpt

The checkpoint records the head, network sizes and synthetic data it was trained with; they are used unless the
command line sets them (a contradicting value is an error naming both).

Writes ``<output>/train_eval.json`` as ``{"before": {...}, "after": {...}, "mean_face": {...}}`` and prints a table.

``benchmark=synthetic`` scores one checkpoint by several methods (encoder, per-image fit, identity fit; see
:mod:`decalite.evaluation.method_benchmark`) on the held-out identities, into ``output``.

``benchmark=now`` runs the NoW benchmark on a folder of predictions instead (:mod:`decalite.evaluation.now_benchmark`):

    decalite-evaluate benchmark=now now.image_list=imagepathsvalidation.txt now.scans=scans \
        now.scan_landmarks=scans_lmks_onlypp now.predictions=predictions output=outputs/now
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from decalite.cli import schema
from decalite.cli._hydra import CONF_PATH
from decalite.cli.schema import TrainConfig, typed, typed_or_exit
from decalite.cli.trained import adopt_or_exit
from decalite.evaluation.method_benchmark import SyntheticBenchmarkConfig
from decalite.evaluation.now_benchmark import NowConfig

log = logging.getLogger("decalite.evaluate")


@dataclass(kw_only=True)
class EvaluateConfig(TrainConfig):
    """``decalite-evaluate`` (``conf/evaluate.yaml``): train.yaml's groups (the model, head and synthetic data a
    checkpoint is scored with) and these.

    Attributes:
        benchmark: "demo" (before / after / mean face), "synthetic" (methods on one checkpoint) or "now".
        max_identities: held-out identities scored (the val split, 4 images each).
        detail: also score the detail networks (benchmark=demo).
        output: the report folder (every benchmark).
        synthetic: benchmark=synthetic's methods and fits. now: benchmark=now's inputs and protocol.
    """

    benchmark: str
    max_identities: int
    detail: bool
    output: str
    synthetic: SyntheticBenchmarkConfig = field(default_factory=SyntheticBenchmarkConfig)
    now: NowConfig = field(default_factory=NowConfig)


schema.register({"evaluate": EvaluateConfig})

KEYS = ("landmark_nme", "shape_mm", "displacement_mm", "detail_consistency_mm", "detail_other_identity_mm",
        "expression_change_pearson")


def table(scores: dict[str, dict]) -> str:
    """A fixed-width text table: one row per model, one column per metric."""
    width = max(12, *(len(name) + 2 for name in scores))
    lines = [" " * width + "".join(f"{k:>24s}" for k in KEYS)]
    for name, row in scores.items():
        cells = "".join(f"{'-' if row.get(k) is None else format(row[k], '.4f'):>24s}" for k in KEYS)
        lines.append(f"{name:{width}s}{cells}")
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict[str, dict]:
    from decalite.cli.train import ensure_synthetic_data, stage_config
    from decalite.evaluation.heldout import heldout_batches, write_heldout
    from decalite.evaluation.scores import evaluate_synthetic, truth_predictor
    from decalite.model.factory import build_deca
    from decalite.nets.checkpoints import load_weights
    from decalite.training.coarse import set_prior_bias

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    pl.seed_everything(int(cfg.seed))
    ensure_synthetic_data(cfg)

    def model(checkpoint: str | None):
        untrained = OmegaConf.merge(cfg.model, {"checkpoint": None})  # loaded below, strictly
        deca, _ = build_deca(cfg.flame, untrained, cfg.renderer, cfg.paths)
        if checkpoint:
            load_weights(checkpoint, deca.networks(), strict=True)
        else:  # the state training starts from (see CoarseModule)
            stage = stage_config(cfg)
            set_prior_bias(deca.coarse_encoder, deca.sizes, tuple(stage.init_cam), stage.init_light)
        return deca.eval()

    torch.manual_seed(int(cfg.seed))
    models = {"before": model(None), "after": model(str(cfg.model.checkpoint))}
    # coarse_from=truth (an oracle-coarse detail run): both networks' details are scored on the true coarse codes
    oracle = stage_config(cfg).coarse_from == "truth"
    predictors = {name: truth_predictor(deca) for name, deca in models.items()} if oracle else None
    root, k, size = cfg.data.synthetic.root, int(cfg.data.k), int(cfg.data.image_size)
    batches = heldout_batches(root, k, size, int(cfg.max_identities))
    scores = {name: s.as_dict() for name, s in
              evaluate_synthetic(models, batches, detail=bool(cfg.detail), predictors=predictors).items()}
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_eval.json").write_text(json.dumps(scores, indent=2))
    write_heldout(models["after"], next(heldout_batches(root, k, size, 1)), out / "heldout")
    log.info("held-out synthetic identities (%d), encoder only:\n%s", int(cfg.max_identities), table(scores))
    return scores


def run_now(cfg: DictConfig) -> dict:
    """``benchmark=now``: the ``now`` block as :class:`NowConfig`, scored into ``cfg.output``; exits with status 1
    when no prediction could be scored (the report is written all the same)."""
    from decalite.evaluation.now_benchmark import run_now_benchmark

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    summary = run_now_benchmark(typed(cfg.now, NowConfig), Path(cfg.output))
    if not summary["overall"]["scored"]:
        log.error("NoW: no prediction was scored (see %s)", Path(cfg.output) / "now_results.md")
        raise SystemExit(1)
    return summary


def run_synthetic(cfg: DictConfig) -> dict[str, dict]:
    """``benchmark=synthetic``: the checkpoint scored by each method of ``synthetic.methods`` (encoder, fits) on
    ``max_identities`` held-out identities of the experiment's synthetic data, into ``cfg.output``."""
    from decalite.cli.train import ensure_synthetic_data
    from decalite.evaluation.heldout import heldout_batches
    from decalite.evaluation.method_benchmark import run_synthetic_benchmark
    from decalite.model.factory import build_deca
    from decalite.nets.checkpoints import load_weights

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    pl.seed_everything(int(cfg.seed))
    ensure_synthetic_data(cfg)
    bench = typed(cfg.synthetic, SyntheticBenchmarkConfig)
    bench.check()
    deca, _ = build_deca(cfg.flame, OmegaConf.merge(cfg.model, {"checkpoint": None}), cfg.renderer, cfg.paths)
    load_weights(str(cfg.model.checkpoint), deca.networks(), strict=True)
    deca.eval()
    batches = heldout_batches(cfg.data.synthetic.root, int(cfg.data.k), int(cfg.data.image_size),
                              int(cfg.max_identities))
    meta = {"checkpoint": str(cfg.model.checkpoint), "data": str(cfg.data.synthetic.root) + "/val",
            "identities": int(cfg.max_identities), "images_per_identity": int(cfg.data.k),
            "image_size": int(cfg.data.image_size), "fit_steps": bench.fit_steps,
            "identity_fit_steps": bench.identity_fit_steps, "photometric_fit": bench.photometric}
    scores = run_synthetic_benchmark(deca, batches, bench, Path(cfg.output), meta)
    log.info("synthetic benchmark (%d held-out identities):\n%s", int(cfg.max_identities), table(scores))
    return scores


BENCHMARKS = {"demo": run, "now": run_now, "synthetic": run_synthetic}
#: The benchmarks that score a checkpoint (``model.checkpoint=``; the NoW benchmark scores a folder of predictions).
CHECKPOINT_BENCHMARKS = ("demo", "synthetic")


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from decalite.evaluation.now_benchmark import NowConfigError

    if cfg.benchmark not in BENCHMARKS:
        log.error("benchmark=%s is not known: pass one of %s", cfg.benchmark, ", ".join(BENCHMARKS))
        raise SystemExit(2)
    if cfg.benchmark in CHECKPOINT_BENCHMARKS:  # before any work: the checkpoint, then its settings
        if not cfg.model.checkpoint:
            log.error("model.checkpoint is not set: benchmark=%s scores a trained checkpoint, e.g. "
                      "model.checkpoint=outputs/train/synthetic_cpu/detail/checkpoints/last.ckpt", cfg.benchmark)
            raise SystemExit(2)
        adopt_or_exit(cfg, str(cfg.model.checkpoint), "evaluate", log)  # its head, sizes and data: nothing else to set
    typed_or_exit(cfg, EvaluateConfig, log)  # every key, type and mandatory value, before any work
    try:
        BENCHMARKS[cfg.benchmark](cfg)
    except NowConfigError as err:  # also the synthetic benchmark's BenchmarkConfigError
        log.error("%s", err)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
