"""Render stages after rasterization, shared by every rasterizer backend.

Layouts
-------
* Rasterizer layout: ``(B, H, W, C)`` channels-last, **row 0 at the bottom** (NDC y = -1), exactly as
  :func:`decalite.render.raster_torch.rasterize` and nvdiffrast return ``rast``. :func:`interpolate`
  works in this layout.
* Image layout: ``(B, C, H, W)`` channels-first, **row 0 at the top** (NDC y = +1), matching
  :func:`decalite.geometry.camera.ndc_to_pixels` and ordinary images.

:func:`to_image_layout` (and its inverse :func:`from_image_layout`) is THE one place where the vertical flip
between the two layouts happens; :func:`coverage` and :func:`depth_map` go through it, so their outputs are in
image layout too. Everything downstream (texturing, compositing, drawing) works in image layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "composite",
    "coverage",
    "depth_map",
    "draw_points",
    "from_image_layout",
    "interpolate",
    "sample_texture",
    "to_image_layout",
    "wireframe_mask",
]


def interpolate(attr: torch.Tensor, rast: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Interpolate a per-vertex attribute over the rasterized pixels (rasterizer layout).

    For a covered pixel with ``rast = (u, v, z/w, id + 1)`` the value is
    ``u * a[f0] + v * a[f1] + (1 - u - v) * a[f2]`` with ``(f0, f1, f2) = faces[id]``; zero where
    ``rast[..., 3] == 0``. Differentiable w.r.t. ``attr`` and ``rast[..., :2]``.

    Args:
        attr: (B, V, C) per-vertex attribute, or (V, C) shared by the whole batch (a batch of 1 also broadcasts).
        rast: (B, H, W, 4) rasterizer output.
        faces: (F, 3) int vertex indices used for rasterization.

    Returns:
        (B, H, W, C) interpolated attribute, row 0 at the bottom (rasterizer layout).
    """
    bsz, height, width = rast.shape[:3]
    if attr.dim() == 2:
        attr = attr.unsqueeze(0)  # (V, C) -> (1, V, C)
    n_vertices, channels = attr.shape[1], attr.shape[2]
    # Only the covered pixels are gathered and weighted (about a third of a face crop), with index_select,
    # whose backward is an index_add: the dense gather over every pixel cost about twice as much.
    flat_rast = rast.reshape(-1, 4)
    pixels = (flat_rast[:, 3] > 0).nonzero().squeeze(1)  # (P,) indices into B*H*W
    tri = flat_rast[pixels, 3].detach().round().long() - 1  # (P,)
    corner = faces.long()[tri]  # (P, 3) vertex indices
    if attr.shape[0] == 1:  # shared by the batch
        table = attr[0]
    else:
        table = attr.reshape(-1, channels)
        corner = corner + (torch.div(pixels, height * width, rounding_mode="floor") * n_vertices)[:, None]
    values = table.index_select(0, corner.reshape(-1)).reshape(-1, 3, channels)  # (P, 3, C)
    uv = flat_rast[:, :2].index_select(0, pixels)  # (P, 2)
    weights = torch.cat([uv, 1.0 - uv.sum(-1, keepdim=True)], dim=-1)  # (P, 3)
    compact = (weights[..., None] * values).sum(dim=1)  # (P, C)
    out = compact.new_zeros(bsz * height * width, channels).index_copy(0, pixels, compact)
    return out.reshape(bsz, height, width, channels)


def to_image_layout(x: torch.Tensor) -> torch.Tensor:
    """Rasterizer layout -> image layout: channels first AND rows flipped so that row 0 is the top.

    This is the single vertical flip between the bottom-up rasterizer output and top-down images.

    Args:
        x: (B, H, W, C), row 0 at the bottom (NDC y = -1).

    Returns:
        (B, C, H, W), row 0 at the top (NDC y = +1).
    """
    return x.permute(0, 3, 1, 2).flip(-2)  # (B, H, W, C) -> (B, C, H, W), rows reversed


