"""The NoW benchmark's scan-to-mesh protocol (Sanyal, Bolkart, Feng, Black: RingNet, CVPR 2019), as pure functions.

Per image: the ground-truth scan is cropped to a sphere around the face centre (from its 7 annotated landmarks),
the predicted mesh is aligned to the scan by a similarity transform (Umeyama on the 7 landmark pairs, then refined
to minimise the scan-to-mesh distance), and the error is the distance from every cropped scan vertex to the closest
point of the aligned predicted surface. Errors of all images are concatenated and summarised by median, mean and
standard deviation (in the scan's unit, mm for NoW).

The 7 landmarks are, in order, the iBUG-68 points ``decalite.apps.export.NOW_LANDMARKS`` = (36, 39, 42, 45, 33, 48, 54):
eye corners (outer, inner, inner, outer), nose bottom, mouth corners. Functions that take ``landmarks7`` also
accept the full (68, 3) landmarks and select those 7.

Differences from the public evaluation code (facts in the docstrings below): the refinement is damped Gauss-Newton
on the exact scan-to-mesh distances with ICP steps as fallback, instead of chumpy's dogleg solver on the same
least-squares objective; rotations are proper (no reflection); in metrical mode the landmark translation is solved
with the fixed scale (the public code reuses the translation solved with the free scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from decalite.apps.export import NOW_LANDMARKS, now_landmarks
from decalite.geometry.distance import point_to_mesh

__all__ = [
    "CROP_CENTRE_FRACTION",
    "CROP_RADIUS_FACTOR",
    "NOW_LANDMARKS",
    "Similarity",
    "align_to_scan",
    "apply_similarity",
    "crop_scan",
    "crop_sphere",
    "now_distances",
    "now_summary",
    "refine_alignment",
    "similarity_from_landmarks",
]

#: Face centre = nose_bottom + CROP_CENTRE_FRACTION * (mid_inner_eyes - nose_bottom).
CROP_CENTRE_FRACTION: float = 0.3
#: Crop radius = CROP_RADIUS_FACTOR * (outer_eye_dist + nose_dist) / 2.
CROP_RADIUS_FACTOR: float = 1.4

# Rows of the (7, 3) NoW landmarks.
_OUTER_EYE_A, _INNER_EYE_A, _INNER_EYE_B, _OUTER_EYE_B, _NOSE_BOTTOM = 0, 1, 2, 3, 4

#: (scale, R (3, 3), t (3,)) mapping x to ``scale * R @ x + t``.
Similarity = tuple[float, np.ndarray, np.ndarray]


def _array(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _landmarks7(landmarks: np.ndarray | torch.Tensor) -> np.ndarray:
    """(7, 3) NoW landmarks, or (68, 3) iBUG landmarks reduced to NoW's 7."""
    lmk = _array(landmarks)
    if lmk.shape == (68, 3):
        lmk = now_landmarks(lmk)
    if lmk.shape != (len(NOW_LANDMARKS), 3):
        raise ValueError(f"expected (7, 3) NoW landmarks or (68, 3) iBUG landmarks, got {lmk.shape}")
    return lmk


def crop_sphere(scan_landmarks7: np.ndarray | torch.Tensor) -> tuple[np.ndarray, float]:
    """Centre (3,) and radius of NoW's face crop.

    As the NoW evaluation code (``compute_mask``): ``nose_bridge`` is the midpoint of the two inner eye corners
    (landmarks 39 and 42), ``centre = nose_bottom + 0.3 * (nose_bridge - nose_bottom)``; ``outer_eye_dist`` is
    |36 - 45| (outer eye corners), ``nose_dist`` = |nose_bridge - nose_bottom|, and
    ``radius = 1.4 * (outer_eye_dist + nose_dist) / 2``.
    """
    lmk = _landmarks7(scan_landmarks7)
    nose_bottom = lmk[_NOSE_BOTTOM]
    nose_bridge = 0.5 * (lmk[_INNER_EYE_A] + lmk[_INNER_EYE_B])
    centre = nose_bottom + CROP_CENTRE_FRACTION * (nose_bridge - nose_bottom)
    outer_eye_dist = float(np.linalg.norm(lmk[_OUTER_EYE_A] - lmk[_OUTER_EYE_B]))
    nose_dist = float(np.linalg.norm(nose_bridge - nose_bottom))
    return centre, CROP_RADIUS_FACTOR * (outer_eye_dist + nose_dist) / 2.0


