"""Codes for a batch of faces: the encoder (a trained checkpoint) and/or the analysis-by-synthesis fit."""

from __future__ import annotations

import numpy as np
import torch

from decalite.apps.fitting import FitConfig, IdentityFitConfig, fit, fit_identity, mean_face_code
from decalite.apps.reconstruct.faces import Face, _skin_masks
from decalite.losses.landmark import normalised_landmark_error
from decalite.model.deca import DECA
from decalite.types import FaceCode


def infer(deca: DECA, faces: list[Face], trained: bool, fit_cfg: FitConfig,
          identity: bool = False) -> tuple[FaceCode, torch.Tensor | None, torch.Tensor | None]:
    """Codes for a batch of faces: the encoder's (when trained), refined by fitting when there are landmarks.

    ``identity``: the faces are one person: :func:`~decalite.apps.fitting.fit_identity` (one shape and albedo for all,
    ``fit_cfg``'s steps, learning rate and weights after a first stage on camera and head pose).

    Returns the code and the normalised landmark errors before and after fitting (None without landmarks).
    """
    device = next(deca.parameters()).device
    images = torch.from_numpy(np.stack([f.crop for f in faces])).permute(0, 3, 1, 2).float().div(255.0).to(device)
    have_lmk = all(f.landmarks is not None for f in faces)
    lmk = torch.from_numpy(np.stack([f.landmarks for f in faces])).float().to(device) if have_lmk else None
    with torch.no_grad():
        code = deca.encode(images, detail=trained) if trained else None
    if lmk is None:
        if code is None:
            raise ValueError("no landmarks (landmarks=none) and no trained checkpoint: nothing to reconstruct from")
        return code, None, None
    if code is None:
        code = mean_face_code(deca, lmk)
    if fit_cfg.steps <= 0:
        with torch.no_grad():
            err = normalised_landmark_error(deca.geometry(code)[1], lmk)
        return code, err, err
    masks = _skin_masks(faces, device) if fit_cfg.terms.get("photometric", 0.0) > 0 else None
    if identity:
        id_cfg = IdentityFitConfig(steps=fit_cfg.steps, lr=fit_cfg.lr, terms=dict(fit_cfg.terms),
                                   photometric_after=fit_cfg.photometric_after)
        result = fit_identity(deca, images, lmk, masks, cfg=id_cfg, init=code if trained else None)
    else:
        result = fit(deca, images, lmk, masks, init=code, cfg=fit_cfg)
    return result.code, result.error_before, result.error_after
