"""``decalite-train`` / ``make train``: one training stage from the Hydra config (see conf/train.yaml).

    decalite-train experiment=synthetic_cpu                       # coarse, synthetic data, CPU
    decalite-train experiment=synthetic_cpu_detail                # detail, from the coarse checkpoint
    decalite-train -m experiment=ablation_no_symmetry,ablation_no_mrf
    decalite-train experiment=deca_coarse data=shards data.root=/data/shards trainer=ddp trainer.devices=8

The app only builds objects from the config and calls :func:`decalite.training.train.train`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from decalite.cli._hydra import CONF_PATH

log = logging.getLogger("decalite.train")


def stage_config(cfg: DictConfig):
    """The typed :class:`~decalite.training.config.StageConfig` of the composed config."""
    from decalite.cli.trained import trained_settings
    from decalite.training.config import LossConfig, OptimConfig, StageConfig

    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    return StageConfig(
        stage=str(cfg.stage),
        loss=LossConfig(**{**loss, "terms": {k: float(v) for k, v in loss["terms"].items()}}),
        optim=OptimConfig(**{**optim, "betas": tuple(optim["betas"])}),
        init_from=cfg.init_from,
        init_cam=tuple(float(v) for v in cfg.init_cam),
        init_light=float(cfg.init_light),
        coarse_from=str(cfg.get("coarse_from", "encoder")),
        settings=trained_settings(cfg),
    )


def ensure_synthetic_data(cfg: DictConfig) -> None:
    """Write the run's synthetic train/val splits when absent or unfinished (:func:`decalite.synth.splits.
    ensure_splits`): ``data.synthetic`` holds any :class:`~decalite.synth.SyntheticConfig` field (pose ranges,
    light, detail world, ...) besides the folder and identity counts; the UV size and code sizes come from the
    renderer and flame groups."""
    from decalite.flame.default import resolve_flame_dir
    from decalite.synth.splits import ensure_splits, synthetic_config

    spec = OmegaConf.to_container(cfg.data.synthetic, resolve=True)
    assets_dir = resolve_flame_dir(cfg.flame.dir, cache_dir=cfg.paths.cache_dir, seed=int(cfg.flame.seed),
                                  embedded=str(cfg.flame.embedded))
    base = synthetic_config(spec, uv_size=int(cfg.renderer.uv_size), n_shape=int(cfg.flame.n_shape),
                            n_exp=int(cfg.flame.n_exp), n_tex=int(cfg.flame.n_tex))
    ensure_splits(spec["root"], base, int(spec["train_identities"]), int(spec["val_identities"]),
                  int(spec["identities_per_shard"]), assets_dir)


def run(cfg: DictConfig):
    """Train one stage; returns the :class:`~decalite.training.train.TrainResult`."""
    from decalite.factory import build_deca
    from decalite.training.train import build_stage_module, train

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    pl.seed_everything(int(cfg.seed), workers=True)
    if cfg.data.get("synthetic"):
        ensure_synthetic_data(cfg)
    deca, _ = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    module = build_stage_module(deca, stage_config(cfg))
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    for key in ("synthetic", "root"):
        data_cfg.pop(key, None)
    datamodule = instantiate(data_cfg, scale_range=tuple(data_cfg["scale_range"]))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and c.get("_target_")]
    if not cfg.trainer.get("enable_progress_bar", True):  # a progress-bar callback would contradict it
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    result = train(module, datamodule, trainer, resume=cfg.get("resume"))
    output = Path(cfg.paths.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "result.json").write_text(json.dumps(
        {"checkpoint": result.checkpoint, "metrics": result.metrics, "skipped_steps": result.skipped_steps},
        indent=2))
    log.info("stage %s done: checkpoint %s; %s", cfg.stage, result.checkpoint,
             {k: round(v, 4) for k, v in result.metrics.items() if k.startswith(("val/", "train/landmark"))})
    return result


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="train")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
