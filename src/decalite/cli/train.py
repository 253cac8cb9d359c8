"""``decalite-train`` / ``make train``: one training stage from the Hydra config (see conf/train.yaml).

    decalite-train experiment=synthetic_cpu                       # coarse, synthetic data, CPU
    decalite-train experiment=synthetic_cpu_detail                # detail, from the coarse checkpoint
    decalite-train -m experiment=ablation_no_symmetry,ablation_no_mrf
    decalite-train experiment=deca_coarse data=shards data.root=/data/shards trainer=ddp trainer.devices=8

The app only builds objects from the config and calls :func:`decalite.training.train.train`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from decalite.cli._hydra import CONF_PATH
from decalite.cli.schema import ConfigError, TrainConfig, typed
from decalite.training.config import StageConfig

log = logging.getLogger("decalite.train")


def train_config(cfg: DictConfig) -> TrainConfig:
    """The :class:`~decalite.cli.schema.TrainConfig` part of a composed config (decalite-train's, or a tool's that
    extends train.yaml, e.g. decalite-evaluate's), typed: a misspelt key, a wrong type or an unset mandatory value
    (``init_from: ???``) is a :class:`~decalite.cli.schema.ConfigError` naming it."""
    return typed(OmegaConf.masked_copy(cfg, [f.name for f in dataclasses.fields(TrainConfig)]), TrainConfig)


def stage_config(cfg: DictConfig) -> StageConfig:
    """The typed :class:`~decalite.training.config.StageConfig` of the composed config."""
    from decalite.cli.trained import trained_settings

    train = train_config(cfg)
    return StageConfig(stage=train.stage, loss=train.loss,
                       optim=dataclasses.replace(train.optim, betas=tuple(train.optim.betas)),
                       init_from=train.init_from, init_cam=tuple(train.init_cam), init_light=train.init_light,
                       coarse_from=train.coarse_from, settings=trained_settings(cfg))


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
    from decalite.model.factory import build_deca
    from decalite.training.train import build_stage_module, train

    stage = stage_config(cfg)  # before any work: the config is complete
    if stage.stage == "detail" and stage.coarse_from == "encoder" and not stage.init_from and not cfg.get("resume"):
        raise ConfigError("init_from is not set: the detail stage trains with E_coarse frozen, so it starts from a "
                          "coarse stage's checkpoint, e.g. init_from=outputs/train/deca/coarse/checkpoints/last.ckpt "
                          "(or coarse_from=truth on synthetic data: the true coarse codes)")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    pl.seed_everything(int(cfg.seed), workers=True)
    if cfg.data.get("synthetic"):
        ensure_synthetic_data(cfg)
    deca, _ = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    module = build_stage_module(deca, stage)
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
    try:  # every key, type and mandatory value is checked before any work
        run(cfg)
    except ConfigError as err:
        log.error("%s", err)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
