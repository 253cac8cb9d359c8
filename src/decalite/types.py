"""Typed containers passed between decalite's modules.

Keep this module free of heavy logic: plain dataclasses of tensors, each field documented with its shape.
``B`` is the batch size, ``V`` the number of mesh vertices and ``J`` the number of joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class FlameOutput:
    """The result of one :class:`decalite.flame.layer.FlameLayer` forward pass (metres, model space).

    Attributes:
        vertices: (B, V, 3) posed mesh vertices.
        landmarks2d: (B, 68, 3) the landmark set used for 2D fitting: the 17 jaw-contour points chosen by the
            head's yaw (dynamic embedding) followed by the 51 static inner-face points.
        landmarks3d: (B, 68, 3) the full 68 3D landmarks of the fixed (full) embedding.
        joints: (B, J, 3) posed joint locations, in the order of ``decalite.flame.model_data.JOINT_NAMES``.
    """

    vertices: torch.Tensor
    landmarks2d: torch.Tensor
    landmarks3d: torch.Tensor
    joints: torch.Tensor


@dataclass
class Fragments:
    """One rasterisation of a posed mesh under one camera, and what every render of it shares (pytorch3d's
    Fragments idea): the albedo render, the grey shape renders and the detail render of the same vertices and
    camera rasterise once (:meth:`decalite.render.renderer.Renderer.rasterize_mesh`).

    Attributes:
        rast: (B, H, W, 4) the rasterizer's output (barycentrics u, v, depth, triangle id + 1; 0 = empty), in the
            rasterizer's bottom-up row layout.
        vertices_ndc: (B, V, 3) the projected vertices (x, y up, z) in NDC.
        covered: (B, H, W, 1) 1 where a triangle covers the pixel.
        pixel_uv: (B, H, W, 2) the UV coordinates seen in each pixel.
        vertex_normals: (B, V, 3) unit vertex normals of the posed mesh.
        normals: (B, H, W, 3) interpolated unit normals per pixel (0 outside the mesh).
    """

    rast: torch.Tensor
    vertices_ndc: torch.Tensor
    covered: torch.Tensor
    pixel_uv: torch.Tensor
    vertex_normals: torch.Tensor
    normals: torch.Tensor


@dataclass
class RenderOutput:
    """The result of one :class:`decalite.render.renderer.Renderer` forward pass.

    Images are (B, C, H, W) with row 0 at the top; UV maps are (B, C, U, U) with row 0 at v = 1.

    Attributes:
        image: (B, 3, H, W) shaded albedo composited over the background.
        alpha: (B, 1, H, W) 1 where the mesh covers the pixel.
        albedo: (B, 3, H, W) albedo seen in each pixel (0 outside the mesh).
        normals: (B, 3, H, W) unit surface normals seen in each pixel (0 outside).
        shading: (B, 3, H, W) SH shading of the coarse normals.
        depth: (B, 1, H, W) NDC depth z' (larger = nearer the camera), 0 outside.
        vertices_ndc: (B, V, 3) projected vertices (x, y up, z) in NDC.
        face_mask: (B, 1, H, W) the UV face-eye mask seen in each pixel (0 outside the mesh): DECA's
            photometric loss compares ``image * face_mask`` with the photo.
        fragments: the rasterisation this render used (:class:`Fragments`): pass it to another render of the same
            vertices and camera (``Renderer.render_shape(..., fragments=out.fragments)``) to skip rasterising again.
        uv_positions: (B, 3, U, U) position map of the posed mesh, or None (only with a displacement).
        uv_normals: (B, 3, U, U) coarse unit normals in UV space, or None (only with a displacement).
        uv_detail_normals: (B, 3, U, U) detail normals in UV space, or None.
        detail_normals: (B, 3, H, W) detail normals seen in each pixel, or None.
        detail_shading: (B, 3, H, W) SH shading of the detail normals, or None.
        image_detail: (B, 3, H, W) albedo times detail shading over the background, or None.
    """

    image: torch.Tensor
    alpha: torch.Tensor
    albedo: torch.Tensor
    normals: torch.Tensor
    shading: torch.Tensor
    depth: torch.Tensor
    vertices_ndc: torch.Tensor
    face_mask: torch.Tensor | None = None
    fragments: Fragments | None = None
    uv_positions: torch.Tensor | None = None
    uv_normals: torch.Tensor | None = None
    uv_detail_normals: torch.Tensor | None = None
    detail_normals: torch.Tensor | None = None
    detail_shading: torch.Tensor | None = None
    image_detail: torch.Tensor | None = None


@dataclass
class FaceCode:
    """DECA's per-image codes (the coarse encoder's output split into its parts, plus the detail code).

    Attributes:
        shape: (B, n_shape) FLAME identity coefficients.
        tex: (B, n_tex) albedo coefficients.
        exp: (B, n_exp) FLAME expression coefficients.
        pose: (B, 6) global head rotation (3, axis-angle) then jaw rotation (3).
        cam: (B, 3) orthographic camera (s, tx, ty).
        light: (B, 9, 3) SH lighting coefficients (9 bands x RGB).
        detail: (B, n_detail) identity detail code, or None before the detail encoder ran.
    """

    shape: torch.Tensor
    tex: torch.Tensor
    exp: torch.Tensor
    pose: torch.Tensor
    cam: torch.Tensor
    light: torch.Tensor
    detail: torch.Tensor | None = None

    def map(self, fn) -> FaceCode:
        """A new FaceCode with ``fn`` applied to every tensor (e.g. ``lambda t: t[:1]`` or ``.to(device)``)."""
        return FaceCode(**{k: (None if v is None else fn(v)) for k, v in self.__dict__.items()})

    @property
    def global_pose(self) -> torch.Tensor:
        """(B, 3) global head rotation."""
        return self.pose[:, :3]

    @property
    def jaw_pose(self) -> torch.Tensor:
        """(B, 3) jaw rotation."""
        return self.pose[:, 3:]


@dataclass
class DecaOutput:
    """What :meth:`decalite.model.deca.DECA.decode` returns for a batch of codes.

    Attributes:
        vertices: (B, V, 3) coarse FLAME vertices (model space, metres).
        landmarks2d: (B, 68, 2) projected 2D-fitting landmarks, image-normalised ([-1, 1], +y down).
        landmarks3d: (B, 68, 3) the full 3D landmarks (model space).
        landmarks2d_model: (B, 68, 3) the 2D-fitting landmarks in model space (before projection).
        albedo: (B, 3, U, U) UV albedo, or None when no albedo model is configured (grey is rendered).
        displacement: (B, 1, U, U) UV displacement (metres) when the detail branch ran, else None.
        render: the renderer's output (coarse image, alpha, normals, ... and the detail images when a
            displacement was given), or None when rendering was skipped.
    """

    vertices: torch.Tensor
    landmarks2d: torch.Tensor
    landmarks3d: torch.Tensor
    landmarks2d_model: torch.Tensor
    albedo: torch.Tensor | None = None
    displacement: torch.Tensor | None = None
    render: RenderOutput | None = None


@dataclass(frozen=True, eq=False)
class UVLayout:
    """Mesh and UV layout of ``head_template.obj``.

    Attributes:
        vertices: (V, 3) float64 positions.
        faces: (F, 3) int64 vertex indices.
        verts_uvs: (T, 2) float64 texture coordinates in [0, 1], origin bottom-left (OBJ convention).
        faces_uvs: (F, 3) int64 indices into ``verts_uvs``.
        source: where the arrays came from (a path), for messages.
    """

    vertices: np.ndarray
    faces: np.ndarray
    verts_uvs: np.ndarray
    faces_uvs: np.ndarray
    source: str = ""
