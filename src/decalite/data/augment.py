"""Batched training augmentation for identity groups: DECA's random crop, warps and colour jitter (torch/kornia).

Coordinates follow :mod:`decalite.data.crop`: landmarks are pixel-index coordinates ``(x = column, y = row)`` with
the top-left pixel's centre at ``(0, 0)``, and every 2x3 matrix maps such coordinates of the stored crop to those
of the output crop. :func:`kornia.geometry.transform.warp_affine` is called with ``align_corners=True``, under
which its matrix acts on exactly these coordinates, so images, masks and landmarks move together.

Randomness is drawn from an explicit :class:`torch.Generator` everywhere, so a loader seeded per
(seed, rank, worker, epoch) reproduces its batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None, device: torch.device,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n,) samples of U(low, high) drawn from ``generator`` (on CPU, then moved)."""
    u = torch.rand(n, generator=generator, dtype=dtype)
    return (low + (high - low) * u).to(device)


def landmark_boxes(landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres and sides of the landmarks' bounding squares.

    Args:
        landmarks: (N, 68, 2) pixel-index landmarks.

    Returns:
        centres (N, 2) and sides (N,) (the larger side of each landmark box).
    """
    lo = landmarks.amin(dim=1)  # (N, 2)
    hi = landmarks.amax(dim=1)  # (N, 2)
    return (lo + hi) / 2.0, (hi - lo).amax(dim=1)


def similarity_matrices(centres: torch.Tensor, sides: torch.Tensor, angles: torch.Tensor, out_size: int
                        ) -> torch.Tensor:
    """Matrices mapping a square (centre, side, rotation) of the source onto an ``out_size`` crop.

    The square's centre lands on the crop's centre ``((out_size - 1) / 2, ...)`` and its side on ``out_size``
    pixels; the content is rotated by ``angles`` (radians, counter-clockwise on screen for positive angles).

    Args:
        centres: (N, 2) square centres, pixel-index coordinates of the source.
        sides: (N,) square sides in source pixels.
        angles: (N,) rotations in radians.
        out_size: output crop side in pixels.

    Returns:
        (N, 2, 3) matrices, source pixel-index -> crop pixel-index coordinates.
    """
    scale = out_size / sides.clamp_min(1.0)  # (N,)
    cos, sin = torch.cos(angles) * scale, torch.sin(angles) * scale
    # Image rows grow downwards, so a counter-clockwise turn on screen is [[c, s], [-s, c]] in (x, y).
    linear = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], dim=1)  # (N, 2, 2)
    c = (out_size - 1) / 2.0
    offset = c - torch.einsum("nij,nj->ni", linear, centres)  # (N, 2)
    return torch.cat([linear, offset[:, :, None]], dim=2)  # (N, 2, 2) + (N, 2, 1) -> (N, 2, 3)


def random_crop_params(
    landmarks: torch.Tensor,
    scale_range: tuple[float, float] = (1.4, 1.8),
    shift: float = 0.05,
    generator: torch.Generator | None = None,
    out_size: int = 224,
    max_rotation: float = 0.0,
) -> torch.Tensor:
    """DECA's random training crop for each image, as a similarity matrix.

    The crop is the landmarks' bounding square scaled by ``s ~ U(scale_range)`` (side = ``s`` x the box's
    larger side), its centre shifted by ``U(-shift, shift)`` x the crop side along x and y independently, and
    rotated by ``U(-max_rotation, max_rotation)`` degrees (default 0: no rotation, as in DECA).

    Args:
        landmarks: (N, 68, 2) pixel-index landmarks of the stored crops.
        scale_range: (low, high) crop scale relative to the landmark box.
        shift: maximum centre shift as a fraction of the crop side.
        generator: source of randomness (None: torch's global generator).
        out_size: side of the output crop in pixels.
        max_rotation: maximum absolute rotation in degrees.

    Returns:
        (N, 2, 3) matrices mapping stored-crop pixel-index coordinates to output-crop ones.
    """
    n, device = landmarks.shape[0], landmarks.device
    centres, box_sides = landmark_boxes(landmarks.float())
    sides = box_sides * _uniform(n, scale_range[0], scale_range[1], generator, device)  # (N,)
    offsets = _uniform(2 * n, -shift, shift, generator, device).view(n, 2)  # (2N,) -> (N, 2)
    centres = centres + offsets * sides[:, None]
    angles = _uniform(n, -max_rotation, max_rotation, generator, device) * (math.pi / 180.0)
    return similarity_matrices(centres, sides, angles, out_size)


def transform_points(points: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply per-image 2x3 matrices to points. points: (N, P, 2); matrices: (N, 2, 3). Returns (N, P, 2)."""
    return torch.einsum("npj,nij->npi", points, matrices[:, :, :2]) + matrices[:, None, :, 2]


def warp_group(
    images: torch.Tensor,
    masks: torch.Tensor,
    landmarks: torch.Tensor,
    matrices: torch.Tensor,
    out_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Warp images, masks and landmarks with the same matrices (bilinear, zeros outside the source).

    Args:
        images: (N, 3, H, W) float images.
        masks: (N, 1, H, W) float masks.
        landmarks: (N, 68, 2) pixel-index landmarks.
        matrices: (N, 2, 3) source -> output pixel-index matrices (e.g. from :func:`random_crop_params`).
        out_size: output side in pixels.

    Returns:
        images (N, 3, S, S), masks (N, 1, S, S) and landmarks (N, 68, 2) in output pixel-index coordinates.
    """
    stacked = torch.cat([images, masks.to(images.dtype)], dim=1)  # (N, 3, H, W) + (N, 1, H, W) -> (N, 4, H, W)
    warped = kornia.geometry.transform.warp_affine(stacked, matrices.to(images.dtype), (out_size, out_size),
                                                   mode="bilinear", padding_mode="zeros", align_corners=True)
    return warped[:, :3], warped[:, 3:], transform_points(landmarks.to(matrices.dtype), matrices)


@dataclass(frozen=True)
class ColourJitter:
    """Ranges of a small photometric jitter, each factor drawn per image.

    Attributes:
        brightness: multiplicative brightness factor in ``[1 - b, 1 + b]``.
        contrast: contrast factor in ``[1 - c, 1 + c]`` about each image's mean grey level.
        saturation: saturation factor in ``[1 - s, 1 + s]``.
        hue: hue shift in ``[-h, h]`` turns (0.5 = half the colour wheel).
    """

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Jitter images. images: (N, 3, H, W) in [0, 1]. Returns (N, 3, H, W) in [0, 1]."""
        return colour_jitter(images, self, generator)


def colour_jitter(images: torch.Tensor, jitter: ColourJitter, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """Brightness, contrast, saturation then hue jitter, factors per image from ``generator``.

    Args:
        images: (N, 3, H, W) RGB in [0, 1].
        jitter: the ranges.
        generator: source of randomness.

    Returns:
        (N, 3, H, W) jittered images clamped to [0, 1].
    """
    n, device = images.shape[0], images.device
    b = _uniform(n, 1.0 - jitter.brightness, 1.0 + jitter.brightness, generator, device)
    c = _uniform(n, 1.0 - jitter.contrast, 1.0 + jitter.contrast, generator, device)
    s = _uniform(n, 1.0 - jitter.saturation, 1.0 + jitter.saturation, generator, device)
    h = _uniform(n, -jitter.hue, jitter.hue, generator, device) * (2.0 * math.pi)  # turns -> radians
    out = (images * b[:, None, None, None]).clamp(0.0, 1.0)
    grey = kornia.color.rgb_to_grayscale(out).mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    out = ((out - grey) * c[:, None, None, None] + grey).clamp(0.0, 1.0)
    if jitter.saturation > 0 or jitter.hue > 0:
        # Saturation and hue as one linear map per image in YIQ space: scale the chroma plane (I, Q) by s and
        # rotate it by h (the usual hue-rotation approximation; much cheaper than an HSV round trip).
        out = torch.einsum("nij,njhw->nihw", _chroma_matrices(s, h, out.dtype), out).clamp(0.0, 1.0)
    return out


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                           dtype=torch.float64)


def _chroma_matrices(saturation: torch.Tensor, hue: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, 3, 3) RGB -> RGB matrices scaling chroma by ``saturation`` and rotating hue by ``hue`` radians."""
    n = saturation.shape[0]
    cos, sin = torch.cos(hue.double()), torch.sin(hue.double())
    chroma = torch.zeros(n, 3, 3, dtype=torch.float64)
    chroma[:, 0, 0] = 1.0
    chroma[:, 1, 1], chroma[:, 1, 2] = cos * saturation.double(), -sin * saturation.double()
    chroma[:, 2, 1], chroma[:, 2, 2] = sin * saturation.double(), cos * saturation.double()
    to_yiq = _RGB_TO_YIQ
    return (torch.linalg.inv(to_yiq) @ chroma @ to_yiq).to(dtype).to(saturation.device)
