"""Analysis by synthesis: refine a FaceCode for given images by gradient descent through FLAME and the renderer.

Terms (the training losses, :mod:`decalite.losses`): landmarks, eye and lip closure, skin-masked photometric,
and the coarse regularisers. Without a trained encoder the fit starts from the mean face with a camera solved
from the landmarks, so the embedded head plus offline landmarks already give a posed, shaped head.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from decalite.deca import DECA
from decalite.losses.landmark import eye_closure_loss, landmark_loss, lip_closure_loss, normalised_landmark_error
from decalite.losses.photometric import photometric_loss
from decalite.losses.regularizers import l2_regularizer, white_light_regularizer
from decalite.types import FaceCode

log = logging.getLogger(__name__)


@dataclass
class FitConfig:
    """Steps, learning rate and loss weights of the fit (a weight of 0 skips a term).

    The terms are normalised as DECA's (see :mod:`decalite.losses`); the regulariser weights are per image.
    """

    steps: int = 100
    lr: float = 0.01
    landmark: float = 1.0
    eye: float = 1.0
    lip: float = 0.5
    photometric: float = 2.0
    reg_shape: float = 3e-4
    reg_exp: float = 3e-4
    reg_tex: float = 3e-5
    reg_light: float = 1.0
    photometric_after: float = 0.5  # fraction of the steps fitted on landmarks only before photometry joins
    fit_detail: bool = False


@dataclass
class FitResult:
    """The refined code and the normalised landmark errors (B,) before and after fitting."""

    code: FaceCode
    error_before: torch.Tensor
    error_after: torch.Tensor
    history: list[float] = field(default_factory=list)


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
        target = torch.stack([landmarks[..., 0], -landmarks[..., 1]], -1)  # image-normalised -> NDC (+y up)
        scale = target.std(dim=1).norm(dim=-1) / model.std(dim=1).norm(dim=-1)  # (B,)
        trans = target.mean(1) / scale[:, None] - model.mean(1)
    code.cam = torch.cat([scale[:, None], trans], -1)
    return code


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
    opt = torch.optim.Adam(params.values(), lr=cfg.lr)

    def current() -> FaceCode:
        return FaceCode(**{n: params[n] for n in names}, **({} if cfg.fit_detail else {"detail": fixed_detail}))

    with torch.no_grad():
        before = normalised_landmark_error(deca.geometry(current())[1], landmarks)
    history = []
    photo_from = int(cfg.steps * cfg.photometric_after)
    for step in range(cfg.steps):
        c = current()
        use_photo = masks is not None and cfg.photometric > 0 and step >= photo_from
        out = deca.decode(c, render=use_photo, detail=cfg.fit_detail and use_photo)
        loss = cfg.landmark * landmark_loss(out.landmarks2d, landmarks)
        if cfg.eye:
            loss = loss + cfg.eye * eye_closure_loss(out.landmarks2d, landmarks)
        if cfg.lip:
            loss = loss + cfg.lip * lip_closure_loss(out.landmarks2d, landmarks)
        if use_photo:
            rendered = out.render.image_detail if cfg.fit_detail else out.render.image
            loss = loss + cfg.photometric * photometric_loss(rendered, images, masks, out.render.face_mask)
        # DECA's code regularisers are batch sums while the other terms are batch means; a fit treats each image
        # on its own, so it takes them per image (/ B) and a face's fit does not depend on the batch it came in.
        per_image = 1.0 / images.shape[0]
        loss = loss + per_image * (cfg.reg_shape * l2_regularizer(c.shape) + cfg.reg_exp * l2_regularizer(c.exp)
                                   + cfg.reg_tex * l2_regularizer(c.tex))
        loss = loss + cfg.reg_light * white_light_regularizer(c.light)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    final = FaceCode(**{n: params[n].detach() for n in names}, **({} if cfg.fit_detail else {"detail": fixed_detail}))
    with torch.no_grad():
        after = normalised_landmark_error(deca.geometry(final)[1], landmarks)
    return FitResult(code=final, error_before=before, error_after=after, history=history)

