"""Landmark, eye-closure and lip-closure losses on image-normalised 2D landmarks ([-1, 1], +y down).

Normalisations follow DECA's release (``decalib/utils/lossfunc.py``), so that DECA's published weights keep their
meaning: the weighted landmark L1 is divided by ``2 * sum(weights * confidence)`` over the batch (2 coordinates
per point), and the closure terms compare Euclidean eyelid / lip distances, averaged over pairs and batch.
"""

from __future__ import annotations

import torch

#: Upper/lower eyelid landmark pairs (iBUG 68, 0-based) and inner-lip pairs.
EYE_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def _check_landmarks(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.dim() != 3 or t.shape[1] != 68 or t.shape[2] < 2:
            raise ValueError(f"landmarks must have shape (B, 68, 2); got {tuple(t.shape)}")
    if len({t.shape[0] for t in tensors}) != 1:
        raise ValueError(f"landmark batch sizes differ: {[tuple(t.shape) for t in tensors]}")


def landmark_weights(dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """(68,) per-landmark weights: DECA's emphasis on the chin, nose and mouth (up to 3x); they sum to 94."""
    w = torch.ones(68, dtype=dtype, device=device)
    w[5:7] = 2.0
    w[10:12] = 2.0
    w[27:36] = 1.5
    w[[30, 31, 35]] = 3.0
    w[48:68] = 1.5
    w[[48, 54]] = 3.0
    return w


def _point_weights(pred: torch.Tensor, confidence: torch.Tensor | None, weights: torch.Tensor | None) -> torch.Tensor:
    """(B, 68) weight x confidence of each point (DECA's weights when ``weights`` is None)."""
    w = landmark_weights(pred.dtype, pred.device) if weights is None else weights
    return w.expand(pred.shape[0], -1) if confidence is None else w * confidence


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, confidence: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """DECA's weighted landmark L1: ``sum(w * c * |dx| + |dy|) / (2 * sum(w * c))`` over batch and points.

    Args:
        pred, target: (B, 68, 2). confidence: (B, 68) in [0, 1] or None (all 1). weights: (68,) or None for
            DECA's (:func:`landmark_weights`).
    """
    _check_landmarks(pred, target)
    vis = _point_weights(pred, confidence, weights)  # (B, 68)
    per_point = (pred[..., :2] - target[..., :2]).abs().sum(-1)  # (B, 68)
    return (per_point * vis).sum() / (2.0 * vis.sum() + 1e-8)


#: Scale of :func:`robust_landmark_loss` in image-normalised units ([-1, 1] across the crop): 0.02 is about
#: 2 px at 224 px. Errors well below it cost about ``d^2 / s``; errors well above it cost about ``s``.
ROBUST_SCALE = 0.02
#: Where a fit's graduated robust loss starts (:func:`robust_scale_at`): above the mean face's landmark errors,
#: so every point pulls at first.
ROBUST_SCALE_START = 0.3


def robust_scale_at(progress: float, start: float = ROBUST_SCALE_START, end: float = ROBUST_SCALE) -> float:
    """Graduated non-convexity (Blake and Zisserman): the robust scale shrinks geometrically from ``start`` to
    ``end`` as ``progress`` goes from 0 to 1. From a far start (the mean face) every landmark is an "outlier" at
    the final scale and its pull vanishes, so the fit starts wide and sharpens."""
    t = min(max(progress, 0.0), 1.0)
    return end * (start / end) ** (1.0 - t)


def robust_landmark_loss(pred: torch.Tensor, target: torch.Tensor, confidence: torch.Tensor | None = None,
                         weights: torch.Tensor | None = None, scale: float | None = ROBUST_SCALE) -> torch.Tensor:
    """A robust landmark loss for fitting to a detector's landmarks (not DECA's; Geman-McClure):
    ``sum(w * c * rho(d)) / sum(w * c)`` with ``rho(d) = s * d^2 / (d^2 + s^2)`` of each point's Euclidean error
    d. Quadratic near 0 and bounded by s, so a point the detector got wrong (a jaw-contour point on the
    background, an occluded eye) stops pulling once it is a few s away, where L1 pulls with constant force.

    Args:
        pred, target: (B, 68, 2). confidence: (B, 68) in [0, 1] or None (all 1). weights: (68,) or None for
            DECA's (:func:`landmark_weights`). scale: s, image-normalised units (None: ``ROBUST_SCALE``); fits
            anneal it with :func:`robust_scale_at`.
    """
    _check_landmarks(pred, target)
    scale = ROBUST_SCALE if scale is None else scale
    vis = _point_weights(pred, confidence, weights)  # (B, 68)
    sq = ((pred[..., :2] - target[..., :2]) ** 2).sum(-1)  # (B, 68)
    rho = scale * sq / (sq + scale**2)
    return (rho * vis).sum() / (vis.sum() + 1e-8)


def _pair_distance(lmk: torch.Tensor, pairs) -> torch.Tensor:
    """(B, P) Euclidean distance between the two points of each pair. lmk: (B, 68, 2)."""
    upper = lmk[:, [p[0] for p in pairs], :2]
    lower = lmk[:, [p[1] for p in pairs], :2]
    return (upper - lower).norm(dim=-1)


def eye_closure_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DECA's L_eye: mean |d_pred - d_target| of the upper-to-lower eyelid distances. (B, 68, 2) inputs."""
    _check_landmarks(pred, target)
    return (_pair_distance(pred, EYE_PAIRS) - _pair_distance(target, EYE_PAIRS)).abs().mean()


def lip_closure_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The release's lip term: mean |d_pred - d_target| of the inner-lip distances. (B, 68, 2) inputs."""
    _check_landmarks(pred, target)
    return (_pair_distance(pred, LIP_PAIRS) - _pair_distance(target, LIP_PAIRS)).abs().mean()


def normalised_landmark_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) mean point-to-point distance divided by the target's outer-eye-corner distance (points 36, 45)."""
    iod = (target[:, 36] - target[:, 45]).norm(dim=-1).clamp_min(1e-8)
    return (pred - target).norm(dim=-1).mean(-1) / iod
