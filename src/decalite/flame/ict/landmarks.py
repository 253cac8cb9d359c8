"""The 68-point landmark embedding of the ICT head, from ICT's landmark and jawline vertex lists.

* full (3D) landmarks: ICT's Multi-PIE 68 vertices.
* static (2D) landmarks 18..68: the same vertices.
* dynamic contour (79 yaw bins x 17): in the frontal bin the contour is ICT's jawline (its right and left jawline
  sets substitute Multi-PIE's points 0-7 and 9-16; the chin stays). For a turned head each point moves to the
  silhouette: along the direction from the face centre through its frontal position, the outermost projected
  vertex among the face vertices inside the jawline (the region the extended jawline sets bound). Bins follow
  DECA's yaw layout (:func:`decalite.flame.generated.landmarks.bin_yaw_degrees`), the head turned about the neck.
"""

from __future__ import annotations

import numpy as np

from decalite.flame.generated.landmarks import bin_yaw_degrees
from decalite.flame.model_data import N_YAW_BINS, LandmarkEmbedding


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


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    out = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(out, faces[:, k], fn)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-15)


def dynamic_contour(rest: np.ndarray, normals: np.ndarray, frontal: np.ndarray, candidates: np.ndarray,
                    pivot: np.ndarray, centre: np.ndarray, band: float = 0.004) -> np.ndarray:
    """(79, 17) contour vertex per yaw bin.

    Each point's path is the forward-facing candidates within ``band`` (front view) of the segment from the face
    centre to its frontal vertex, from a third of the way out; for a turned head the point is the path's vertex
    that still faces the camera and projects furthest out along the segment's direction: its frontal vertex on
    the near side, the silhouette on the far side.

    Args:
        rest: (V, 3). normals: (V, 3) its unit vertex normals. frontal: (17,) the frontal contour vertices.
        candidates: (C,) vertices a contour point may move to. pivot: (3,) the point the head turns about.
        centre: (3,) the face centre the paths start at.
    """
    candidates = candidates[normals[candidates, 2] > 0.0]
    out = np.empty((N_YAW_BINS, 17), dtype=np.int64)
    paths, dirs = [], []
    for i in range(17):
        d = rest[frontal[i], :2] - centre[:2]
        length = np.linalg.norm(d)
        n = d / length
        rel = rest[candidates, :2] - centre[:2]
        t = rel @ n / length
        across = np.abs(rel @ np.array([-n[1], n[0]]))
        path = candidates[(t > 1.0 / 3.0) & (t <= 1.0) & (across < band)]
        paths.append(np.unique(np.concatenate([path, frontal[i:i + 1]])))
        dirs.append(n)
    for b, yaw in enumerate(bin_yaw_degrees()):
        if yaw == 0.0:
            out[b] = frontal
            continue
        rot = _rot_y(yaw)
        c = (centre - pivot) @ rot.T + pivot
        for i in range(17):
            proj = (rest[paths[i]] - pivot) @ rot.T + pivot
            outward = (proj[:, :2] - c[:2]) @ dirs[i]
            facing = min(0.0, float(normals[frontal[i], 2]))  # never stricter than the frontal vertex at rest
            outward[normals[paths[i]] @ rot[2] < facing] = -np.inf  # turned away from the camera
            out[b, i] = paths[i][np.argmax(outward)] if np.isfinite(outward).any() else frontal[i]
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
    contour = dynamic_contour(rest, vertex_normals(rest, faces), frontal_contour, candidates, pivot, centre)
    dyn_f, dyn_b = vertex_faces(faces, contour.ravel())
    return LandmarkEmbedding(
        static_faces=full_f[17:], static_bary=full_b[17:],
        dynamic_faces=dyn_f.reshape(N_YAW_BINS, 17), dynamic_bary=dyn_b.reshape(N_YAW_BINS, 17, 3),
        full_faces=full_f, full_bary=full_b,
    )
