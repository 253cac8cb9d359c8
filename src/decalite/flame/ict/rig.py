"""FLAME's five joints for the ICT head: joint regressor, skinning weights and the jaw's pose correctives.

* global (root) and neck: centroids of two rings of the neck; the head above the neck ring follows the neck
  joint, the lower neck the root, blended over a band (DECA never poses the neck, FLAME has the joint).
* jaw: a hinge about +x (positive opens the mouth, as in FLAME) fitted to ICT's ``jawOpen`` shape: the pivot
  (y, z) and the opening angle minimise the residual of per-vertex blend weights chosen in closed form
  (``v + w (R (v - p) + p - v)`` nearest the target for w in [0, 1]), then smoothed over the mesh. What the hinge
  cannot reach is stored as a pose corrective on the jaw's ``(R - I)[2, 1] = sin(angle)`` feature, so the jaw at
  the fitted angle reproduces ``jawOpen`` and smaller openings move along the same path, as linear blendshapes do.
* eyes: each eyeball follows its joint rigidly (weight 1), the joint at the eyeball's fitted sphere centre.
Every joint is a fixed linear combination of vertices (``J_regressor``), so joints move with identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

#: FLAME's joint order and parents.
PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)
GLOBAL, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(5)
#: Index of the jaw's ``(R - I)[2, 1]`` entry in FLAME's 36 pose-corrective features (9 (j - 1) + 3 r + c).
JAW_SIN_FEATURE = 9 * (JAW - 1) + 3 * 2 + 1


def rot_x(angle: float) -> np.ndarray:
    """(3, 3) rotation about +x by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def point_regressor(vertices: np.ndarray, candidates: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(V,) the smallest-norm weights on ``candidates`` that sum to 1 and reproduce ``point`` from ``vertices``.

    Args:
        vertices: (V, 3) template. candidates: (C,) vertex indices, C >= 4, not coplanar. point: (3,).
    """
    x = vertices[candidates]  # (C, 3)
    centred = (x - x.mean(0)).T  # (3, C)
    w = np.full(len(candidates), 1.0 / len(candidates))
    w += centred.T @ np.linalg.solve(centred @ centred.T, point - x.mean(0))
    out = np.zeros(vertices.shape[0])
    out[candidates] = w
    return out


def sphere_centre(points: np.ndarray) -> np.ndarray:
    """(3,) least-squares sphere centre of (N, 3) points (algebraic fit |x|^2 = 2 c.x + k)."""
    a = np.concatenate([2.0 * points, np.ones((len(points), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(a, (points**2).sum(1), rcond=None)
    return sol[:3]


@dataclass(frozen=True)
class Hinge:
    """The fitted jaw hinge: pivot (3,) metres, angle (radians) reproducing the target, weights (V,) in [0, 1]."""

    pivot: np.ndarray
    angle: float
    weights: np.ndarray


def _hinge_weights(rest: np.ndarray, delta: np.ndarray, pivot: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form per-vertex weights (V,) of a hinge and the motion (V, 3) of a vertex at weight 1."""
    motion = (rest - pivot) @ rot_x(angle).T + pivot - rest
    w = np.clip((motion * delta).sum(1) / np.maximum((motion**2).sum(1), 1e-12), 0.0, 1.0)
    return w, motion


def smooth(values: np.ndarray, faces: np.ndarray, iterations: int, fixed: np.ndarray) -> np.ndarray:
    """(V,) values averaged with their mesh neighbours ``iterations`` times; ``fixed`` (V,) bool stay put."""
    import scipy.sparse as sp

    n = values.shape[0]
    i = faces[:, [0, 1, 2, 1, 2, 0]].ravel()
    j = faces[:, [1, 2, 0, 0, 1, 2]].ravel()
    adj = sp.csr_matrix((np.ones(i.size), (i, j)), shape=(n, n))
    adj.data[:] = 1.0
    deg = np.asarray(adj.sum(1)).ravel()
    out = values.copy()
    for _ in range(iterations):
        avg = np.where(deg > 0, adj @ out / np.maximum(deg, 1), out)
        out = np.where(fixed, out, 0.5 * out + 0.5 * avg)
    return out


def fit_hinge(rest: np.ndarray, target: np.ndarray, faces: np.ndarray, smoothing: int = 10) -> Hinge:
    """Fit the jaw hinge to a jaw-opening shape.

    Args:
        rest: (V, 3) neutral vertices. target: (V, 3) the opened shape. faces: (F, 3) for smoothing.
    """
    delta = target - rest
    moving = np.linalg.norm(delta, axis=1) > 1e-5
    chin = rest[np.argmax(np.linalg.norm(delta, axis=1))]

    def cost(params: np.ndarray) -> float:
        pivot = np.array([0.0, params[0], params[1]])
        w, motion = _hinge_weights(rest[moving], delta[moving], pivot, params[2])
        return float(((delta[moving] - w[:, None] * motion) ** 2).sum())

    # A temporomandibular hinge: behind and above the chin, inside the head, opening by less than 45 degrees
    # (unbounded, the fit drifts to a distant pivot that translates the jaw rather than turning it).
    bounds = [(chin[1] + 0.03, chin[1] + 0.15), (chin[2] - 0.15, chin[2] - 0.05), (0.05, 0.8)]
    start = np.array([chin[1] + 0.08, chin[2] - 0.1, 0.3])
    best = minimize(cost, start, method="Nelder-Mead", bounds=bounds,
                    options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 4000})
    pivot = np.array([0.0, best.x[0], best.x[1]])
    angle = float(best.x[2])
    w, _ = _hinge_weights(rest, delta, pivot, angle)
    w = np.where(moving, w, 0.0)
    w = np.clip(smooth(w, faces, smoothing, fixed=~moving), 0.0, 1.0)
    return Hinge(pivot=pivot, angle=angle, weights=w)


