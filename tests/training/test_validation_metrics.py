"""Validation metrics count each real sample once: image-weighted over batches of unequal size, evaluation pads
(``valid`` = 0, see decalite.data.datamodule) left out, and a batch of pads only logs nothing.

The two-rank reduction itself runs in tests/training/test_robustness.py (trainer=ddp_sim with validation)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from decalite.losses.objective import LossResult
from decalite.training.base import StageModule, valid_groups
from decalite.training.config import StageConfig


class _Probe(StageModule):
    """A stage whose 'metric' is the mean of a per-image value x, its loss the mean of 2x."""

    def __init__(self) -> None:
        super().__init__(nn.Linear(1, 1), StageConfig())  # type: ignore[arg-type]

    def trainable(self) -> list[nn.Module]:
        return [self.deca]

    def compute(self, batch):
        x = batch["x"].flatten()
        return LossResult(total=2 * x.mean()), {"x": x.mean()}, {}


def _batch(values: list[list[float]], valid: list[bool]) -> dict:
    b, k = len(values), len(values[0])
    return {"images": torch.zeros(b, k, 3, 4, 4), "x": torch.tensor(values),
            "valid": torch.tensor([[1.0 if v else 0.0] * k for v in valid]), "identity": [f"id{i}" for i in range(b)]}


def test_valid_groups_drops_pads_from_every_per_group_field():
    batch = _batch([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [True, False, True])
    out = valid_groups(batch)
    assert out["identity"] == ["id0", "id2"] and out["x"].tolist() == [[1.0, 2.0], [5.0, 6.0]]
    assert valid_groups(_batch([[1.0]], [False])) is None
    assert valid_groups({"images": torch.zeros(1, 1, 3, 2, 2)}) is not None  # no 'valid' key: unchanged


def test_validation_mean_is_over_real_images_only():
    batches = [_batch([[1.0, 1.0], [2.0, 2.0]], [True, True]),      # 4 images
               _batch([[10.0, 10.0]], [True]),                      # 2 images: a smaller last batch
               _batch([[100.0, 100.0], [7.0, 7.0]], [False, True]),  # one pad group
               _batch([[1000.0, 1000.0]], [False])]                 # pads only
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    loader = DataLoader(batches, batch_size=None)  # the prepared batches, as they are
    metrics = trainer.validate(_Probe(), dataloaders=loader, verbose=False)[0]
    expected = (1 + 1 + 2 + 2 + 10 + 10 + 7 + 7) / 8  # each real image once; a batch mean of means would say 6.0
    assert abs(metrics["val/x"] - expected) < 1e-6
    assert abs(metrics["val/loss"] - 2 * expected) < 1e-6
