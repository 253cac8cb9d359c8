"""``train``: one training stage, from built objects to a checkpoint; and the stage module from its config."""

from __future__ import annotations

import gc
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins import TorchCheckpointIO

from decalite.errors import AssetError
from decalite.losses.mrf import load_vgg19_features
from decalite.model.deca import DECA
from decalite.nets.checkpoints import load_weights
from decalite.nets.identity import load_identity_net
from decalite.training.base import StageModule
from decalite.training.coarse import CoarseModule
from decalite.training.config import StageConfig
from decalite.training.detail import DetailModule

log = logging.getLogger(__name__)

STAGES = {"coarse": CoarseModule, "detail": DetailModule}

# Frozen parts (the coarse encoder in the detail stage, pretrained loss networks) are in eval mode on purpose.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


@dataclass
class TrainResult:
    """Where the stage's last checkpoint is, the final logged metrics and how many steps were skipped."""

    checkpoint: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0


def build_stage_module(deca: DECA, cfg: StageConfig) -> StageModule:
    """The stage's LightningModule: loads ``cfg.init_from`` and the pretrained networks its loss terms need.

    Raises:
        AssetError: a needed weight file (identity net, VGG19, the init checkpoint) is missing: the message
            names the file and where it comes from.
    """
    if cfg.stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}; got {cfg.stage!r}")
    terms = cfg.loss.terms
    pretrained = {}
    if terms.get("identity", 0.0):
        pretrained["identity"] = load_identity_net(cfg.loss.identity_net, cfg.loss.identity_weights)
    if terms.get("mrf", 0.0):
        pretrained["mrf"] = load_vgg19_features(cfg.loss.vgg19_weights)
    if cfg.init_from:
        networks = deca.networks()
        decoder = networks.pop("detail_decoder")
        report = load_weights(cfg.init_from, networks)
        if report.missing.get("coarse_encoder"):
            raise ValueError(f"{cfg.init_from} holds no complete coarse encoder: {report.summary()}")
        try:
            load_weights(cfg.init_from, {"detail_decoder": decoder})
        except AssetError as err:  # another model.detail_size (a CPU checkpoint starting a paper run): start fresh
            log.warning("%s: the detail decoder starts untrained (%s)", cfg.init_from, err.problem)
    return STAGES[cfg.stage](deca, cfg, pretrained)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint writes a kill -9 cannot truncate: a temporary file beside the target, fsync, ``os.replace``.
    Lightning's own writer stages the file in $TMPDIR and, when that is another filesystem (a node-local /tmp on a
    cluster), copies it over the previous checkpoint in place. Remote URLs keep Lightning's writer."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return None


def _last_checkpoint_callback(trainer: pl.Trainer) -> pl.callbacks.ModelCheckpoint | None:
    """The ModelCheckpoint that keeps last.ckpt (the resume point), not a milestone one."""
    return next((c for c in trainer.checkpoint_callbacks if c.save_last), trainer.checkpoint_callback)


class _SaveLastAtEnd(pl.Callback):
    """Refresh last.ckpt when fit ends after the last periodic save (max_steps not a multiple of
    every_n_train_steps): Lightning writes last.ckpt at the end only when it never wrote one."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        cb = _last_checkpoint_callback(trainer)
        if cb is None or not cb.save_last or trainer.fast_dev_run or cb._last_global_step_saved == trainer.global_step:
            return
        cb._save_last_checkpoint(trainer, cb._monitor_candidates(trainer))


def train(module: StageModule, datamodule: pl.LightningDataModule, trainer: pl.Trainer,
          resume: str | None = None) -> TrainResult:
    """Fit one stage. ``resume``: a checkpoint of this run to continue (optimizer state and step count)."""
    if trainer.fast_dev_run:
        # A smoke test writes no checkpoints (Lightning's ModelCheckpoint.on_train_end still saves last.ckpt
        # under fast_dev_run, a few hundred MB per run).
        trainer.callbacks[:] = [c for c in trainer.callbacks if not isinstance(c, pl.callbacks.ModelCheckpoint)]
    trainer.callbacks.append(_SaveLastAtEnd())
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    # Lightning's teardown drops its DistributedDataParallel wrapper, whose reducer sits in reference cycles;
    # collected only at interpreter exit, torch 2.14 can abort the process there (see test_precision_and_ddp).
    gc.collect()
    callback = _last_checkpoint_callback(trainer)
    checkpoint = None
    if callback is not None:
        checkpoint = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "") or None
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
    # With ddp_spawn the ranks train copies of the module; their counter comes back only as a logged metric.
    skipped = max(module.skipped_steps, int(metrics.get("train/skipped_steps", 0)))
    if skipped:
        log.warning("%d training steps were skipped for non-finite losses", skipped)
    return TrainResult(checkpoint=checkpoint, metrics=metrics, skipped_steps=skipped)
