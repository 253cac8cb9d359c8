"""DECA's weak-perspective (scaled orthographic) camera and coordinate conversions.

Coordinate frames
-----------------
* World / model: metres, +x to the subject's left, +y up, +z out of the face
  towards the camera (the camera looks down -z).
* NDC (output of :func:`orthographic_project`): ``x', y'`` in ``[-1, 1]`` span
  the image, **+y' is up** (DECA's convention before any image flip); ``z'`` is
  the scaled depth, larger = nearer the camera.
* Pixels (:func:`ndc_to_pixels`): ``(column, row)`` with **row 0 at the TOP**
  of the image; pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)`` so its centre is
  at ``(i + 0.5, j + 0.5)``. NDC ``x = -1`` is the left edge (column 0.0) and
  ``x = +1`` the right edge (column ``width``); NDC ``y = +1`` is the top edge
  (row 0.0) and ``y = -1`` the bottom edge (row ``height``).

The y-flip convention
---------------------
This module is THE one place where the vertical flip between NDC (+y up) and
image rows (row 0 at top) happens: ``row = (1 - y) / 2 * height``. Everything
else in decalite works either fully in NDC or fully in pixels.

Clip space (:func:`to_clip`) follows nvdiffrast/OpenGL: +y up in NDC and the
rasterised image has row 0 at the BOTTOM (nvdiffrast outputs are bottom-up), so
the renderer flips its output once vertically to obtain top-down images.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "Z_CLIP_SCALE",
    "ndc_to_image_normalized",
    "ndc_to_pixels",
    "orthographic_project",
    "pixels_to_ndc",
    "to_clip",
]

#: Depth scale used by :func:`to_clip`: ``z_clip = -Z_CLIP_SCALE * z``.
Z_CLIP_SCALE: float = 0.1


def orthographic_project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Project points with DECA's scaled orthographic camera.

    Args:
        points: ``(B, N, 3)`` points in model space.
        cam: ``(B, 3)`` camera ``(s, tx, ty)``.

    Returns:
        ``(B, N, 3)`` NDC points: ``x' = s (x + tx)``, ``y' = s (y + ty)``,
        ``z' = s z`` (+y' up).
    """
    scale = cam[:, 0:1].unsqueeze(-1)  # (B, 1, 1)
    trans = cam[:, 1:3].unsqueeze(1)  # (B, 1, 2)
    xy = scale * (points[..., :2] + trans)
    z = scale * points[..., 2:3]
    return torch.cat([xy, z], dim=-1)


def ndc_to_pixels(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Convert NDC ``(x, y)`` (+y up) to pixel ``(column, row)`` (row 0 at top).

    Args:
        xy: ``(..., 2)`` NDC coordinates.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        ``(..., 2)`` continuous pixel coordinates; pixel centres at integer + 0.5.
    """
    col = (xy[..., 0] + 1.0) * (0.5 * width)
    row = (1.0 - xy[..., 1]) * (0.5 * height)
    return torch.stack([col, row], dim=-1)


def pixels_to_normalised(points_px, size: int):
    """Pixel-index points (pixel centres at integers, row 0 at top) of a ``size`` x ``size`` image to
    image-normalised coordinates in [-1, 1] with +y down: ``x_n = (x + 0.5) / size * 2 - 1``; ``(-1, -1)`` is the
    top-left corner of the image (:func:`ndc_to_image_normalized`'s layout, that of decalite's landmarks).

    The one home of this conversion; works on torch tensors and numpy arrays. points_px: (..., 2). Returns (..., 2).
    """
    return (points_px + 0.5) * (2.0 / size) - 1.0


def normalised_to_pixels(points_n, size: int):
    """The inverse of :func:`pixels_to_normalised`: (..., 2) image-normalised points -> pixel indices (tensors or
    arrays). Continuous pixel coordinates (centres at integer + 0.5, as :func:`ndc_to_pixels`) are these + 0.5."""
    return (points_n + 1.0) * (size / 2.0) - 0.5


def ndc_to_image_normalized(xy: torch.Tensor) -> torch.Tensor:
    """NDC ``(x, y)`` (+y up) to image-normalised ``(x, y)`` in [-1, 1] with **+y down** (row direction).

    This is the layout of 2D landmarks in decalite's data and losses (DECA's too): ``(-1, -1)`` is the
    top-left corner of the image. Args: xy ``(..., 2)``. Returns ``(..., 2)``.
    """
    return torch.stack([xy[..., 0], -xy[..., 1]], dim=-1)


def image_normalized_to_ndc(xy: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`ndc_to_image_normalized`: image-normalised ``(x, y)`` (+y down) to NDC (+y up)."""
    return torch.stack([xy[..., 0], -xy[..., 1]], dim=-1)


def pixels_to_ndc(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`ndc_to_pixels`.

    Args:
        pixels: ``(..., 2)`` pixel ``(column, row)`` coordinates, row 0 at top.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        ``(..., 2)`` NDC ``(x, y)`` with +y up.
    """
    x = pixels[..., 0] * (2.0 / width) - 1.0
    y = 1.0 - pixels[..., 1] * (2.0 / height)
    return torch.stack([x, y], dim=-1)


def to_clip(points_ndc: torch.Tensor) -> torch.Tensor:
    """Homogeneous clip-space vertices for an nvdiffrast-style rasteriser.

    Orthographic, so ``w = 1``. Depth is ``z_clip = -Z_CLIP_SCALE * z`` (0.1):
    nearer points (larger ``z``, towards the camera) get SMALLER ``z_clip``,
    as in OpenGL / nvdiffrast depth testing. Points must satisfy
    ``|z_clip| <= 1`` (``|z| <= 10`` in NDC units) to avoid being clipped.
    Note: nvdiffrast clip space has +y up and its output images have row 0 at
    the bottom; the renderer flips once to get top-down images.

    Args:
        points_ndc: ``(B, N, 3)`` NDC points from :func:`orthographic_project`.

    Returns:
        ``(B, N, 4)`` ``(x, y, z_clip, 1)``.
    """
    xy = points_ndc[..., :2]
    z_clip = -Z_CLIP_SCALE * points_ndc[..., 2:3]
    w = torch.ones_like(z_clip)
    return torch.cat([xy, z_clip, w], dim=-1)


def crop_camera(cam: np.ndarray, matrix: np.ndarray, source_size: int, size: int) -> np.ndarray:
    """The camera of a crop: (..., 3) camera (s, tx, ty) of a square source image and (..., 2, 3) source -> crop
    pixel-index matrices (scale and translation, no rotation) -> (..., 3) the camera of the ``size`` crop.

    With ``a`` the matrix's scale and ``b`` its translation, a point of source NDC x' maps to source pixel index
    ``(x' + 1) R / 2 - 0.5`` (R = ``source_size``), then to crop pixel index ``a (...) + b``, then to crop NDC; the
    composition is again ``s' (x + tx')`` with ``s' = a s R / S`` (likewise for y, whose NDC axis points up).
    """
    cam, matrix = np.asarray(cam, dtype=np.float64), np.asarray(matrix, dtype=np.float64)
    a = matrix[..., 0, 0]
    s, tx, ty = cam[..., 0], cam[..., 1], cam[..., 2]
    s_crop = a * s * source_size / size
    offset = a * (source_size / 2.0 - 0.5) + 0.5
    cx = (offset + matrix[..., 0, 2]) * 2.0 / size - 1.0
    cy = 1.0 - (offset + matrix[..., 1, 2]) * 2.0 / size
    return np.stack([s_crop, tx + cx / s_crop, ty + cy / s_crop], axis=-1)
