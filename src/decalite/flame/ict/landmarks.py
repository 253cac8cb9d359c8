"""The 68-point landmark embedding of the ICT head, from ICT's landmark and jawline vertex lists.

* full (3D) landmarks: ICT's Multi-PIE 68 vertices.
* static (2D) landmarks 18..68: the same vertices.
* dynamic contour (79 yaw bins x 17): in the frontal bin the contour is ICT's jawline (its right and left jawline
  sets substitute Multi-PIE's points 0-7 and 9-16; the chin stays). For a turned head each point moves to the
  silhouette: along the direction from the face centre through its frontal position, the outermost projected
  vertex among the face vertices inside the jawline (the region the extended jawline sets bound). Bins follow
  DECA's yaw layout (:func:`decalite.flame.synthetic.landmarks.bin_yaw_degrees`), the head turned about the neck.
"""

from __future__ import annotations

import numpy as np

from decalite.flame.model_data import N_YAW_BINS, LandmarkEmbedding
from decalite.flame.synthetic.landmarks import bin_yaw_degrees


def vertex_faces(faces: np.ndarray, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A face holding each of ``vertices`` (L,) and the one-hot barycentric coordinates (L, 3) of the vertex."""
    out_f = np.empty(len(vertices), dtype=np.int64)
    out_b = np.zeros((len(vertices), 3))
    for i, v in enumerate(vertices):
        rows, cols = np.nonzero(faces == v)
        if rows.size == 0:
            raise ValueError(f"landmark vertex {v} is in no face")
        out_f[i] = rows[0]
        out_b[i, cols[0]] = 1.0
    return out_f, out_b


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) whether 2D ``points`` (N, 2) lie inside the closed ``polygon`` (P, 2) (even-odd rule)."""
    x, y = points[:, 0:1], points[:, 1:2]
    a, b = polygon, np.roll(polygon, -1, axis=0)
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return ((crosses & (x < xint)).sum(1) % 2) == 1


def _rot_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])


def contour_candidates(rest: np.ndarray, face: np.ndarray, right_ext: np.ndarray, left_ext: np.ndarray,
                       chin: int) -> np.ndarray:
    """Face vertices inside the jawline, seen from the front (the polygon of the extended jawline sets, closed
    across the face at their upper ends), facing forwards."""
    outline = np.concatenate([right_ext, [chin], left_ext])
    poly = rest[outline, :2]
    inner = face[_inside_polygon(rest[face, :2], poly)]
    return np.unique(np.concatenate([inner, outline]))


def dynamic_contour(rest: np.ndarray, frontal: np.ndarray, candidates: np.ndarray, pivot: np.ndarray,
                    centre: np.ndarray) -> np.ndarray:
    """(79, 17) contour vertex per yaw bin.

    Args:
        rest: (V, 3). frontal: (17,) the frontal contour vertices. candidates: (C,) vertices a contour point may
        move to. pivot: (3,) the point the head turns about. centre: (3,) the face centre the directions start at.
    """
    out = np.empty((N_YAW_BINS, 17), dtype=np.int64)
    for b, yaw in enumerate(bin_yaw_degrees()):
        rot = _rot_y(yaw)
        proj = (rest[candidates] - pivot) @ rot.T + pivot  # (C, 3)
        c = (centre - pivot) @ rot.T + pivot
        front = (rest[frontal] - pivot) @ rot.T + pivot
        rel = proj[:, :2] - c[:2]
        for i in range(17):
            d = front[i, :2] - c[:2]
            n = d / np.linalg.norm(d)
            along = rel @ n
            across = np.abs(rel @ np.array([-n[1], n[0]]))
            ok = (along > 0) & (across < 0.004)
            out[b, i] = candidates[np.where(ok)[0][np.argmax(along[ok])]] if ok.any() else frontal[i]
    return out


def ict_embedding(rest: np.ndarray, faces: np.ndarray, landmarks68: np.ndarray, frontal_contour: np.ndarray,
                  candidates: np.ndarray, pivot: np.ndarray) -> LandmarkEmbedding:
    """The landmark embedding (vertex indices are of the kept mesh).

    Args:
        rest: (V, 3). faces: (F, 3). landmarks68: (68,) Multi-PIE vertices. frontal_contour: (17,) the jawline
        contour at yaw 0. candidates: (C,) contour candidates. pivot: (3,) the neck joint.
    """
    full_f, full_b = vertex_faces(faces, landmarks68)
    centre = rest[landmarks68[30]].copy()  # nose tip
    centre[2] = rest[landmarks68[[0, 16]], 2].mean()
    contour = dynamic_contour(rest, frontal_contour, candidates, pivot, centre)
    dyn_f, dyn_b = vertex_faces(faces, contour.ravel())
    return LandmarkEmbedding(
        static_faces=full_f[17:], static_bary=full_b[17:],
        dynamic_faces=dyn_f.reshape(N_YAW_BINS, 17), dynamic_bary=dyn_b.reshape(N_YAW_BINS, 17, 3),
        full_faces=full_f, full_bary=full_b,
    )
