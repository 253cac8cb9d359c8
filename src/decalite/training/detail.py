"""The detail stage: E_detail and F_d learn a UV displacement map from (jaw pose, expression, detail code) with
E_coarse frozen (DECA, Sec. 4.3).

The photometric terms compare in UV space, as DECA's release does: the photo is unwrapped onto the coarse
mesh's UV layout, and the predicted texture is the (detached) albedo times the SH shading of the detail
normals, on the texels that are visible (the photo's skin mask, facing the camera, inside the face-eye mask).
With ``detail_consistency`` the batch is doubled with detail codes swapped within each identity, so the detail
code must carry the person's static details while expression-dependent wrinkles come from (expression, jaw).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from decalite.data.swaps import within_group_permutation
from decalite.data.truth import true_code
from decalite.geometry.lighting import sh_shading
from decalite.losses.detail import displacement_error
from decalite.losses.objective import LossResult, objective
from decalite.model.deca import DECA
from decalite.render.renderer import GREY_ALBEDO
from decalite.render.uv_space import sample_image_in_uv
from decalite.training.base import StageModule, flatten_groups
from decalite.training.coarse import double_with_swapped
from decalite.training.config import StageConfig
from decalite.types import FaceCode

#: A texel counts as visible when its coarse normal faces the camera by at least this much (DECA: 0.05).
FACING = 0.05
#: ... and when its sample of the photo's skin mask is at least this (bilinear: 1 only wholly inside the skin).
SKIN_COVERED = 0.99


class DetailModule(StageModule):
    """Trains E_detail and F_d with E_coarse frozen (loaded from ``cfg.init_from``, a coarse checkpoint)."""

    stage = "detail"

    def __init__(self, deca: DECA, cfg: StageConfig, pretrained: dict[str, nn.Module] | None = None) -> None:
        super().__init__(deca, cfg, pretrained)
        deca.coarse_encoder.requires_grad_(False)

    def trainable(self) -> list[nn.Module]:
        return [self.deca.detail_encoder, self.deca.detail_decoder]

    def frozen(self) -> list[nn.Module]:
        return [*super().frozen(), self.deca.coarse_encoder]

    def coarse_code(self, flat: dict[str, torch.Tensor]) -> FaceCode:
        """The coarse codes the details build on: E_coarse's (frozen), or the data's true ones (``coarse_from``)."""
        if self.cfg.coarse_from == "truth":
            sizes = self.deca.sizes
            code = true_code(flat, sizes.n_shape, sizes.n_exp, sizes.n_tex)
            return code.map(lambda t: t.to(flat["images"].dtype))
        with torch.no_grad():
            return self.deca.encode(flat["images"], detail=False)

    def compute(self, batch: dict[str, Any]) -> tuple[LossResult, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        flat, groups, k = flatten_groups(batch)
        images, skin = flat["images"], flat["masks"]
        n = images.shape[0]
        code = self.coarse_code(flat)
        code.detail = self.deca.detail_encoder(images)
        if self.cfg.loss.detail_consistency and k > 1:
            perm = within_group_permutation(groups, k, self.generator, images.device)
            code = double_with_swapped(code, "detail", perm)
            images, skin = torch.cat([images, images]), torch.cat([skin, skin])
        displacement = self.deca.displacement(code)  # (N', 1, U, U)
        renderer = self.deca.renderer
        with torch.no_grad():
            vertices = self.deca.geometry(code)[0].vertices
            albedo = self.deca.albedo(code.tex) if self.deca.albedo is not None else None
        positions, normals, detail = renderer.uv_detail_normals(vertices, displacement, detach_coarse=True)
        if albedo is None:
            albedo = torch.full_like(positions, GREY_ALBEDO)
        uv_shading = sh_shading(detail.permute(0, 2, 3, 1), code.light.detach()).permute(0, 3, 1, 2)  # (N', 3, U, U)
        uv_texture = albedo.detach() * uv_shading
        with torch.no_grad():
            uv_target = sample_image_in_uv(images, positions, code.cam)
            uv_skin = sample_image_in_uv(skin, positions, code.cam)
            # Texels whose sample lies wholly on the skin (SKIN_COVERED): a texel at the skin mask's edge (the
            # silhouette, eyes, mouth) samples background or eyes, and D learned to re-shade those edges instead of
            # the details (issue 18: the edges were half the photometric residual of the true codes and true D).
            visibility = (uv_skin > SKIN_COVERED).to(uv_skin.dtype) * (normals[:, 2:3] > FACING).to(uv_skin.dtype) \
                * renderer.face_eye_mask * renderer.uv.valid
        context: dict[str, Any] = {"uv_texture": uv_texture, "uv_target": uv_target, "uv_visibility": visibility,
                                   "displacement": displacement, "uv_face_mask": renderer.face_eye_mask,
                                   "uv_shading": uv_shading}
        if "mrf" in self.pretrained:
            context["mrf_features"] = self.pretrained["mrf"]
        result = objective(self.cfg.loss.terms, context)
        with torch.no_grad():
            metrics = displacement_metrics(displacement[:n], flat, renderer.face_eye_mask)
        visuals = {"input": images[:n].detach(), "displacement": displacement[:n].detach(),
                   "uv_texture": uv_texture[:n].detach(), "uv_target": (uv_target * visibility)[:n],
                   "vertices": vertices[:n], "cam": code.cam[:n]}
        return result, metrics, visuals


def displacement_metrics(displacement: torch.Tensor, flat: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """On synthetic data (ground-truth ``disp`` in the batch): mean |D - D_true| inside the mask, in mm.

    Args:
        displacement: (N, 1, U, U) predicted. flat: the flattened batch. mask: (1, 1, U, U).
    """
    if "disp" not in flat:
        return {}
    err = displacement_error(displacement, flat["disp"].to(displacement.dtype), mask)  # (N,) metres
    return {"displacement_mm": 1000.0 * err.mean()}
