"""DECA's face crop: a square around the 68-landmark box, scaled, warped to a fixed size (kornia warps).

The box is centred on the landmarks' bounding box and its side is ``scale`` times the larger side of that box
(DECA uses 1.25 for inference and a random scale in [1.4, 1.8] for training). Shards store crops at
``CONTEXT_SCALE`` (2.0) so the loader can draw training crops inside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import numpy as np
import torch


@dataclass
class Crop:
    """A square crop: source box (x0, y0, x1, y1) in source pixels and the 2x3 source->crop matrix."""

    box: np.ndarray
    matrix: np.ndarray
    size: int


def landmark_box(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Centre (cx, cy) and side of the landmarks' bounding square. landmarks: (68, 2) pixels (x, y)."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    centre = (lo + hi) / 2.0
    return float(centre[0]), float(centre[1]), float((hi - lo).max())


def square_crop(landmarks: np.ndarray, scale: float, size: int, shift: tuple[float, float] = (0.0, 0.0)) -> Crop:
    """The crop of side ``scale * landmark box side``; ``shift`` moves it by fractions of its side."""
    cx, cy, side = landmark_box(landmarks)
    side = max(side * scale, 1.0)
    cx, cy = cx + shift[0] * side, cy + shift[1] * side
    # Pixel-index coordinates (pixel centres at integers); the box is given in edge coordinates (+0.5).
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]) + 0.5
    s = size / side
    c = (size - 1) / 2.0  # the crop's centre, in pixel-index coordinates
    matrix = np.array([[s, 0.0, c - s * cx], [0.0, s, c - s * cy]])
    return Crop(box=box, matrix=matrix, size=size)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 matrix to (..., 2) pixel-index points (x, y)."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(image: np.ndarray, crop: Crop, mode: str = "bilinear") -> np.ndarray:
    """Warp an (H, W, C) or (H, W) uint8 image into the crop (size x size), zeros outside the source."""
    squeeze = image.ndim == 2
    t = torch.from_numpy(np.ascontiguousarray(image if not squeeze else image[..., None])).permute(2, 0, 1)
    t = t[None].float()  # (H, W, C) -> (1, C, H, W)
    m = torch.from_numpy(crop.matrix).float()[None]
    out = kornia.geometry.transform.warp_affine(t, m, (crop.size, crop.size), mode=mode, padding_mode="zeros",
                                                align_corners=True)
    out = out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()  # (C, S, S) -> (S, S, C)
    return out[..., 0] if squeeze else out