def from_image_layout(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_image_layout`.

    Args:
        x: (B, C, H, W), row 0 at the top.

    Returns:
        (B, H, W, C), row 0 at the bottom (rasterizer layout).
    """
    return x.flip(-2).permute(0, 2, 3, 1)  # rows reversed, (B, C, H, W) -> (B, H, W, C)


def coverage(rast: torch.Tensor) -> torch.Tensor:
    """Alpha mask of covered pixels, in image layout.

    Args:
        rast: (B, H, W, 4) rasterizer output.

    Returns:
        (B, 1, H, W) float (rast's dtype), 1 where a triangle covers the pixel, 0 elsewhere; row 0 at the top.
    """
    mask = (rast[..., 3:4] > 0).to(rast.dtype)  # (B, H, W, 1)
    return to_image_layout(mask)


def depth_map(rast: torch.Tensor) -> torch.Tensor:
    """Per-pixel depth in image layout.

    Args:
        rast: (B, H, W, 4) rasterizer output.

    Returns:
        (B, 1, H, W): the rasterizer's ``z / w`` where covered (SMALLER = NEARER the camera, the order used by
        its depth test; see :func:`decalite.geometry.camera.to_clip`), 0 where empty; row 0 at the top.
    """
    covered = rast[..., 3:4] > 0  # (B, H, W, 1)
    depth = torch.where(covered, rast[..., 2:3], torch.zeros_like(rast[..., 2:3]))
    return to_image_layout(depth)


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample a texture at UV coordinates.

    UVs follow the OBJ convention: ``(u, v)`` in [0, 1], origin at the bottom-left, v up; the texture tensor is
    an ordinary image with row 0 at the top (v = 1). ``grid_sample`` (align_corners=False) maps x = -1 / +1 to
    the left / right edge and y = -1 / +1 to the top / bottom edge, hence ``x = 2u - 1`` and ``y = 1 - 2v``.
    Outside [0, 1] the border texels are repeated.

    Args:
        texture: (B, C, Ht, Wt) texture image, row 0 at the top.
        uv: (B, H, W, 2) texture coordinates (any spatial layout; the output keeps it).

    Returns:
        (B, H, W, C) sampled values; differentiable w.r.t. ``texture`` and ``uv``.
    """
    grid = torch.stack([2.0 * uv[..., 0] - 1.0, 1.0 - 2.0 * uv[..., 1]], dim=-1)  # (B, H, W, 2)
    sampled = F.grid_sample(
        texture, grid.to(texture.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )  # (B, C, H, W)
    return sampled.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)


def composite(
    foreground: torch.Tensor,
    alpha: torch.Tensor,
    background: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Alpha-composite ``foreground`` over ``background``: ``alpha * fg + (1 - alpha) * bg``.

    Args:
        foreground: (B, C, H, W).
        alpha: (B, 1, H, W) in [0, 1].
        background: (B, C, H, W) image, a constant, or None (black, i.e. premultiplied foreground).

    Returns:
        (B, C, H, W) composited image.
    """
    if background is None:
        return foreground * alpha
    return alpha * foreground + (1.0 - alpha) * background


def draw_points(
    images: torch.Tensor,
    points_px: torch.Tensor,
    color: Sequence[float] | torch.Tensor = (1.0, 0.0, 0.0),
    radius: int = 1,
) -> torch.Tensor:
    """Draw small filled squares (e.g. landmarks) on a copy of ``images``.

    A point at continuous pixel coordinates ``(col, row)`` (row 0 at the top, pixel ``(i, j)`` covering
    ``[i, i + 1) x [j, j + 1)`` as in :func:`decalite.geometry.camera.ndc_to_pixels`) lies in pixel
    ``(floor(col), floor(row))``; the square covers that pixel and ``radius`` pixels around it
    (``2 * radius + 1`` pixels wide), clipped to the image. Non-finite points are skipped.

    Args:
        images: (B, 3, H, W) images in image layout.
        points_px: (B, L, 2) pixel coordinates (col, row).
        color: 3 channel values.
        radius: half-width of the squares in pixels (0 = single pixels).

    Returns:
        (B, 3, H, W) copy of ``images`` with the squares drawn.
    """
    bsz, _, height, width = images.shape
    out = images.clone()
    colour = torch.as_tensor(color, dtype=images.dtype, device=images.device)
    pts = points_px.detach()
    finite = torch.isfinite(pts).all(-1)  # (B, L)
    centre = torch.floor(torch.where(finite[..., None], pts, torch.zeros_like(pts))).long()  # (B, L, 2)
    span = torch.arange(-radius, radius + 1, device=images.device)
    dcol, drow = torch.meshgrid(span, span, indexing="xy")
    offsets = torch.stack([dcol.reshape(-1), drow.reshape(-1)], dim=-1)  # (K, K) -> (K*K, 2)
    pix = centre[:, :, None, :] + offsets  # (B, L, K*K, 2)
    col, row = pix[..., 0], pix[..., 1]
    valid = finite[..., None] & (col >= 0) & (col < width) & (row >= 0) & (row < height)  # (B, L, K*K)
    batch = torch.arange(bsz, device=images.device)[:, None, None].expand_as(col)  # (B, L, K*K)
    out[batch[valid], :, row[valid], col[valid]] = colour  # advanced indices first: (N, 3) <- (3,)
    return out


def wireframe_mask(rast: torch.Tensor, width: float = 0.06) -> torch.Tensor:
    """(B, 1, H, W) image-layout mask of pixels near a triangle edge (smallest barycentric below ``width``).

    Used to overlay the mesh on an image: ``composite(colour, wireframe_mask(rast) * opacity, image)``.
    """
    u, v = rast[..., 0:1], rast[..., 1:2]
    nearest_edge = torch.minimum(torch.minimum(u, v), 1.0 - u - v)  # (B, H, W, 1)
    return to_image_layout(((nearest_edge < width) & (rast[..., 3:4] > 0)).to(rast.dtype))