def lbs_two(rest: np.ndarray, weights: np.ndarray, pivot: np.ndarray, angle: float) -> np.ndarray:
    """(V, 3) ``rest`` skinned between a fixed joint and a hinge about +x at ``pivot`` (weights (V,))."""
    moved = (rest - pivot) @ rot_x(angle).T + pivot
    return rest + weights[:, None] * (moved - rest)


def jaw_correctives(rest: np.ndarray, target: np.ndarray, hinge: Hinge) -> np.ndarray:
    """(V, 3) rest-frame offsets per unit of the jaw's ``sin(angle)`` feature that close the hinge's residual.

    LBS applies a rest-frame offset o through ``M = (1 - w) I + w R``, so o = M^-1 (target - hinge(rest)) / sin.
    """
    residual = target - lbs_two(rest, hinge.weights, hinge.pivot, hinge.angle)
    r = rot_x(hinge.angle)
    w = hinge.weights[:, None, None]
    m = (1.0 - w) * np.eye(3) + w * r  # (V, 3, 3)
    offsets = np.linalg.solve(m, residual[..., None])[..., 0]
    return offsets / np.sin(hinge.angle)


@dataclass(frozen=True, eq=False)
class Rig:
    """FLAME's rig arrays for the kept mesh: j_regressor (5, V), lbs_weights (V, 5), posedirs (V, 3, 36),
    and the fitted jaw hinge (its angle is jawOpen's, the ARKit conversion's unit)."""

    j_regressor: np.ndarray
    lbs_weights: np.ndarray
    posedirs: np.ndarray
    hinge: Hinge


#: Heights of the root's and the neck joint's rings, as fractions of the head-and-neck's height from its bottom.
ROOT_RING, NECK_RING, RING_BAND = 0.06, 0.2, 0.02
#: Vertices the jaw joint's regressor uses: the nearest to the hinge axis.
JAW_REGRESSOR_VERTICES = 200


def _ring(rest: np.ndarray, candidates: np.ndarray, height: float, band: float) -> np.ndarray:
    """Indices of ``candidates`` within ``band`` of ``height`` (y)."""
    sel = candidates[np.abs(rest[candidates, 1] - height) < band]
    if sel.size < 4:
        raise ValueError(f"no neck ring at y = {height:.3f} m")
    return sel


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def build_rig(rest: np.ndarray, faces: np.ndarray, head_neck: np.ndarray, eyes: tuple[np.ndarray, np.ndarray],
              jaw_open: np.ndarray) -> Rig:
    """The rig of the kept mesh.

    Args:
        rest: (V, 3) neutral vertices (metres). faces: (F, 3).
        head_neck: (H,) indices of the head-and-neck vertices (the neck rings are taken from them).
        eyes: (left, right) eyeball vertex indices (subject's left is +x).
        jaw_open: (V, 3) ICT's jawOpen shape minus the neutral, on the kept vertices.
    """
    n = rest.shape[0]
    y_bottom = rest[head_neck, 1].min()
    height = rest[head_neck, 1].max() - y_bottom
    low = _ring(rest, head_neck, y_bottom + ROOT_RING * height, RING_BAND * height)
    high = _ring(rest, head_neck, y_bottom + NECK_RING * height, RING_BAND * height)
    j_reg = np.zeros((5, n))
    j_reg[GLOBAL, low] = 1.0 / low.size
    j_reg[NECK, high] = 1.0 / high.size
    for joint, idx in ((LEFT_EYE, eyes[0]), (RIGHT_EYE, eyes[1])):
        j_reg[joint] = point_regressor(rest, idx, sphere_centre(rest[idx]))
    hinge = fit_hinge(rest, rest + jaw_open, faces)
    # The jaw joint sits at the hinge: a regressor over the vertices nearest its axis (both sides of the head).
    body_idx = np.setdiff1d(np.arange(n), np.concatenate(eyes))
    axis_dist = np.linalg.norm(rest[body_idx, 1:] - hinge.pivot[1:], axis=1)
    near = body_idx[np.argsort(axis_dist, kind="stable")[:JAW_REGRESSOR_VERTICES]]
    j_reg[JAW] = point_regressor(rest, near, hinge.pivot)

    weights = np.zeros((n, 5))
    neck_y = j_reg[NECK] @ rest[:, 1]
    band = (NECK_RING - ROOT_RING) * height
    to_neck = _smoothstep((rest[:, 1] - (neck_y - band)) / band)  # 0 at the root's ring, 1 from the neck joint up
    body = 1.0 - hinge.weights
    weights[:, GLOBAL] = body * (1.0 - to_neck)
    weights[:, NECK] = body * to_neck
    weights[:, JAW] = hinge.weights
    for joint, idx in ((LEFT_EYE, eyes[0]), (RIGHT_EYE, eyes[1])):
        weights[idx] = 0.0
        weights[idx, joint] = 1.0
    posedirs = np.zeros((n, 3, 36))
    eye_free = np.ones(n, dtype=bool)
    eye_free[np.concatenate(eyes)] = False
    posedirs[eye_free, :, JAW_SIN_FEATURE] = jaw_correctives(rest, rest + jaw_open, hinge)[eye_free]
    return Rig(j_regressor=j_reg, lbs_weights=weights, posedirs=posedirs, hinge=hinge)
