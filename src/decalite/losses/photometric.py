"""Photometric loss: skin-masked L1 between a render and the image, normalised as DECA's release."""

from __future__ import annotations

import torch


def photometric_loss(
    rendered: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, render_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """DECA's photometric term: ``mean(|mask * (rendered * render_mask - image)|)`` over all pixels and channels.

    The mean runs over every pixel (not only the masked ones), so DECA's weight (2.0) keeps its meaning. DECA
    multiplies the render by the UV face-eye mask seen in the image and by the coverage
    (:attr:`RenderOutput.face_mask`), so skin outside that region compares a black render with the photo.

    Args:
        rendered: (B, 3, H, W) render over a black background.
        image: (B, 3, H, W) the photo.
        mask: (B, 1, H, W) in [0, 1], the image's skin mask.
        render_mask: (B, 1, H, W) in [0, 1] applied to the render (DECA: face-eye mask x alpha), or None.
    """
    if rendered.shape != image.shape or rendered.dim() != 4:
        raise ValueError(f"rendered and image must both be (B, 3, H, W); got {tuple(rendered.shape)}, {tuple(image.shape)}")
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"mask must be (B, 1, H, W) matching the image; got {tuple(mask.shape)}")
    pred = rendered if render_mask is None else rendered * render_mask
    return (mask * (pred - image)).abs().mean()
