"""Code regularisers: squared magnitude of shape/expression/albedo codes and a light prior towards white light."""

from __future__ import annotations

import torch


def l2_regularizer(code: torch.Tensor) -> torch.Tensor:
    """Sum of squares per sample, averaged over the batch. code: (B, N)."""
    return (code**2).sum(-1).mean()


def white_light_regularizer(light: torch.Tensor) -> torch.Tensor:
    """Penalise coloured light: each SH band's RGB values pulled towards their mean. light: (B, 9, 3)."""
    return ((light - light.mean(-1, keepdim=True)) ** 2).mean()
