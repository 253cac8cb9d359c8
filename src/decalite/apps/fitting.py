"""Analysis by synthesis: refine a FaceCode for given images by gradient descent through FLAME and the renderer.

Terms: the training losses through the one objective (:mod:`decalite.losses.objective`): landmarks, eye and lip
closure, skin-masked photometric, and the coarse regularisers. Without a trained encoder the fit starts from the mean face with a camera solved
from the landmarks, so the embedded head plus offline landmarks already give a posed, shaped head.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from decalite.config import DEFAULT_FIT_TERMS
from decalite.geometry.camera import image_normalized_to_ndc
from decalite.losses.landmark import normalised_landmark_error, robust_scale_at
from decalite.losses.objective import check_weights, objective
from decalite.model.deca import DECA
from decalite.types import FaceCode

log = logging.getLogger(__name__)


#: The landmark terms (the first stage of :func:`fit_identity` fits camera and pose with these alone).
LANDMARK_TERMS = ("landmark", "landmark_robust")
#: Terms that DECA normalises as batch sums; a fit takes them per image (divided by the batch size B).
BATCH_SUM_TERMS = ("reg_shape", "reg_exp", "reg_tex")


@dataclass
class FitConfig:
    """Steps, learning rate and loss weights of the fit (a weight of 0 skips a term).

    Attributes:
        steps, lr: Adam steps and learning rate.
        terms: loss weights by registry name (default :data:`DEFAULT_FIT_TERMS`); the batch-sum regularisers
            are taken per image, so a face's fit does not depend on the batch it came in.
        photometric_after: fraction of the steps fitted on the other terms before photometry joins.
        fit_detail: also fit the detail code (photometry of the detail render).
        lr_end: the learning rate decays from ``lr`` to ``lr_end * lr`` (cosine; 1, the default, keeps it
            constant). With the L1 landmark loss a constant-rate Adam hops around the minimum and the last step
            may land anywhere on the hop: at lr 0.02 a 120-step fit of a known face ended at NME 0.070 constant,
            0.005 decayed (0.02). At the reconstruct default (100 steps, lr 0.01) the decay costs travel instead
            (8 synthetic faces: NME 0.015 constant, 0.030 decayed; lr 0.03 decayed: 0.017), so it stays off there.
    """

    steps: int = 100
    lr: float = 0.01
    terms: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FIT_TERMS))
    photometric_after: float = 0.5
    fit_detail: bool = False
    lr_end: float = 1.0


@dataclass
class FitResult:
    """The refined code and the normalised landmark errors (B,) before and after fitting."""

    code: FaceCode
    error_before: torch.Tensor
    error_after: torch.Tensor
    history: list[float] = field(default_factory=list)


def _decay(opt: torch.optim.Optimizer, cfg: FitConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay of ``cfg.lr`` to ``cfg.lr_end * cfg.lr`` over ``cfg.steps`` steps (constant when lr_end = 1)."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.steps, 1), eta_min=cfg.lr * cfg.lr_end)


def mean_face_code(deca: DECA, landmarks: torch.Tensor) -> FaceCode:
    """The mean face with a camera solved from the target landmarks (B, 68, 2): scale and translation that
    match the spread and centre of the projected mean-face landmarks to the targets."""
    b, s = landmarks.shape[0], deca.sizes
    dev, dt = landmarks.device, landmarks.dtype
    zeros = lambda n: torch.zeros(b, n, device=dev, dtype=dt)  # noqa: E731
    code = FaceCode(shape=zeros(s.n_shape), tex=zeros(s.n_tex), exp=zeros(s.n_exp), pose=zeros(6),
                    cam=zeros(3), light=torch.zeros(b, 9, 3, device=dev, dtype=dt), detail=zeros(s.n_detail))
    code.light[:, 0] = 3.0  # about uniform grey-white light
    with torch.no_grad():
        model = deca.flame(shape=code.shape, expression=code.exp).landmarks2d[..., :2]  # (B, 68, 2) model x, y
        target = image_normalized_to_ndc(landmarks)  # (B, 68, 2), +y up like the model
        scale = target.std(dim=1).norm(dim=-1) / model.std(dim=1).norm(dim=-1)  # (B,)
        trans = target.mean(1) / scale[:, None] - model.mean(1)
    code.cam = torch.cat([scale[:, None], trans], -1)
    return code


def _optimise(deca: DECA, current, priors, params: dict[str, torch.Tensor], landmarks: torch.Tensor,
              images: torch.Tensor | None, masks: torch.Tensor | None, weights: dict[str, float],
              photo_weight: float, cfg: FitConfig, fit_detail: bool = False, pose_steps: int = 0) -> list[float]:
    """The loop :func:`fit` and :func:`fit_identity` share: ``pose_steps`` Adam steps on camera and head pose with
    the landmark terms alone (the jaw stays closed), then ``cfg.steps`` on every parameter with ``weights``, the
    photometric term joining at ``cfg.photometric_after`` of them and the learning rate decaying (:func:`_decay`).

    Args:
        current: () -> the FaceCode of the parameters now. priors: FaceCode -> the regularisers' codes (``shape``,
            ``tex``, ``exp``, ``light``). params: the optimised tensors by name (``cam`` and ``pose`` among them).
        photo_weight: the photometric weight (0 without images and masks). fit_detail: render the details.

    Returns:
        The loss of every step.
    """
    pose_opt = torch.optim.Adam([params["cam"], params["pose"]], lr=cfg.lr) if pose_steps else None
    opt = torch.optim.Adam(params.values(), lr=cfg.lr)
    schedule = _decay(opt, cfg)
    photo_from = pose_steps + int(cfg.steps * cfg.photometric_after)
    history = []
    for step in range(pose_steps + cfg.steps):
        c = current()
        use_photo = bool(photo_weight) and step >= photo_from
        out = deca.decode(c, render=use_photo, detail=fit_detail and use_photo)
        context = {"landmarks": out.landmarks2d, "target_landmarks": landmarks, "landmark_confidence": None,
                   "landmark_scale": robust_scale_at((step - pose_steps) / max(cfg.steps - 1, 1)), **priors(c)}
        if use_photo:
            rendered = out.render.image_detail if fit_detail else out.render.image
            context.update(render=rendered, images=images, skin_masks=masks, face_mask=out.render.face_mask)
        posing = step < pose_steps
        if posing:  # stage 1: camera and head pose
            loss = objective({k: weights.get(k, 0.0) for k in LANDMARK_TERMS}, context).total
        else:
            loss = objective({**weights, "photometric": photo_weight if use_photo else 0.0}, context).total
        optimiser = pose_opt if posing else opt
        optimiser.zero_grad()
        loss.backward()
        if posing:
            params["pose"].grad[:, 3:] = 0.0
        optimiser.step()
        if not posing:
            schedule.step()
        history.append(float(loss.detach()))
    return history


def fit(
    deca: DECA,
    images: torch.Tensor,
    landmarks: torch.Tensor,
    masks: torch.Tensor | None = None,
    init: FaceCode | None = None,
    cfg: FitConfig | None = None,
) -> FitResult:
    """Fit codes to images.

    Args:
        deca: the model (its networks are not changed).
        images: (B, 3, H, W) in [0, 1] at the renderer's size.
        landmarks: (B, 68, 2) target landmarks, image-normalised.
        masks: (B, 1, H, W) skin masks for the photometric term, or None to skip it.
        init: starting code (e.g. the encoder's); None starts from the mean face.
        cfg: steps, learning rate and weights (default: FitConfig()).
    """
    cfg = cfg if cfg is not None else FitConfig()
    code = init if init is not None else mean_face_code(deca, landmarks)
    names = ["shape", "exp", "pose", "cam", "tex", "light"] + (["detail"] if cfg.fit_detail else [])
    params = {n: getattr(code, n).detach().clone().requires_grad_(True) for n in names}
    fixed_detail = code.detail.detach() if code.detail is not None and not cfg.fit_detail else code.detail

    def current() -> FaceCode:
        return FaceCode(**{n: params[n] for n in names}, **({} if cfg.fit_detail else {"detail": fixed_detail}))

    with torch.no_grad():
        before = normalised_landmark_error(deca.geometry(current())[1], landmarks)
    check_weights(cfg.terms)
    batch = images.shape[0]
    weights = {k: (w / batch if k in BATCH_SUM_TERMS else w) for k, w in cfg.terms.items()}
    photo_weight = weights.get("photometric", 0.0) if masks is not None else 0.0
    history = _optimise(deca, current, lambda c: {"shape": c.shape, "exp": c.exp, "tex": c.tex, "light": c.light},
                        params, landmarks, images, masks, weights, photo_weight, cfg, fit_detail=cfg.fit_detail)
    final = FaceCode(**{n: params[n].detach() for n in names}, **({} if cfg.fit_detail else {"detail": fixed_detail}))
    with torch.no_grad():
        after = normalised_landmark_error(deca.geometry(final)[1], landmarks)
    return FitResult(code=final, error_before=before, error_after=after, history=history)



@dataclass
class IdentityFitConfig(FitConfig):
    """:class:`FitConfig` for :func:`fit_identity`, plus the first stage's length.

    Attributes:
        pose_steps: Adam steps on camera and head pose alone (landmarks) before shape, expression and jaw join
            (``lr_end`` applies to the joint stage).
    """

    steps: int = 400
    lr: float = 0.02
    pose_steps: int = 50
    lr_end: float = 0.02


def fit_identity(
    deca: DECA,
    images: torch.Tensor | None,
    landmarks: torch.Tensor,
    masks: torch.Tensor | None = None,
    cfg: IdentityFitConfig | None = None,
    init: FaceCode | None = None,
) -> FitResult:
    """Fit one person seen in N images: one shape (and albedo) code shared by all images, each image keeping its
    own expression, pose (head and jaw), camera and light. DECA's shape-consistency idea at test time.

    Staged: camera and head pose from the landmarks first (``cfg.pose_steps``), then shape, expression and jaw,
    then photometry (from ``cfg.photometric_after``; only with images and masks). Terms are the objective's
    (``cfg.terms``); the priors are the regularisers in units of the model's standard deviations, taken once for
    the shared codes and per image for the others (all divided by N: the mean image loss plus prior / N).

    Args:
        images: (N, 3, H, W) in [0, 1] at the renderer's size, or None (landmarks only).
        landmarks: (N, 68, 2) image-normalised targets.
        masks: (N, 1, H, W) skin masks for the photometric term, or None to skip it.
        init: starting codes (N rows, e.g. the encoder's; shape and albedo start from their mean over the
            images); None starts from the mean face with cameras solved from the landmarks.

    Returns:
        A :class:`FitResult` whose code has N rows (the shape and albedo rows are equal).
    """
    cfg = cfg if cfg is not None else IdentityFitConfig()
    n = landmarks.shape[0]
    start = init if init is not None else mean_face_code(deca, landmarks)
    shared = {"shape": start.shape.mean(0, keepdim=True), "tex": start.tex.mean(0, keepdim=True)}
    own = {"exp": start.exp, "pose": start.pose, "cam": start.cam, "light": start.light}
    params = {k: v.detach().clone().requires_grad_(True) for k, v in {**shared, **own}.items()}
    detail = start.detail

    def current() -> FaceCode:
        return FaceCode(shape=params["shape"].expand(n, -1), tex=params["tex"].expand(n, -1), exp=params["exp"],
                        pose=params["pose"], cam=params["cam"], light=params["light"], detail=detail)

    with torch.no_grad():
        before = normalised_landmark_error(deca.geometry(current())[1], landmarks)
    check_weights(cfg.terms)
    if not any(cfg.terms.get(k, 0.0) for k in LANDMARK_TERMS):
        raise ValueError(f"fit_identity needs a landmark term: one of {LANDMARK_TERMS} with a weight > 0")
    weights = {k: w / n for k, w in cfg.terms.items() if k in BATCH_SUM_TERMS}
    weights.update({k: w for k, w in cfg.terms.items() if k not in BATCH_SUM_TERMS})
    photo_weight = weights.get("photometric", 0.0) if (masks is not None and images is not None) else 0.0
    history = _optimise(deca, current, lambda c: {"shape": params["shape"], "tex": params["tex"], "exp": c.exp,
                                                  "light": c.light},
                        params, landmarks, images, masks, weights, photo_weight, cfg, pose_steps=cfg.pose_steps)
    final = current().map(lambda t: t.detach().clone())
    with torch.no_grad():
        after = normalised_landmark_error(deca.geometry(final)[1], landmarks)
    return FitResult(code=final, error_before=before, error_after=after, history=history)
