"""The coarse stage (and the pretrain stage, a coarse stage with landmark terms only and K = 1).

E_coarse regresses shape, expression, pose, camera, albedo and light from each photo; FLAME, the albedo model
and the renderer turn the code into landmarks and an SH-shaded render, compared with the photo's landmarks and
skin pixels (DECA, Sec. 4.2). With ``shape_consistency`` the batch is doubled: the second half renders every
image with the shape code of another photo of the same person, and every loss applies to both halves.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from decalite.data.swaps import within_group_permutation
from decalite.geometry.lighting import sh_shading
from decalite.losses.landmark import normalised_landmark_error
from decalite.losses.objective import LossResult, objective
from decalite.model.deca import DECA
from decalite.nets.codes import CodeSizes
from decalite.training.base import StageModule, flatten_groups
from decalite.training.config import StageConfig
from decalite.types import FaceCode

#: Terms that need the render.
RENDER_TERMS = ("photometric", "identity")


def set_prior_bias(encoder: nn.Module, sizes: CodeSizes, cam: tuple[float, float, float], ambient: float) -> None:
    """Make an untrained coarse encoder start at the mean face in view: its last layer's weights scaled down
    (x 0.01) and a bias holding the camera and an ambient light (other parts 0: mean shape, neutral expression)."""
    last = encoder.head[-1]
    with torch.no_grad():
        last.weight.mul_(0.01)
        last.bias.zero_()
        start = sizes.n_shape + sizes.n_tex + sizes.n_exp + sizes.n_pose
        last.bias[start : start + 3] = torch.tensor(cam, dtype=last.bias.dtype)
        light = start + 3
        last.bias[light : light + 3] = ambient  # SH band 0, RGB (light is (9, 3) row-major)


def double_with_swapped(code: FaceCode, field: str, perm: torch.Tensor) -> FaceCode:
    """The code twice along the batch; in the second half ``field`` comes from the images ``perm`` points to."""
    doubled = code.map(lambda t: torch.cat([t, t]))
    value = getattr(code, field)
    setattr(doubled, field, torch.cat([value, value[perm]]))
    return doubled


class CoarseModule(StageModule):
    """Trains E_coarse (DECA's coarse stage). See :class:`~decalite.training.base.StageModule` for the args."""

    stage = "coarse"

    def __init__(self, deca: DECA, cfg: StageConfig, pretrained: dict[str, nn.Module] | None = None) -> None:
        super().__init__(deca, cfg, pretrained)
        if cfg.init_from is None:
            set_prior_bias(deca.coarse_encoder, deca.sizes, tuple(cfg.init_cam), cfg.init_light)

    def trainable(self) -> list[nn.Module]:
        return [self.deca.coarse_encoder]

    def frozen(self) -> list[nn.Module]:
        return [*super().frozen(), self.deca.detail_encoder, self.deca.detail_decoder]

    def compute(self, batch: dict[str, Any]) -> tuple[LossResult, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        flat, groups, k = flatten_groups(batch)
        images, target, skin = flat["images"], flat["landmarks"], flat["masks"]
        n = images.shape[0]
        code = self.deca.encode(images, detail=False)
        terms = self.cfg.loss.terms
        if self.cfg.loss.shape_consistency and k > 1:
            perm = within_group_permutation(groups, k, self.generator, images.device)
            code = double_with_swapped(code, "shape", perm)
            images, target, skin = torch.cat([images, images]), torch.cat([target, target]), torch.cat([skin, skin])
        need_render = any(terms.get(t, 0.0) for t in RENDER_TERMS)
        out = self.deca.decode(code, render=need_render, detail=False)
        context: dict[str, Any] = {"landmarks": out.landmarks2d, "target_landmarks": target,
                                   "landmark_confidence": None, "landmark_scale": None, "images": images, "skin_masks": skin,
                                   "shape": code.shape, "exp": code.exp, "tex": code.tex, "light": code.light}
        visuals: dict[str, torch.Tensor] = {"input": images[:n].detach()}
        if need_render:
            render = out.render
            context.update(render=render.image, face_mask=render.face_mask)
            if terms.get("identity", 0.0):
                context.update(identity_net=self.pretrained["identity"],
                               identity_overlay=identity_overlay(render, code.light, images))
            visuals["render"] = render.image[:n].detach()
        result = objective(terms, context)
        with torch.no_grad():
            metrics = {"landmark_nme": normalised_landmark_error(out.landmarks2d[:n], target[:n]).mean()}
            metrics.update(shape_metrics(self.deca, code.shape[:n], flat))
        visuals.update(landmarks=out.landmarks2d[:n].detach(), target_landmarks=target[:n].detach(),
                       vertices=out.vertices[:n].detach(), cam=code.cam[:n].detach())
        return result, metrics, visuals


def identity_overlay(render, light: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """DECA's identity-loss input: the face rendered with detached albedo and light, over the photo elsewhere.

    Args:
        render: the coarse RenderOutput (normals, albedo, face_mask: (N, C, H, W)).
        light: (N, 9, 3). images: (N, 3, H, W).
    """
    normals = render.normals.permute(0, 2, 3, 1)  # (N, 3, H, W) -> (N, H, W, 3)
    shading = sh_shading(normals, light.detach()).permute(0, 3, 1, 2)  # (N, H, W, 3) -> (N, 3, H, W)
    face = render.albedo.detach() * shading
    return face * render.face_mask + images * (1.0 - render.face_mask)


def shape_metrics(deca: DECA, shape: torch.Tensor, flat: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """On synthetic data (ground-truth ``shape`` in the batch): mean vertex error of the neutral head in mm."""
    if "shape" not in flat:
        return {}
    true = flat["shape"][:, : shape.shape[1]].to(shape.dtype)
    pred_v = deca.flame(shape=shape).vertices
    true_v = deca.flame(shape=true).vertices
    return {"neutral_vertex_mm": 1000.0 * (pred_v - true_v).norm(dim=-1).mean()}
