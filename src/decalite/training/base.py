"""What both training stages share: batch flattening, the objective, logging, the non-finite-loss guard,
optimisers and schedules, frozen pretrained networks kept out of checkpoints, and DDP set-up."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

import decalite
from decalite.losses.objective import LossResult, check_weights
from decalite.model.deca import DECA
from decalite.nets.checkpoints import SETTINGS_KEY
from decalite.training.config import StageConfig
from decalite.training.distributed import exclude_constants_from_ddp

log = logging.getLogger(__name__)

#: Submodule holding frozen pretrained networks (identity net, VGG19); never saved in checkpoints.
PRETRAINED = "pretrained"


def flatten_groups(batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], int, int]:
    """(B, K, ...) tensors of an identity-group batch -> (B*K, ...); returns them with B and K."""
    images = batch["images"]
    groups, k = int(images.shape[0]), int(images.shape[1])
    flat = {key: value.flatten(0, 1) for key, value in batch.items()
            if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[:2] == (groups, k)}
    return flat, groups, k  # each (B, K, ...) -> (B*K, ...)


def valid_groups(batch: dict[str, Any]) -> dict[str, Any] | None:
    """The batch without its evaluation pads (groups with ``valid`` = 0, see :mod:`decalite.data.datamodule`);
    None when nothing is left. Batches without ``valid`` pass unchanged."""
    valid = batch.get("valid")
    if valid is None:
        return batch
    keep = valid.reshape(valid.shape[0], -1)[:, 0] > 0  # (B,)
    if bool(keep.all()):
        return batch
    if not bool(keep.any()):
        return None
    index = torch.nonzero(keep).squeeze(1)
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == keep.shape[0]:
            out[key] = value[index]
        elif isinstance(value, list) and len(value) == keep.shape[0]:
            out[key] = [value[i] for i in index.tolist()]
        else:
            out[key] = value
    return out


def _lr_lambda(cfg, total_steps: int):
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine" and total_steps > 0:
            done = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
            floor = cfg.min_lr / cfg.lr if cfg.lr else 0.0
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * done))
        return 1.0
    return factor


class StageModule(pl.LightningModule):
    """Base of :class:`CoarseModule` and :class:`DetailModule`.

    Args:
        deca: the model (FLAME layer, renderer, albedo and networks; shared by both stages).
        cfg: the stage's configuration.
        pretrained: frozen networks the losses need, by name ("identity", "mrf"); kept out of checkpoints.
    """

    stage = "base"

    def __init__(self, deca: DECA, cfg: StageConfig, pretrained: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        check_weights(cfg.loss.terms)
        self.deca = deca
        self.cfg = cfg
        self.pretrained = nn.ModuleDict(pretrained or {})
        for net in self.pretrained.values():
            net.requires_grad_(False)
        self.skipped_steps = 0
        self._val_sums: dict[str, list[float]] = {}  # metric -> [image-weighted sum, images] this validation epoch
        self.generator = torch.Generator().manual_seed(0)
        self.train()  # builders may hand over modules in eval mode; frozen parts stay in eval (see train())

    # ------------------------------------------------------------------ what the stages define

    def trainable(self) -> list[nn.Module]:
        """The modules whose parameters this stage optimises."""
        raise NotImplementedError

    def frozen(self) -> list[nn.Module]:
        """Modules kept in eval mode while training (e.g. the coarse encoder in the detail stage)."""
        return list(self.pretrained.values())

    def compute(self, batch: dict[str, Any]) -> tuple[LossResult, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Losses, metrics (name -> scalar) and visuals (name -> (N, 3, H, W)) for one batch."""
        raise NotImplementedError

    # ------------------------------------------------------------------ Lightning

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen():
            module.eval()
        return self

    def setup(self, stage: str) -> None:
        # Exactly the parameters this stage trains need gradients: DDP would wait for the others (the detail
        # networks in the coarse stage) and fail ("parameters that were not used in producing the loss"); set
        # both ways, so a DECA trained coarse then detail in one process gets its detail networks back.
        trained = {id(p) for m in self.trainable() for p in m.parameters()}
        for param in self.parameters():
            param.requires_grad_(id(param) in trained)
        exclude_constants_from_ddp(self, frozen_prefixes=(f"{PRETRAINED}.",))
        # Here, before Lightning moves the module to its device and wraps it in DDP (which must not see parameters
        # change layout afterwards); .to(device) keeps the layout.
        trainer = self._trainer  # None outside a Trainer (tests, benchmarks call setup directly)
        if trainer is not None and trainer.strategy.root_device.type == "cuda":
            self.use_channels_last()

    def convolution_networks(self) -> list[nn.Module]:
        """The image networks of a training step: both encoders and the frozen pretrained ones."""
        return [self.deca.coarse_encoder, self.deca.detail_encoder, *self.pretrained.values()]

    def use_channels_last(self) -> None:
        """Convolution weights in channels_last (NHWC), the layout cuDNN's fastest bf16 kernels use on GPUs;
        the identity network's depthwise convolutions ran on PyTorch's slower native kernels in NCHW (22% of the
        paper's coarse step on an H200, experiments/bench_gpu). :meth:`setup` calls it when training on CUDA only:
        CPU kernels gain nothing."""
        for net in self.convolution_networks():
            net.to(memory_format=torch.channels_last)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        result, metrics, visuals = self.compute(batch)
        self.last_visuals = visuals
        bad = not bool(torch.isfinite(result.total).item())
        if self.trainer is not None and self.trainer.world_size > 1:
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)  # one bad rank: all skip
        batch_size = int(batch["images"].shape[0] * batch["images"].shape[1])
        if bad:
            self.skipped_steps += 1
            log.warning("non-finite loss at step %d (%s): step skipped (%d so far)", self.global_step,
                        {k: float(v) for k, v in result.terms.items()}, self.skipped_steps)
            self.log("train/skipped_steps", float(self.skipped_steps), batch_size=batch_size)
            return None
        self.log("train/loss", result.total, prog_bar=True, batch_size=batch_size)
        for name, value in result.terms.items():
            self.log(f"train/loss/{name}", value, batch_size=batch_size)
        for name, value in metrics.items():
            self.log(f"train/{name}", value, prog_bar=name == "landmark_nme", batch_size=batch_size)
        self.log("train/skipped_steps", float(self.skipped_steps), batch_size=batch_size)
        return result.total

    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Validation metrics are image-weighted sums over the epoch, reduced over the ranks at its end, so each
        sample counts once whatever its rank and batch; evaluation pads (``valid`` = 0) are left out."""
        batch = valid_groups(batch)
        if batch is None:
            return  # padding only: this rank ran the step (DDP's forward) so the ranks stay in step
        result, metrics, visuals = self.compute(batch)
        self.last_val_visuals = visuals
        images = float(batch["images"].shape[0] * batch["images"].shape[1])
        for name, value in {"loss": result.total, **metrics}.items():
            value = float(value.detach())
            if math.isfinite(value):
                entry = self._val_sums.setdefault(name, [0.0, 0.0])
                entry[0] += value * images
                entry[1] += images

    def on_validation_epoch_end(self) -> None:
        sums = self._val_sums
        names = sorted(sums)
        if self.trainer is not None and self.trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, names)  # a rank may hold only pads: agree on the names
            names = sorted({n for part in gathered for n in part})
        if not names:
            return
        totals = torch.tensor([sums.get(n, [0.0, 0.0]) for n in names], dtype=torch.float64, device=self.device)
        if self.trainer is not None and self.trainer.world_size > 1:
            totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        for name, (total, count) in zip(names, totals.tolist()):
            if count > 0:
                self.log(f"val/{name}", total / count, sync_dist=True,  # equal on every rank already: quiets Lightning
                         prog_bar=name == "landmark_nme")

    def configure_optimizers(self):
        opt_cfg = self.cfg.optim
        params = [p for m in self.trainable() for p in m.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas), weight_decay=opt_cfg.weight_decay)
        total = int(self.trainer.estimated_stepping_batches) if self.trainer is not None else 0
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(opt_cfg, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def __getstate__(self) -> dict[str, Any]:
        # A torch.Generator does not survive torch.multiprocessing's pickling (ddp_spawn, trainer=ddp_sim): its
        # state tensor is made during pickling and freed before the spawned rank maps it from shared memory, and
        # that rank dies ("unable to resize file"). Carry the state as plain bytes instead.
        state = super().__getstate__()
        state["generator"] = state["generator"].get_state().numpy().tobytes()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        generator = torch.Generator()
        generator.set_state(torch.frombuffer(bytearray(state.pop("generator")), dtype=torch.uint8))
        super().__setstate__({**state, "generator": generator})

    # ------------------------------------------------------------------ checkpoints without pretrained nets

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Self-describing checkpoints: tools given this file take the head, sizes and data settings from it.
        checkpoint[SETTINGS_KEY] = {"version": decalite.__version__, "settings": dict(self.cfg.settings)}

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "") + f"{PRETRAINED}."
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not k.startswith(f"{PRETRAINED}.")]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"checkpoint does not match the {self.stage} module: missing {missing[:5]}, "
                               f"unexpected {result.unexpected_keys[:5]}")
        return result
