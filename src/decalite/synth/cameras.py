"""Cameras of the synthetic data: framing a face in the render (the camera of a crop of it:
:func:`decalite.geometry.camera.crop_camera`)."""

from __future__ import annotations

import torch


def face_camera(landmarks: torch.Tensor, fraction: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(B, 3) camera (s, tx, ty) making the landmarks' bounding square ``fraction`` of the render side.

    Args:
        landmarks: (B, 68, 3) model-space landmarks. fraction: (B,). shift: (B, 2) NDC offset of the face centre.
    """
    xy = landmarks[..., :2]
    lo, hi = xy.min(1).values, xy.max(1).values  # (B, 2)
    side = (hi - lo).max(1).values
    s = 2.0 * fraction / side
    trans = -(lo + hi) / 2.0 + shift / s[:, None]
    return torch.cat([s[:, None], trans], dim=1)
