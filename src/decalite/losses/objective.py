"""The one loss objective: a registry of named terms and their weighted sum.

Each term is a pure function registered under a name with the context keys it reads. :func:`objective` evaluates
the terms whose weight is non-zero (a weight of 0 skips the term: nothing is computed) and returns every value
by name plus the weighted sum. The names are the YAML keys of ``conf/loss/*.yaml`` and the ``train/loss/<name>``
log keys; fitting and both training stages use this one objective.

Context keys (shapes for N images, U UV size):

========================= =========================================================================
``landmarks``             (N, 68, 2) predicted 2D landmarks, image-normalised
``target_landmarks``      (N, 68, 2) detected / ground-truth landmarks
``landmark_confidence``   (N, 68) or None
``render``                (N, 3, H, W) coarse render over black
``images``                (N, 3, H, W) the photos
``skin_masks``            (N, 1, H, W) skin masks of the photos
``face_mask``             (N, 1, H, W) the render's face-eye mask x coverage
``identity_net``          a face-recognition module, images -> (N, D) embeddings
``identity_overlay``      (N, 3, H, W) render (detached albedo and light) over the photo outside the face
``shape`` ``exp`` ``tex`` (N, n) codes; ``light`` (N, 9, 3)
``uv_texture``            (N, 3, U, U) predicted detail texture (albedo x detail shading) in UV space
``uv_target``             (N, 3, U, U) the photo unwrapped into UV space
``uv_visibility``         (N, 1, U, U) visible face texels (photo mask x facing the camera x face-eye mask)
``mrf_features``          VGG19 feature extractor for ID-MRF
``displacement``          (N, 1, U, U) predicted displacement; ``uv_face_mask`` (1, 1, U, U)
``uv_shading``            (N, 3, U, U) detail shading in UV space
========================= =========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from decalite.losses.detail import (
    displacement_regularizer,
    low_frequency_displacement_loss,
    shading_smoothness_loss,
    soft_symmetry_loss,
)
from decalite.losses.identity import identity_loss
from decalite.losses.landmark import eye_closure_loss, landmark_loss, lip_closure_loss, robust_landmark_loss
from decalite.losses.mrf import id_mrf_loss
from decalite.losses.photometric import photometric_loss
from decalite.losses.regularizers import l2_regularizer, white_light_regularizer


@dataclass(frozen=True)
class LossTerm:
    """A pure loss function and the context keys passed to it, in order."""

    fn: Callable[..., torch.Tensor]
    inputs: tuple[str, ...]
    doc: str = ""


REGISTRY: dict[str, LossTerm] = {}


def register(name: str, fn: Callable[..., torch.Tensor], *inputs: str, doc: str = "") -> None:
    """Register ``fn`` under ``name``; it is called as ``fn(*(context[k] for k in inputs))``."""
    if name in REGISTRY:
        raise ValueError(f"loss term {name!r} is already registered")
    REGISTRY[name] = LossTerm(fn, tuple(inputs), doc)


@dataclass
class LossResult:
    """The weighted sum and every evaluated (unweighted) term by name."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


def check_weights(weights: Mapping[str, float]) -> None:
    """Reject unknown term names (a typo in a config must not silently drop a loss)."""
    unknown = sorted(set(weights) - set(REGISTRY))
    if unknown:
        raise KeyError(f"unknown loss term(s) {unknown}; known terms: {sorted(REGISTRY)}")


def objective(weights: Mapping[str, float], context: Mapping[str, Any]) -> LossResult:
    """Evaluate every term with a non-zero weight and their weighted sum.

    Args:
        weights: term name -> weight (0 skips the term without computing it).
        context: the inputs the terms read (see the module docstring).

    Raises:
        KeyError: an unknown term name. ValueError: a weighted term whose inputs are missing from ``context``.
    """
    check_weights(weights)
    total: torch.Tensor | None = None
    terms: dict[str, torch.Tensor] = {}
    for name, weight in weights.items():
        if float(weight) == 0.0:
            continue
        term = REGISTRY[name]
        missing = [k for k in term.inputs if k not in context]
        if missing:
            raise ValueError(f"loss term {name!r} (weight {weight}) needs {missing} in its context")
        value = term.fn(*(context[k] for k in term.inputs))
        terms[name] = value
        total = float(weight) * value if total is None else total + float(weight) * value
    if total is None:
        like = next((v for v in context.values() if isinstance(v, torch.Tensor)), torch.zeros(()))
        total = like.new_zeros(())
    return LossResult(total=total, terms=terms)


# ------------------------------------------------------------------------------------------------ the terms


def _identity(net, overlay: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """DECA's identity loss: 1 - cos between the embeddings of the overlay and of the photo (held fixed)."""
    with torch.no_grad():
        target = net(images)
    return identity_loss(net(overlay), target)


def _photometric_detail(uv_texture: torch.Tensor, uv_target: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
    """DECA's detail photometric term: mean |vis * (texture - target)| over all texels (UV space)."""
    return (visibility * (uv_texture - uv_target)).abs().mean()


def _mrf(features, uv_texture: torch.Tensor, uv_target: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
    """ID-MRF between the visible predicted and photo textures (UV space, as DECA)."""
    return id_mrf_loss(features, uv_texture * visibility, uv_target * visibility)


register("landmark", landmark_loss, "landmarks", "target_landmarks", "landmark_confidence",
         doc="DECA's weighted landmark L1")
def _robust_landmark(pred, target, confidence, scale) -> torch.Tensor:
    return robust_landmark_loss(pred, target, confidence, scale=scale)


register("landmark_robust", _robust_landmark, "landmarks", "target_landmarks", "landmark_confidence",
         "landmark_scale", doc="Geman-McClure landmark loss (outlier points stop pulling); landmark_scale: its scale")
register("eye_closure", eye_closure_loss, "landmarks", "target_landmarks", doc="eyelid distances")
register("lip_closure", lip_closure_loss, "landmarks", "target_landmarks", doc="inner-lip distances")
register("photometric", photometric_loss, "render", "images", "skin_masks", "face_mask",
         doc="skin-masked L1 of the SH-shaded render")
register("identity", _identity, "identity_net", "identity_overlay", "images", doc="face-recognition cosine")
register("reg_shape", l2_regularizer, "shape", doc="sum(shape^2) / 2")
register("reg_exp", l2_regularizer, "exp", doc="sum(exp^2) / 2")
register("reg_tex", l2_regularizer, "tex", doc="sum(tex^2) / 2")
register("reg_light", white_light_regularizer, "light", doc="towards white light")
register("photometric_detail", _photometric_detail, "uv_texture", "uv_target", "uv_visibility",
         doc="visibility-masked L1 of the detail texture in UV space")
register("mrf", _mrf, "mrf_features", "uv_texture", "uv_target", "uv_visibility", doc="ID-MRF (VGG19)")
register("reg_displacement", displacement_regularizer, "displacement", "uv_face_mask", doc="|D|")
register("symmetry", soft_symmetry_loss, "displacement", "uv_face_mask", doc="soft symmetry of D")
register("low_frequency_displacement", low_frequency_displacement_loss, "displacement", "uv_face_mask",
         doc="|D blurred|: the smooth part of D (decalite's, not DECA's)")
register("shading_smoothness", shading_smoothness_loss, "uv_shading", "uv_face_mask", doc="smooth detail shading")
