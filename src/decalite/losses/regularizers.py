"""Code regularisers, normalised as DECA's release: squared magnitude of shape/expression/albedo codes as a batch
sum / 2, and a light prior towards white light (a mean)."""

from __future__ import annotations

import torch


def l2_regularizer(code: torch.Tensor) -> torch.Tensor:
    """DECA's ``sum(code**2) / 2`` over the batch and the components. code: (B, N)."""
    if code.dim() != 2:
        raise ValueError(f"code must be (B, N); got {tuple(code.shape)}")
    return (code**2).sum() / 2.0


def white_light_regularizer(light: torch.Tensor) -> torch.Tensor:
    """Penalise coloured light: each SH band's RGB values pulled towards their mean (a mean). light: (B, 9, 3)."""
    if light.dim() != 3 or light.shape[-1] != 3:
        raise ValueError(f"light must be (B, 9, 3); got {tuple(light.shape)}")
    return ((light - light.mean(-1, keepdim=True)) ** 2).mean()
