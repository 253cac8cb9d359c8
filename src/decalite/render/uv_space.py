"""UV space of a mesh: rasterize the UV layout once, then map per-vertex attributes to UV images (DECA's
world2uv), and build the dense detailed mesh (one vertex per valid UV texel) for export.

The UV layout's rasterization does not depend on the pose, so it is computed once (on the CPU, with decalite's
rasterizer) and kept as a non-persistent buffer that follows the module's device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from decalite.geometry.camera import ndc_to_image_normalized, orthographic_project
from decalite.geometry.mesh import face_vertices
from decalite.render.raster_torch import rasterize
from decalite.render.stages import interpolate, to_image_layout
from decalite.types import UVLayout


class UVSpace(nn.Module):
    """Rasterized UV layout of a mesh.

    Args:
        layout: the mesh's UV layout (faces, verts_uvs, faces_uvs).
        uv_size: U, the side of the square UV images.
    """

    def __init__(self, layout: UVLayout, uv_size: int = 256) -> None:
        super().__init__()
        self.uv_size = int(uv_size)
        uvs = torch.as_tensor(np.asarray(layout.verts_uvs), dtype=torch.float32)
        faces_uvs = torch.as_tensor(np.asarray(layout.faces_uvs), dtype=torch.long)
        clip = torch.cat([uvs * 2.0 - 1.0, torch.zeros_like(uvs[:, :1]), torch.ones_like(uvs[:, :1])], 1)  # (T, 4)
        rast = rasterize(clip[None], faces_uvs, (self.uv_size, self.uv_size))  # (1, U, U, 4), v = 0 at row 0
        self.register_buffer("rast", rast, persistent=False)
        self.register_buffer("faces", torch.as_tensor(np.asarray(layout.faces), dtype=torch.long), persistent=False)
        n_faces = faces_uvs.shape[0]
        # Face-corner "vertices": corner k of face f is vertex 3 f + k, so per-vertex attributes of the mesh and
        # per-uv-vertex attributes of the layout can be interpolated with the same rasterization.
        self.register_buffer("corner_faces", torch.arange(3 * n_faces).reshape(n_faces, 3), persistent=False)
        self.register_buffer("corner_uvs", uvs[faces_uvs].reshape(-1, 2), persistent=False)  # (3F, 2)

    @property
    def valid(self) -> torch.Tensor:
        """(1, 1, U, U) 1 where a texel lies inside some UV triangle."""
        return to_image_layout((self.rast[..., 3:4] > 0).to(self.rast.dtype))

    def world2uv(self, attributes: torch.Tensor) -> torch.Tensor:
        """Per-vertex attributes (B, V, C) -> UV images (B, C, U, U), zeros outside the chart."""
        return self.corners2uv(face_vertices(attributes, self.faces).flatten(1, 2))  # (B, F, 3, C) -> (B, 3F, C)

    def corners2uv(self, corners: torch.Tensor) -> torch.Tensor:
        """Per-face-corner attributes (B, 3F, C) (corner k of face f at 3 f + k: values that differ across a UV seam,
        e.g. tangents) -> UV images (B, C, U, U), zeros outside the chart."""
        rast = self.rast.to(corners.dtype).expand(corners.shape[0], -1, -1, -1)
        return to_image_layout(interpolate(corners, rast, self.corner_faces))

    def pixel_uvs(self, rast: torch.Tensor) -> torch.Tensor:
        """UV coordinates (B, H, W, 2) of the surface seen in each pixel of an image rasterization ``rast``."""
        return interpolate(self.corner_uvs.to(rast.dtype), rast, self.corner_faces)


def dense_detail_mesh(positions: torch.Tensor, valid: torch.Tensor, normals: torch.Tensor | None = None):
    """The dense detailed mesh: one vertex per valid texel, two triangles per fully valid 2x2 block of texels.

    Args:
        positions: (3, U, U) detailed positions (``uv positions + displacement * normal``) of one head.
        valid: (U, U) bool, texels to turn into vertices (e.g. the face mask and the chart's coverage).
        normals: optional (3, U, U) normals used to orient the faces outwards (default: as the UV chart is).

    Returns:
        vertices (N, 3) float numpy array, faces (M, 3) int64 numpy array, and the (N, 2) integer texel
        (row, col) of each vertex.
    """
    valid = valid.bool().cpu()
    pos = positions.detach().cpu().permute(1, 2, 0)  # (3, U, U) -> (U, U, 3)
    index = torch.full(valid.shape, -1, dtype=torch.long)
    rows, cols = torch.nonzero(valid, as_tuple=True)
    index[rows, cols] = torch.arange(len(rows))
    a, b = index[:-1, :-1], index[:-1, 1:]  # top-left, top-right of each 2x2 block
    c, d = index[1:, :-1], index[1:, 1:]  # bottom-left, bottom-right
    full = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
    # Counter-clockwise in the UV image with v up: (bottom-left, bottom-right, top-right), (bottom-left, top-right, top-left).
    faces = torch.cat([torch.stack([c[full], d[full], b[full]], 1), torch.stack([c[full], b[full], a[full]], 1)])
    verts = pos[rows, cols]
    if normals is not None and len(faces):
        tri = verts[faces]  # (M, 3, 3)
        fn = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
        ref = normals.detach().cpu().permute(1, 2, 0)[rows, cols][faces].mean(1)
        if (fn * ref).sum() < 0:
            faces = faces[:, [0, 2, 1]]
    return verts.numpy(), faces.numpy(), torch.stack([rows, cols], 1).numpy()


def sample_image_in_uv(image: torch.Tensor, uv_positions: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Unwrap an image into UV space: sample it where each texel's surface point projects (DECA's texture
    extraction; visibility is the caller's).

    Args:
        image: (B, C, H, W) image (row 0 at the top).
        uv_positions: (B, 3, U, U) UV position map (model space).
        cam: (B, 3) orthographic camera (s, tx, ty).

    Returns:
        (B, C, U, U) bilinear samples (border values outside the image).
    """
    b, _, u, v = uv_positions.shape
    points = uv_positions.permute(0, 2, 3, 1).reshape(b, u * v, 3)  # (B, 3, U, U) -> (B, U*U, 3)
    grid = ndc_to_image_normalized(orthographic_project(points, cam)[..., :2]).reshape(b, u, v, 2)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=False)
