"""Cameras of the synthetic data: framing a face in the render, and the camera of a crop of that render."""

from __future__ import annotations

import numpy as np
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


def crop_camera(cam: np.ndarray, matrix: np.ndarray, render_size: int, size: int) -> np.ndarray:
    """The camera of a crop: (3,) render camera (s, tx, ty) and (2, 3) render->crop pixel-index matrix.

    With ``a`` the matrix's scale and ``b`` its translation, a point of render NDC x' maps to render pixel index
    ``(x' + 1) R / 2 - 0.5``, then to crop pixel index ``a (...) + b``, then to crop NDC; the composition is
    again ``s' (x + tx')`` with ``s' = a s R / S`` (likewise for y, whose NDC axis points up).
    """
    a = float(matrix[0, 0])
    s, tx, ty = (float(v) for v in cam)
    s_crop = a * s * render_size / size
    offset = a * (render_size / 2.0 - 0.5) + 0.5
    cx = (offset + matrix[0, 2]) * 2.0 / size - 1.0
    cy = 1.0 - (offset + matrix[1, 2]) * 2.0 / size
    return np.array([s_crop, tx + cx / s_crop, ty + cy / s_crop])
