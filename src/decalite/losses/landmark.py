"""Landmark, eye-closure and lip-closure losses on image-normalised 2D landmarks ([-1, 1], +y down)."""

from __future__ import annotations

import torch

#: Upper/lower eyelid landmark pairs (iBUG 68, 0-based) and inner-lip pairs.
EYE_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def landmark_weights(dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """(68,) per-landmark weights: DECA's emphasis on the chin, nose and mouth (up to 3x)."""
    w = torch.ones(68, dtype=dtype, device=device)
    w[5:7] = 2.0
    w[10:12] = 2.0
    w[27:36] = 1.5
    w[[30, 31, 35]] = 3.0
    w[48:68] = 1.5
    w[[48, 54]] = 3.0
    return w


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, confidence: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted L1 between landmarks.

    Args:
        pred, target: (B, 68, 2). confidence: (B, 68) in [0, 1] or None. weights: (68,) or None for DECA's.
    """
    w = landmark_weights(pred.dtype, pred.device) if weights is None else weights
    per_point = (pred - target).abs().sum(-1) * w  # (B, 68)
    if confidence is not None:
        per_point = per_point * confidence
    return per_point.mean()


def _pair_distance(lmk: torch.Tensor, pairs) -> torch.Tensor:
    upper = lmk[:, [p[0] for p in pairs]]
    lower = lmk[:, [p[1] for p in pairs]]
    return upper - lower  # (B, P, 2)


def eye_closure_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between predicted and target upper-to-lower eyelid offsets (DECA's L_eye). (B, 68, 2) inputs."""
    return (_pair_distance(pred, EYE_PAIRS) - _pair_distance(target, EYE_PAIRS)).abs().sum(-1).mean()


def lip_closure_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between predicted and target inner-lip offsets (the release's lip term). (B, 68, 2) inputs."""
    return (_pair_distance(pred, LIP_PAIRS) - _pair_distance(target, LIP_PAIRS)).abs().sum(-1).mean()


def normalised_landmark_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) mean point-to-point distance divided by the target's outer-eye-corner distance (points 36, 45)."""
    iod = (target[:, 36] - target[:, 45]).norm(dim=-1).clamp_min(1e-8)
    return (pred - target).norm(dim=-1).mean(-1) / iod
