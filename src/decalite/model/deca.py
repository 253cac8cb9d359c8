"""The DECA model object: encoders, detail decoder, FLAME layer, albedo model and renderer, composed.

``encode(images) -> FaceCode`` runs E_coarse and E_detail; ``decode(code) -> DecaOutput`` builds the coarse head,
projects its landmarks, decodes the UV displacement from (jaw pose, expression, detail code) and renders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from decalite.flame.albedo import AlbedoModel
from decalite.flame.layer import FlameLayer
from decalite.geometry.camera import ndc_to_image_normalized, orthographic_project
from decalite.nets.codes import CodeSizes, split_code
from decalite.nets.detail_decoder import DetailDecoder, detail_latent
from decalite.nets.encoders import ResnetEncoder
from decalite.render.renderer import Renderer
from decalite.types import DecaOutput, FaceCode


class DECA(nn.Module):
    """DECA: image -> FaceCode -> detailed, animatable head.

    Args:
        flame: the FLAME layer (its n_shape / n_exp must match ``sizes``).
        renderer: the renderer built on the same mesh.
        sizes: code sizes.
        albedo: albedo model (its n_tex must match ``sizes.n_tex``), or None for a grey albedo.
        backbone: encoder backbone ("resnet50" as in DECA; "resnet18" for small CPU configurations).
        detail_size: side of F_d's displacement map (DECA: 256; smaller for small UV maps).

    DECA's fixed displacement map (``fixed_displacement_256.npy``) belongs to the renderer's detail path
    (:class:`~decalite.render.renderer.Renderer`), which adds it to every predicted displacement.
    """

    def __init__(
        self,
        flame: FlameLayer,
        renderer: Renderer,
        sizes: CodeSizes = CodeSizes(),
        albedo: AlbedoModel | None = None,
        backbone: str = "resnet50",
        detail_size: int = 256,
    ) -> None:
        super().__init__()
        if (flame.n_shape, flame.n_exp) != (sizes.n_shape, sizes.n_exp):
            raise ValueError(f"FLAME layer uses n_shape={flame.n_shape}, n_exp={flame.n_exp}; codes use {sizes}")
        if albedo is not None and albedo.n_tex != sizes.n_tex:
            raise ValueError(f"albedo model uses n_tex={albedo.n_tex}; codes use n_tex={sizes.n_tex}")
        self.sizes = sizes
        self.flame = flame
        self.renderer = renderer
        self.albedo = albedo
        self.coarse_encoder = ResnetEncoder(sizes.coarse, backbone)
        self.detail_encoder = ResnetEncoder(sizes.n_detail, backbone)
        self.detail_decoder = DetailDecoder(sizes.detail_latent, out_size=detail_size)

    def networks(self) -> dict[str, nn.Module]:
        """The trainable networks by the names checkpoints use (see :func:`decalite.nets.checkpoints.load_weights`)."""
        return {"coarse_encoder": self.coarse_encoder, "detail_encoder": self.detail_encoder,
                "detail_decoder": self.detail_decoder}

    def encode(self, images: torch.Tensor, detail: bool = True) -> FaceCode:
        """(B, 3, H, W) images in [0, 1] (DECA: 224 x 224) -> FaceCode (with the detail code unless detail=False)."""
        code = split_code(self.coarse_encoder(images), self.sizes)
        if detail:
            code.detail = self.detail_encoder(images)
        return code

    def displacement(self, code: FaceCode) -> torch.Tensor:
        """(B, 1, U, U) predicted UV displacement from (jaw pose, expression, detail code).

        F_d decodes ``detail_size`` (DECA: 256 x 256); it is resampled to the renderer's UV size U when that differs.

        The renderer masks it and adds the fixed map (:meth:`Renderer.detailed_uv_positions`).
        """
        if code.detail is None:
            raise ValueError("the code has no detail part: encode with detail=True or set code.detail")
        disp = self.detail_decoder(detail_latent(code.jaw_pose, code.exp, code.detail))  # (B, 1, Dd, Dd)
        size = self.renderer.face_eye_mask.shape[-1]
        if disp.shape[-1] != size:  # a renderer with another UV size (small CPU configurations)
            # in fp32: the CPU has no bf16 antialiased resize (trainer.precision=bf16-mixed on a CPU failed)
            disp = F.interpolate(disp.float(), size=(size, size), mode="bilinear", align_corners=False,
                                 antialias=True).to(disp.dtype)
        return disp

    def geometry(self, code: FaceCode):
        """Coarse FLAME output and projected landmarks for a code."""
        flame = self.flame(shape=code.shape, expression=code.exp, global_pose=code.global_pose, jaw_pose=code.jaw_pose)
        projected = orthographic_project(flame.landmarks2d, code.cam)
        return flame, ndc_to_image_normalized(projected[..., :2])

    def decode(
        self,
        code: FaceCode,
        render: bool = True,
        detail: bool | None = None,
        background: torch.Tensor | float | None = None,
    ) -> DecaOutput:
        """Build, project and render the head.

        Args:
            code: the codes.
            render: run the renderer.
            detail: decode the displacement (default: when the code has a detail part).
            background: the renderer's background.
        """
        flame, landmarks2d = self.geometry(code)
        albedo = self.albedo(code.tex) if self.albedo is not None else None
        use_detail = code.detail is not None if detail is None else detail
        disp = self.displacement(code) if use_detail else None
        out = DecaOutput(vertices=flame.vertices, landmarks2d=landmarks2d, landmarks3d=flame.landmarks3d,
                         landmarks2d_model=flame.landmarks2d, albedo=albedo, displacement=disp)
        if render:
            out.render = self.renderer(flame.vertices, code.cam, albedo, code.light, background, displacement=disp)
        return out

    def forward(self, images: torch.Tensor) -> DecaOutput:
        return self.decode(self.encode(images))
