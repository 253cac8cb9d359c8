"""Photometric loss: skin-masked L1 between a render and the image."""

from __future__ import annotations

import torch


def photometric_loss(rendered: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L1 averaged over masked pixels.

    Args:
        rendered, image: (B, 3, H, W). mask: (B, 1, H, W) in [0, 1] (skin mask x render coverage).
    """
    diff = (rendered - image).abs() * mask
    return diff.sum() / (mask.sum() * rendered.shape[1]).clamp_min(1.0)