def crop_scan(scan_vertices: np.ndarray | torch.Tensor, scan_landmarks7: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N,) bool mask of the scan vertices inside NoW's face sphere (boundary included, as the official ``<=``)."""
    centre, radius = crop_sphere(scan_landmarks7)
    return np.linalg.norm(_array(scan_vertices).reshape(-1, 3) - centre, axis=1) <= radius


def apply_similarity(points: np.ndarray | torch.Tensor, similarity: Similarity) -> np.ndarray:
    """``scale * R @ x + t`` for each row x of (N, 3) points."""
    scale, rot, trans = similarity
    return scale * _array(points) @ rot.T + trans


def similarity_from_landmarks(src: np.ndarray | torch.Tensor, dst: np.ndarray | torch.Tensor,
                              scale: float | None = None) -> Similarity:
    """Least-squares similarity ``dst ~ scale * R @ src + t`` (Umeyama, PAMI 1991), proper rotation (det +1).

    Args:
        src, dst: (N, 3) corresponding points, N >= 3 (the 7 NoW landmarks, or ICP correspondences).
        scale: None to solve for it; a number to keep it fixed (NoW's metrical mode: the unit conversion) and
            solve rotation and translation only.

    Returns:
        (scale, R (3, 3), t (3,)).

    The public NoW code uses MATLAB-style ``procrustes(..., reflection='best')``, which may return a reflection;
    a reflected face is never a valid alignment, so this solves over rotations only (Umeyama's sign fix).
    """
    x, y = _array(src), _array(dst)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 3 or len(x) < 3:
        raise ValueError(f"expected two (N, 3) arrays with N >= 3, got {x.shape} and {y.shape}")
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    var_x = float((xc**2).sum()) / len(x)
    if var_x <= 0.0:
        raise ValueError("source points coincide: the similarity is undefined")
    cov = yc.T @ xc / len(x)  # (3, 3), Umeyama's Sigma_xy
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = (u * sign) @ vt
    s = float((d * sign).sum() / var_x) if scale is None else float(scale)
    return s, rot, my - s * rot @ mx


@dataclass
class _Fit:
    """A similarity and its scan-to-mesh closest points: objective (mean squared distance), (N,) distances,
    (N, 3) closest points and (N,) faces on the transformed mesh, (V, 3) transformed vertices."""

    sim: Similarity
    objective: float
    dist: np.ndarray
    closest: np.ndarray
    face: np.ndarray
    vertices: np.ndarray


def _fit(scan: np.ndarray, vertices: np.ndarray, faces: np.ndarray, sim: Similarity, k: int) -> _Fit:
    moved = apply_similarity(vertices, sim)
    dist, closest, face = point_to_mesh(scan, moved, faces, k=k)
    return _Fit(sim, float(np.mean(dist**2)), dist, closest, face, moved)


def _rodrigues(w: np.ndarray) -> np.ndarray:
    """Rotation matrix of the axis-angle vector w (3,)."""
    angle = float(np.linalg.norm(w))
    if angle < 1e-300:
        return np.eye(3)
    x, y, z = w / angle
    kx = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * kx @ kx


