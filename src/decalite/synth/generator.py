"""Rendering synthetic identities with ground truth: :class:`SyntheticGenerator`.

Every identity gets a random shape, albedo and detail code; each of its images a random expression, jaw
opening, head pose, SH light, camera and background (:mod:`decalite.synth.sampling`). Images are rendered with
the detail path of :class:`decalite.render.renderer.Renderer` (``image_detail``) and cropped exactly like
prepared real data (:mod:`decalite.synth.record`).

Ground-truth camera convention
------------------------------
``gt["cam"]`` (N, 3) is the orthographic camera ``(s, tx, ty)`` of the **stored crop**: with the FLAME
output of the stored codes (``shape``, ``exp``, ``pose`` = global 3 + jaw 3, zero neck and eye poses),
``orthographic_project(landmarks2d, cam)`` gives NDC points of the crop (+y up) and
``ndc_to_pixels(ndc[..., :2], size, size) - 0.5`` the stored ``lmk.npy`` landmarks (pixel-index
coordinates; exact up to float rounding when ``landmark_noise`` is 0). Equivalently,
``ndc_to_image_normalized`` of the same NDC points gives the landmarks in the crop's image-normalised [-1, 1]
frame (+y down). ``gt["lmk3d"]`` holds those (N, 68, 3) 3D landmarks (model space). The camera the image was
rendered with (in the ``render_size`` frame) and the 2x3 render->crop pixel matrix are kept in the meta as
``render_cams`` and ``crop_matrices``; :func:`decalite.synth.cameras.crop_camera` converts one into the other.

Determinism: every identity draws from its own ``torch.Generator`` seeded from ``(seed, identity index)``; no
global random state is used, so the same configuration writes byte-identical shards (with the same torch
build, device and thread count; rasterization and reductions are not promised bit-stable across those).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from decalite.config import FlameConfig, RendererConfig
from decalite.data import shards
from decalite.flame.arkit import is_arkit_head, limit_mouth_close
from decalite.flame.assets import FlameAssets, load_flame_assets
from decalite.flame.generated import generate_head
from decalite.geometry.camera import ndc_to_pixels, orthographic_project
from decalite.model.factory import build_flame, build_renderer
from decalite.render.stages import sample_texture, to_image_layout
from decalite.synth.cameras import face_camera
from decalite.synth.config import SyntheticConfig
from decalite.synth.details import DetailModel
from decalite.synth.record import crop_renders, sample_meta
from decalite.synth.sampling import Draws, draw_identity, draw_images, identity_seed
from decalite.types import FlameOutput, RenderOutput


class SyntheticGenerator:
    """Renders synthetic identities with ground truth.

    Args:
        cfg: what to generate.
        assets_dir: a FLAME-format asset folder (licensed FLAME or a written generated head); None generates
            decalite's head (seed 0) in memory.
        expression_names: names of the expression components; "auto" uses the names the head's files give
            (the generated head's and the ICT head's; none for FLAME 2020's PCA expressions).
    """

    def __init__(self, cfg: SyntheticConfig, assets_dir: str | Path | None = None,
                 expression_names: Sequence[str] | str = "auto") -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        assets = _load_assets(assets_dir, cfg.n_tex)
        if expression_names == "auto":
            expression_names = assets.model.expression_names
        self.assets_source = "generated" if assets.generated else str(assets_dir)
        self.blendshapes = is_arkit_head(assets.model.expression_names)
        self.expression_names = assets.model.expression_names
        self.jaw_open_angle = assets.model.jaw_open_angle
        # What the draws use: the jaw range capped at the head's jawOpen angle, where it has one.
        self.draw_cfg = cfg if not self.jaw_open_angle else dataclasses.replace(
            cfg, jaw=(min(cfg.jaw[0], self.jaw_open_angle), min(cfg.jaw[1], self.jaw_open_angle)))
        self.flame = build_flame(FlameConfig(dir=None, n_shape=cfg.n_shape, n_exp=cfg.n_exp), assets).to(self.device)
        renderer = RendererConfig(backend=cfg.backend, image_size=cfg.render_size, uv_size=cfg.uv_size)
        self.renderer = build_renderer(renderer, assets).to(self.device)
        if assets.albedo is None:
            raise ValueError(f"the FLAME folder {assets_dir} has no albedo model; synthetic data needs one")
        n_tex = min(cfg.n_tex, assets.albedo.n_components)
        self.n_tex = n_tex
        self.albedo_mean = torch.from_numpy(np.ascontiguousarray(assets.albedo.mean)).permute(2, 0, 1).float()
        self.albedo_basis = torch.from_numpy(np.ascontiguousarray(assets.albedo.basis[..., :n_tex])).float()
        self.face_mask = torch.as_tensor(np.asarray(assets.face_mask), dtype=torch.float32)[None, None]
        with torch.no_grad():
            neutral = self.flame(batch_size=1)
            positions = self.renderer.uv.world2uv(neutral.vertices)[0]  # (3, U, U)
        self.detail = DetailModel(positions.cpu(), neutral.landmarks3d[0].cpu(),
                                  self.renderer.face_eye_mask[0, 0].cpu(), expression_names,
                                  width=cfg.detail_width, noise=cfg.detail_noise).to(self.device)

    def albedo(self, tex: torch.Tensor) -> torch.Tensor:
        """(B, n_tex) albedo codes -> (B, 3, A, A) UV albedo in [0, 1]."""
        maps = self.albedo_mean[None] + torch.einsum("hwcn,bn->bchw", self.albedo_basis, tex)
        return maps.clamp(0.0, 1.0)

    def skin_mask(self, vertices_ndc: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in {0, 1}: covered pixels whose surface point lies in the UV face mask."""
        rast = self.renderer.rasterize(vertices_ndc)
        covered = (rast[..., 3:4] > 0).float()
        inside = sample_texture(self.face_mask.to(rast.device).expand(rast.shape[0], -1, -1, -1),
                                self.renderer.uv.pixel_uvs(rast))
        return to_image_layout((inside > 0.5).float() * covered)

    def _render(self, ident: dict[str, torch.Tensor], d: Draws,
                jaw_pose: torch.Tensor) -> tuple[FlameOutput, torch.Tensor, torch.Tensor, RenderOutput]:
        """Pose, detail and render K images of one identity: (FlameOutput, render cams (K, 3), disp, RenderOutput)."""
        k, dev = d.expression.shape[0], self.device
        flame = self.flame(shape=ident["shape"].expand(k, -1).to(dev), expression=d.expression.to(dev),
                           global_pose=d.global_pose.to(dev), jaw_pose=jaw_pose.to(dev))
        cam = face_camera(flame.landmarks2d.cpu(), d.fraction, d.shift)
        disp = self.detail(ident["detail"].expand(k, -1).to(dev), d.expression.to(dev), d.jaw.to(dev))
        disp = disp * self.cfg.detail_scale
        albedo = self.albedo(ident["tex"]).to(dev).expand(k, -1, -1, -1)
        out = self.renderer(flame.vertices, cam.to(dev), albedo, d.light.to(dev), d.background.to(dev),
                            displacement=disp)
        return flame, cam, disp, out

    @torch.no_grad()
    def generate_identity(self, index: int) -> shards.IdentitySample:
        """Render identity ``index`` (K images) with its ground truth; deterministic in (cfg, index)."""
        cfg, k = self.cfg, self.cfg.images_per_identity
        g = torch.Generator().manual_seed(identity_seed(cfg.seed, index))
        ident = draw_identity(cfg, self.n_tex, g)
        d = draw_images(self.draw_cfg, k, g, blendshapes=self.blendshapes)
        if self.blendshapes and self.jaw_open_angle:
            d.expression = limit_mouth_close(d.expression, self.expression_names, d.jaw, self.jaw_open_angle)
        jaw_pose = torch.zeros(k, 3)
        jaw_pose[:, 0] = d.jaw
        flame, cam, disp, out = self._render(ident, d, jaw_pose)
        lmk_ndc = orthographic_project(flame.landmarks2d, cam.to(flame.landmarks2d.device))
        lmk_px = ndc_to_pixels(lmk_ndc[..., :2], cfg.render_size, cfg.render_size) - 0.5
        images = (out.image_detail.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        masks = (self.skin_mask(out.vertices_ndc)[:, 0] * 255.0).to(torch.uint8).cpu().numpy()
        crops = crop_renders(images, masks, lmk_px.cpu().numpy().astype(np.float64), cam.numpy().astype(np.float64),
                             cfg.render_size, cfg.size)
        name = f"synth{index:06d}"
        gt = {
            "shape": ident["shape"].expand(k, -1).numpy(), "tex": ident["tex"].expand(k, -1).numpy(),
            "exp": d.expression.numpy(), "pose": torch.cat([d.global_pose, jaw_pose], 1).numpy(),
            "cam": crops["cams"], "light": d.light.numpy(), "detail": ident["detail"].expand(k, -1).numpy(),
            "lmk3d": flame.landmarks2d.cpu().numpy(), "verts": flame.vertices.cpu().numpy(),
            "disp": disp.cpu().numpy(),
        }
        landmarks = crops["landmarks"] + d.lmk_noise.numpy().astype(np.float64)
        meta = sample_meta(cfg, name, index, crops, cam.numpy(), self.assets_source)
        return shards.IdentitySample(identity=name, images=crops["images"], landmarks=landmarks.astype(np.float32),
                                     masks=crops["masks"], meta=meta, gt=gt)


def _load_assets(assets_dir: str | Path | None, n_tex: int) -> FlameAssets:
    """The folder's assets (with an albedo model), or the generated head (seed 0) built in memory."""
    if assets_dir is None:
        head = generate_head(0)
        return FlameAssets(model=head.model, embedding=head.embedding, uv=head.uv, face_mask=head.face_mask,
                           face_eye_mask=head.face_eye_mask, albedo=head.albedo, root="<generated>", generated=True)
    return load_flame_assets(assets_dir, n_tex=n_tex, require_albedo=True)


def generate_identity(cfg: SyntheticConfig, index: int, assets_dir: str | Path | None = None) -> shards.IdentitySample:
    """Identity ``index`` of the dataset ``cfg`` describes (builds a generator; reuse one for many)."""
    return SyntheticGenerator(cfg, assets_dir).generate_identity(index)
