"""The Renderer module: FLAME output + orthographic camera + albedo + SH light -> images, masks, normals, depth,
and (with a displacement map) UV-space detail normals and the detail-shaded image.

A mesh is rasterised once per vertices and camera (:meth:`Renderer.rasterize_mesh` -> :class:`~decalite.types.
Fragments`); every render of it (albedo, grey shape, details) can reuse that rasterisation.

Everything after rasterization is shared by both rasterizer backends. Camera and y-flip conventions live in
:mod:`decalite.geometry.camera`; images come out (B, C, H, W) with row 0 at the top.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from decalite.geometry.camera import orthographic_project, to_clip
from decalite.geometry.lighting import SH_CONSTANTS, sh_shading, white_light
from decalite.geometry.mesh import is_closed, vertex_normals
from decalite.geometry.uv import detail_normals, displace
from decalite.precision import full_precision
from decalite.render.rasterizer import Rasterizer
from decalite.render.stages import (
    composite,
    from_image_layout,
    interpolate,
    sample_texture,
    to_image_layout,
)
from decalite.render.uv_space import UVSpace
from decalite.types import Fragments, RenderOutput, UVLayout

GREY_ALBEDO = 0.7


class ShapeImages(NamedTuple):
    """Grey shape renders (:meth:`Renderer.render_shape`): coarse (B, 3, H, W); detailed (B, 3, H, W), None
    without a displacement; the rasterisation they used."""

    coarse: torch.Tensor
    detailed: torch.Tensor | None
    fragments: Fragments

    @property
    def best(self) -> torch.Tensor:
        """The detailed render when there is one, else the coarse one."""
        return self.coarse if self.detailed is None else self.detailed


def shape_light(batch: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """(B, 9, 3) a soft white light from the front and slightly above, for grey "shape" renders."""
    light = torch.zeros(batch, 9, 3, dtype=dtype, device=device)
    light[:, 0] = 0.45 / SH_CONSTANTS[0]
    light[:, 2] = 0.30 / SH_CONSTANTS[2]  # from above (+y)
    light[:, 3] = 0.40 / SH_CONSTANTS[3]  # from the camera (+z)
    return light


def _uv_map(values: np.ndarray | torch.Tensor | None, uv_size: int, fill: float) -> torch.Tensor:
    """(U', U') map -> (1, 1, U, U) float32 (resized bilinearly when U' != U); None gives a constant map."""
    if values is None:
        return torch.full((1, 1, uv_size, uv_size), fill)
    out = torch.as_tensor(np.asarray(values), dtype=torch.float32).reshape(1, 1, *np.shape(values)[-2:])
    if out.shape[-1] != uv_size:
        out = F.interpolate(out, size=(uv_size, uv_size), mode="bilinear", align_corners=False)
    return out


class Renderer(nn.Module):
    """Differentiable renderer of a FLAME-topology mesh.

    Args:
        layout: the mesh's faces and UV layout.
        face_eye_mask: (U', U') mask where details apply (DECA's uv_face_eye_mask); resized to ``uv_size``.
            None: details apply everywhere.
        image_size: H = W of rendered images.
        uv_size: U of UV maps.
        backend: rasterizer backend, "auto" (nvdiffrast on CUDA when importable, else torch), "torch" or
            "nvdiffrast".
        cull_backfaces: drop triangles seen from behind. "auto" culls only when the mesh is closed (decalite's
            generated head), where it merely saves work; FLAME is open at the mouth and the neck, and culling
            would show see-through pixels where DECA's renderer shows the inner faces of the mouth.
        antialias: nvdiffrast's antialiasing of silhouettes (no effect on the torch backend).
        fixed_displacement: (U', U') map added to every predicted displacement (DECA's
            fixed_displacement_256.npy, in metres), unmasked as in DECA; None adds nothing.
        detach_coarse_detail: as DECA's displacement2normal, the detail path sees the coarse UV position and
            normal maps detached, so detail losses do not move the coarse geometry. ``forward`` can override it.
    """

    def __init__(
        self,
        layout: UVLayout,
        face_eye_mask: np.ndarray | None = None,
        image_size: int = 224,
        uv_size: int = 256,
        backend: str = "auto",
        cull_backfaces: bool | str = "auto",
        antialias: bool = False,
        fixed_displacement: np.ndarray | torch.Tensor | None = None,
        detach_coarse_detail: bool = True,
    ) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.antialias = antialias
        self.detach_coarse_detail = detach_coarse_detail
        self.rasterizer = Rasterizer(backend)
        self.uv = UVSpace(layout, uv_size)
        if cull_backfaces == "auto":
            cull_backfaces = is_closed(self.uv.faces)
        elif not isinstance(cull_backfaces, bool):
            raise ValueError(f"cull_backfaces must be true, false or 'auto'; got {cull_backfaces!r}")
        self.cull_backfaces = cull_backfaces
        self.register_buffer("face_eye_mask", _uv_map(face_eye_mask, uv_size, 1.0), persistent=False)
        fixed = None if fixed_displacement is None else _uv_map(fixed_displacement, uv_size, 0.0)
        self.register_buffer("fixed_displacement", fixed, persistent=False)

    @property
    def faces(self) -> torch.Tensor:
        """(F, 3) long triangle vertex indices."""
        return self.uv.faces

    def rasterize(self, vertices_ndc: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) NDC vertices -> rast (B, H, W, 4) in the rasterizer's bottom-up layout."""
        size = (self.image_size, self.image_size)
        return self.rasterizer.rasterize(to_clip(vertices_ndc), self.faces, size, cull_backfaces=self.cull_backfaces)

    def rasterize_mesh(self, vertices: torch.Tensor, cam: torch.Tensor) -> Fragments:
        """Rasterise posed vertices (B, V, 3) under the orthographic camera (B, 3): what every render of them
        shares (:class:`~decalite.types.Fragments`)."""
        dtype = vertices.dtype
        ndc = orthographic_project(vertices, cam)  # (B, V, 3)
        rast = self.rasterize(ndc).to(dtype)  # nvdiffrast always answers in float32
        covered = (rast[..., 3:4] > 0).to(dtype)  # (B, H, W, 1)
        normals_v = vertex_normals(vertices, self.faces)  # (B, V, 3)
        normals = F.normalize(interpolate(normals_v, rast, self.faces), dim=-1) * covered  # (B, H, W, 3)
        return Fragments(rast=rast, vertices_ndc=ndc, covered=covered, pixel_uv=self.uv.pixel_uvs(rast),
                         vertex_normals=normals_v, normals=normals)

    @full_precision
    def forward(
        self,
        vertices: torch.Tensor,
        cam: torch.Tensor,
        albedo: torch.Tensor | None = None,
        light: torch.Tensor | None = None,
        background: torch.Tensor | float | None = None,
        displacement: torch.Tensor | None = None,
        detach_coarse: bool | None = None,
        fragments: Fragments | None = None,
    ) -> RenderOutput:
        """Render.

        Args:
            vertices: (B, V, 3) posed vertices in model space (metres).
            cam: (B, 3) orthographic camera (s, tx, ty).
            albedo: (B, 3, U', U') UV albedo in [0, 1]; None gives a uniform grey.
            light: (B, 9, 3) SH coefficients; None gives white light of intensity 1.
            background: (B, 3, H, W) image, a constant, or None (black).
            displacement: (B, 1, U, U) predicted UV displacement map (metres along the normal), or None. It is
                masked by the face-eye mask; the fixed displacement is added unmasked.
            detach_coarse: detach the coarse UV maps in the detail path (default: ``detach_coarse_detail``).
            fragments: the rasterisation of these vertices under this camera (a previous render's
                ``out.fragments``, or :meth:`rasterize_mesh`); None rasterises.
        """
        bsz, dtype = vertices.shape[0], vertices.dtype
        if fragments is None:
            fragments = self.rasterize_mesh(vertices, cam)
        elif fragments.vertices_ndc.shape != vertices.shape:
            raise ValueError(f"fragments of {tuple(fragments.vertices_ndc.shape)} vertices given for "
                             f"{tuple(vertices.shape)}: pass the rasterisation of these vertices")
        rast, ndc, covered = fragments.rast, fragments.vertices_ndc, fragments.covered
        normals_v, normals, pixel_uv = fragments.vertex_normals, fragments.normals, fragments.pixel_uv
        if albedo is None:
            albedo_px = torch.full_like(normals, GREY_ALBEDO)
        else:
            albedo_px = sample_texture(albedo, pixel_uv)
        albedo_px = albedo_px * covered
        if light is None:
            light = white_light(bsz, dtype=dtype, device=vertices.device)
        shading = sh_shading(normals, light) * covered  # (B, H, W, 3)
        depth = interpolate(ndc[..., 2:3], rast, self.faces) * covered  # (B, H, W, 1)

        alpha = to_image_layout(covered)
        image = self._finish(albedo_px * shading, alpha, rast, ndc, background)
        face_mask = sample_texture(self.face_eye_mask.to(dtype).expand(bsz, -1, -1, -1), pixel_uv) * covered
        out = RenderOutput(
            image=image,
            alpha=alpha,
            albedo=to_image_layout(albedo_px),
            normals=to_image_layout(normals),
            shading=to_image_layout(shading),
            depth=to_image_layout(depth),
            vertices_ndc=ndc,
            face_mask=to_image_layout(face_mask),
            fragments=fragments,
        )
        if displacement is not None:
            uv_positions, uv_normals, uv_detail = self.uv_detail_normals(vertices, displacement, normals_v,
                                                                         detach_coarse)
            d_normals = F.normalize(sample_texture(uv_detail, pixel_uv), dim=-1) * covered  # (B, H, W, 3)
            d_shading = sh_shading(d_normals, light) * covered
            out.uv_positions = uv_positions
            out.uv_normals = uv_normals
            out.uv_detail_normals = uv_detail
            out.detail_normals = to_image_layout(d_normals)
            out.detail_shading = to_image_layout(d_shading)
            out.image_detail = self._finish(albedo_px * d_shading, alpha, rast, ndc, background)
        return out

    def coarse_uv_maps(
        self, vertices: torch.Tensor, normals_v: torch.Tensor | None = None, detach: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """UV position map (B, 3, U, U) and unit normal map (B, 3, U, U) of posed vertices (B, V, 3)."""
        if normals_v is None:
            normals_v = vertex_normals(vertices, self.faces)
        positions = self.uv.world2uv(vertices)
        normals = F.normalize(self.uv.world2uv(normals_v), dim=1)
        if detach:
            return positions.detach(), normals.detach()
        return positions, normals

    def uv_detail_normals(
        self,
        vertices: torch.Tensor,
        displacement: torch.Tensor,
        normals_v: torch.Tensor | None = None,
        detach_coarse: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The detail path in UV space (no rasterization of the image).

        Args:
            vertices: (B, V, 3) posed vertices. displacement: (B, 1, U, U) predicted displacement.
            normals_v: (B, V, 3) vertex normals, or None to compute them.
            detach_coarse: detach the coarse maps (default: ``detach_coarse_detail``).

        Returns:
            coarse positions (B, 3, U, U), coarse unit normals (B, 3, U, U), detail unit normals (B, 3, U, U).
        """
        detach = self.detach_coarse_detail if detach_coarse is None else detach_coarse
        positions, normals = self.coarse_uv_maps(vertices, normals_v, detach)
        detail = detail_normals(positions, normals, displacement, self.face_eye_mask, self.fixed_displacement)
        return positions, normals, detail

    def detailed_uv_positions(self, vertices: torch.Tensor, displacement: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Detailed UV positions (B, 3, U, U) for the dense mesh, and the coarse UV normals (B, 3, U, U).

        Args:
            vertices: (B, V, 3) posed vertices. displacement: (B, 1, U, U) predicted displacement.
        """
        positions, normals = self.coarse_uv_maps(vertices)
        return displace(positions, normals, displacement, self.face_eye_mask, self.fixed_displacement), normals

    def _finish(self, colour: torch.Tensor, alpha: torch.Tensor, rast, ndc, background) -> torch.Tensor:
        """Raster-layout colour (B, H, W, 3) -> composited image (B, 3, H, W), antialiased on nvdiffrast."""
        image = composite(to_image_layout(colour), alpha, background)
        if self.antialias and self.rasterizer.last_backend == "nvdiffrast":
            image = to_image_layout(self.rasterizer.antialias(from_image_layout(image), rast, to_clip(ndc), self.faces))
        return image

    def render_shape(
        self,
        vertices: torch.Tensor,
        cam: torch.Tensor,
        displacement: torch.Tensor | None = None,
        background: torch.Tensor | float | None = None,
        fragments: Fragments | None = None,
    ) -> ShapeImages:
        """Grey shaded renders of the geometry (:class:`ShapeImages`): the coarse one, and the detailed one when a
        displacement (B, 1, U, U) is given, from one rasterisation (``fragments``: reuse another render's)."""
        light = shape_light(vertices.shape[0], vertices.dtype, vertices.device)
        out = self.forward(vertices, cam, None, light, background, displacement=displacement, fragments=fragments)
        detailed = None if displacement is None else out.image_detail.clamp(0.0, 1.0)
        return ShapeImages(coarse=out.image.clamp(0.0, 1.0), detailed=detailed, fragments=out.fragments)