def _gauss_newton_system(scan: np.ndarray, fit: _Fit, faces: np.ndarray, centre: np.ndarray,
                         fix_scale: bool) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations (A, g) of the linearised distances for an update of the transformed mesh about ``centre``.

    The distance r_i from scan point p_i to the surface changes, to first order, by -n_i . dq_i when its closest
    point q_i moves by dq_i (n_i: unit direction from q_i to p_i, the face normal where p_i is on the surface).
    The update dT(z) = centre + (1 + sigma) Rot(omega) (z - centre) + tau moves q_i by
    sigma (q_i - c) + omega x (q_i - c) + tau to first order; the rows of J are the coefficients of
    (sigma, omega, tau) in n_i . dq_i, and the Gauss-Newton step solves min |r - J theta|^2.
    """
    diff = scan - fit.closest
    tri = fit.vertices[faces[fit.face]]  # (N, 3, 3)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-300)
    on_surface = fit.dist <= 1e-12 * (1.0 + np.abs(scan).max())
    direction = np.where(on_surface[:, None], normal, diff / np.where(on_surface, 1.0, fit.dist)[:, None])
    arm = fit.closest - centre
    cols = [np.cross(arm, direction), direction]
    if not fix_scale:
        cols.insert(0, np.einsum("ij,ij->i", arm, direction)[:, None])
    jac = np.concatenate(cols, axis=1)  # (N, 7), or (N, 6) with the scale fixed
    return jac.T @ jac, jac.T @ fit.dist


def _compose(step: np.ndarray, centre: np.ndarray, sim: Similarity, fix_scale: bool) -> Similarity | None:
    """dT o T for the update vector ``step`` ((sigma,) omega, tau); None if the scale would not stay positive."""
    sigma, omega, tau = (0.0, step[:3], step[3:]) if fix_scale else (step[0], step[1:4], step[4:])
    if not 1.0 + sigma > 0.0:
        return None
    rot_d = _rodrigues(omega)
    s, rot, t = sim
    return (1.0 + sigma) * s, rot_d @ rot, centre + (1.0 + sigma) * rot_d @ (t - centre) + tau


def refine_alignment(scan_points: np.ndarray | torch.Tensor, mesh_vertices: np.ndarray | torch.Tensor,
                     faces: np.ndarray | torch.Tensor, scale: float, R: np.ndarray, t: np.ndarray,
                     iterations: int = 50, rel_tol: float = 1e-6, fix_scale: bool = False,
                     k: int = 32, history: list[float] | None = None) -> Similarity:
    """Refine the similarity placing ``mesh_vertices`` on the scan so the scan-to-mesh distance decreases.

    Objective: the mean squared distance from the scan points to the transformed mesh's surface, the
    least-squares objective the NoW code minimises (its dogleg solver on the ``ScanToMesh`` residuals over
    scale, rotation and translation). Each step linearises the exact distances about the current closest
    points (Gauss-Newton with Levenberg-Marquardt damping, Marquardt 1963); when no damped step lowers the
    objective, an ICP step is tried (Besl and McKay 1992: Umeyama's closed-form similarity from the current
    closest points, which cannot increase the objective). Steps are accepted only when the exact objective
    decreases, so the result is never worse than the start; the loop ends when neither step helps, the relative
    decrease falls below ``rel_tol``, the fit is exact to rounding, or after ``iterations`` accepted steps.

    Args:
        scan_points: (N, 3) cropped scan vertices. mesh_vertices: (V, 3) predicted mesh in its own frame.
        faces: (F, 3). scale, R, t: the starting similarity (from the landmarks).
        fix_scale: keep ``scale`` (metrical mode; the NoW code then optimises rotation and translation only).
        k: candidate triangles per point for ``point_to_mesh``.
        history: if a list, the objective of the start and of every accepted step is appended to it.

    Returns:
        (scale, R (3, 3), t (3,)).
    """
    scan = _array(scan_points).reshape(-1, 3)
    verts = _array(mesh_vertices)
    fcs = np.asarray(faces.detach().cpu().numpy() if isinstance(faces, torch.Tensor) else faces, dtype=np.int64)
    start: Similarity = (float(scale), _array(R), _array(t))
    if len(scan) < 3 or iterations <= 0:
        return start
    best = _fit(scan, verts, fcs, start, k)
    if history is not None:
        history.append(best.objective)
    centre = scan.mean(0)
    floor = (1e-12 * float(np.sqrt(((scan - centre) ** 2).sum(1).mean()))) ** 2  # exact fit, to rounding
    damping = 1e-6
    for _ in range(iterations):
        if best.objective <= floor:
            break
        a, g = _gauss_newton_system(scan, best, fcs, centre, fix_scale)
        diag = np.diag(a) + 1e-12 * max(float(np.diag(a).max()), 1e-300)
        trial = None
        for _attempt in range(4):
            step = np.linalg.lstsq(a + damping * np.diag(diag), g, rcond=None)[0]
            sim = _compose(step, centre, best.sim, fix_scale)
            if sim is not None:
                cand = _fit(scan, verts, fcs, sim, k)
                if cand.objective < best.objective:
                    trial = cand
                    damping = max(damping / 10.0, 1e-12)
                    break
            damping *= 10.0
        if trial is None:  # Gauss-Newton made no progress: one ICP step from the current closest points
            s, rot, trans = best.sim
            surface = (best.closest - trans) @ rot / s  # closest points in the mesh's own frame
            cand = _fit(scan, verts, fcs, similarity_from_landmarks(surface, scan, scale=s if fix_scale else None), k)
            if not cand.objective < best.objective:
                break
            trial = cand
        converged = best.objective - trial.objective <= rel_tol * best.objective
        best = trial
        if history is not None:
            history.append(best.objective)
        if converged:
            break
    return best.sim


def align_to_scan(pred_vertices: np.ndarray | torch.Tensor, faces: np.ndarray | torch.Tensor,
                  pred_landmarks7: np.ndarray | torch.Tensor, scan_points: np.ndarray | torch.Tensor,
                  scan_landmarks7: np.ndarray | torch.Tensor, refine: bool = True, scale: float | None = None,
                  iterations: int = 50) -> Similarity:
    """Similarity placing the prediction on the (cropped) scan: landmarks (Umeyama), then ``refine_alignment``.

    ``scale`` fixes the scale (metrical mode: prediction unit -> scan unit, e.g. 1000 for metres to mm).
    """
    sim = similarity_from_landmarks(_landmarks7(pred_landmarks7), _landmarks7(scan_landmarks7), scale=scale)
    if refine:
        sim = refine_alignment(scan_points, pred_vertices, faces, *sim, iterations=iterations,
                               fix_scale=scale is not None)
    return sim


def now_distances(pred_vertices: np.ndarray | torch.Tensor, faces: np.ndarray | torch.Tensor,
                  pred_landmarks7: np.ndarray | torch.Tensor, scan_vertices: np.ndarray | torch.Tensor,
                  scan_landmarks7: np.ndarray | torch.Tensor, crop: bool = True, refine: bool = True,
                  metrical_scale: float | None = None, iterations: int = 50) -> np.ndarray:
    """NoW errors of one prediction: distance from each cropped scan vertex to the aligned predicted surface.

    Args:
        pred_vertices: (V, 3) predicted mesh (DECA exports it with expression and pose zeroed). faces: (F, 3).
        pred_landmarks7: (7, 3) (or (68, 3)) landmarks on the prediction, in NoW's order.
        scan_vertices: (N, 3) ground-truth scan vertices. scan_landmarks7: (7, 3) (or (68, 3)) scan landmarks.
        crop: keep only the scan vertices in NoW's face sphere (``crop_scan``).
        refine: refine the landmark alignment on the surfaces (``refine_alignment``).
        metrical_scale: None for NoW's standard protocol (scale solved); a number for the metrical protocol
            (the prediction's unit converted to the scan's, scale then kept fixed).

    Returns:
        (N',) float64 distances in the scan's unit, one per kept scan vertex, in scan order.
    """
    scan = _array(scan_vertices).reshape(-1, 3)
    if crop:
        scan = scan[crop_scan(scan, scan_landmarks7)]
    verts = _array(pred_vertices)
    sim = align_to_scan(verts, faces, pred_landmarks7, scan, scan_landmarks7, refine=refine, scale=metrical_scale,
                        iterations=iterations)
    dist, _, _ = point_to_mesh(scan, apply_similarity(verts, sim), faces)
    return dist


def now_summary(distances: Sequence[np.ndarray] | np.ndarray) -> dict[str, float]:
    """Median, mean and standard deviation (population, numpy's default) over all images' errors concatenated."""
    if isinstance(distances, np.ndarray):
        distances = [distances]
    flat = np.concatenate([np.asarray(d, dtype=np.float64).ravel() for d in distances]) if len(distances) else []
    if len(flat) == 0:
        raise ValueError("no distances to summarise")
    return {"median": float(np.median(flat)), "mean": float(np.mean(flat)), "std": float(np.std(flat))}
