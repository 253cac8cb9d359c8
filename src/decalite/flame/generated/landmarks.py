"""iBUG 68-point landmark embedding of the generated head.

Static points (iBUG 18..68, indices 17..67) are placed by front-view design positions projected onto the skin.
Jaw-contour points (indices 0..16) are computed per yaw bin as the silhouette of the face in 17 directions
from the face centre, the way FLAME's dynamic embedding follows the visible outline as the head turns.
"""

from __future__ import annotations

import numpy as np

from decalite.flame.generated.geometry import (
    EYE_CENTRES_XY,
    EYE_HALF_HEIGHT,
    EYE_HALF_WIDTH,
    MOUTH_Y,
    HeadTemplate,
)
from decalite.flame.model_data import N_YAW_BINS, LandmarkEmbedding


def _static_design(t: HeadTemplate) -> np.ndarray:
    """(51, 2) front-view (x, y) of iBUG points 18..68. Subject's right (-x) comes first, as in iBUG."""
    brow_x = np.array([-0.055, -0.045, -0.033, -0.022, -0.011])
    brow_y = np.array([0.036, 0.042, 0.045, 0.044, 0.041])
    pts = [np.stack([brow_x, brow_y], -1), np.stack([-brow_x[::-1], brow_y[::-1]], -1)]
    pts.append(np.stack([np.zeros(4), [0.022, 0.010, -0.002, -0.013]], -1))
    pts.append(np.stack([[-0.011, -0.0055, 0.0, 0.0055, 0.011], [-0.0235, -0.0255, -0.0265, -0.0255, -0.0235]], -1))
    w, h = EYE_HALF_WIDTH * 0.98, EYE_HALF_HEIGHT * 0.9
    for ex, ey in EYE_CENTRES_XY[::-1]:  # right eye (-x) first
        # iBUG order: corner, two upper, corner, two lower; the right eye starts at its outer (-x) corner.
        pts.append(np.array([[ex - w, ey], [ex - w / 3, ey + h], [ex + w / 3, ey + h], [ex + w, ey],
                             [ex + w / 3, ey - h], [ex - w / 3, ey - h]]))
    mouth = _slit_y(t)
    c = 0.0235
    outer = [[-c, MOUTH_Y], [-0.015, -0.0395], [-0.006, -0.0365], [0.0, -0.0375], [0.006, -0.0365],
             [0.015, -0.0395], [c, MOUTH_Y], [0.015, -0.0555], [0.006, -0.0595], [0.0, -0.060],
             [-0.006, -0.0595], [-0.015, -0.0555]]
    pts.append(np.array(outer))
    inner_x = np.array([-0.020, -0.010, 0.0, 0.010, 0.020, 0.010, 0.0, -0.010])
    side = np.array([0, 1, 1, 1, 0, -1, -1, -1])  # 1 upper lip, -1 lower lip, 0 corner
    pts.append(np.stack([inner_x, mouth(inner_x) + side * 4e-4], -1))
    out = np.concatenate(pts)
    out[[31, 37], 1] = mouth(out[[31, 37], 0])  # iBUG 49 and 55, the mouth corners
    return out


def _slit_y(t: HeadTemplate):
    ring = t.grid_index[t.mouth_ring]
    p = t.vertices[ring]
    front = p[:, 2] > 0
    order = np.argsort(p[front, 0])
    xs, ys = p[front, 0][order], p[front, 1][order]
    return lambda x: np.interp(x, xs, ys)


def _skin_faces(t: HeadTemplate) -> np.ndarray:
    return np.where((t.part[t.faces] == 0).all(1))[0]


def project_front(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, candidates: np.ndarray):
    """Hit the front-most candidate face under each front-view point.

    Args:
        points: (L, 2) (x, y). verts: (V, 3). faces: (F, 3). candidates: (C,) face indices.
    Returns:
        face index (L,) and barycentric coordinates (L, 3).
    """
    tri = verts[faces[candidates]]  # (C, 3, 3)
    a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])  # (C,)
    out_f, out_b = [], []
    for p in points:
        w1 = ((p[0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (p[1] - a[:, 1])) / det
        w2 = ((b[:, 0] - a[:, 0]) * (p[1] - a[:, 1]) - (p[0] - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
        w0 = 1.0 - w1 - w2
        bary = np.stack([w0, w1, w2], -1)
        inside = (bary >= -1e-9).all(1) & (np.abs(det) > 1e-14)
        if not inside.any():
            raise RuntimeError(f"landmark design point {p} misses the surface")
        z = (bary * tri[:, :, 2]).sum(1)
        k = np.where(inside)[0][np.argmax(z[inside])]
        out_f.append(candidates[k])
        out_b.append(np.clip(bary[k], 0.0, 1.0) / np.clip(bary[k], 0.0, 1.0).sum())
    return np.asarray(out_f, dtype=np.int64), np.asarray(out_b)


def bin_yaw_degrees() -> np.ndarray:
    """(79,) head yaw in degrees of each bin, in DECA's layout (bin b: +b for b <= 39, -(b - 39) above)."""
    b = np.arange(N_YAW_BINS)
    return np.where(b <= 39, b, 39 - b).astype(np.float64)


def _contour(t: HeadTemplate, yaw_deg: float, pivot: np.ndarray, cand_faces: np.ndarray, samples: np.ndarray):
    """17 jaw-contour (face, bary) for one yaw: the outermost face point in each of 17 directions."""
    a = np.radians(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    tri = t.vertices[t.faces[cand_faces]]  # (C, 3, 3)
    pts = np.einsum("sk,ckd->csd", samples, tri).reshape(-1, 3)  # (C, S, 3) -> (C*S, 3)
    proj = (pts - pivot) @ rot.T + pivot
    centre = (np.array([0.0, 0.012, 0.08]) - pivot) @ rot.T + pivot
    rel = proj[:, :2] - centre[:2]
    faces_out, bary_out = [], []
    for i in range(17):
        ang = np.radians(185.0 + i * 170.0 / 16.0)
        n = np.array([np.cos(ang), np.sin(ang)])
        along = rel @ n
        across = np.abs(rel @ np.array([-n[1], n[0]]))
        ok = (along > 0) & (across < 0.003)
        k = np.where(ok)[0][np.argmax(along[ok])]
        faces_out.append(cand_faces[k // len(samples)])
        bary_out.append(samples[k % len(samples)])
    return np.asarray(faces_out, dtype=np.int64), np.asarray(bary_out)


def landmark_embedding(t: HeadTemplate, pivot: np.ndarray) -> LandmarkEmbedding:
    """Build the 68-point embedding; contour silhouettes are computed for heads turned about ``pivot``."""
    skin = _skin_faces(t)
    front_normal = np.cross(
        t.vertices[t.faces[skin, 1]] - t.vertices[t.faces[skin, 0]],
        t.vertices[t.faces[skin, 2]] - t.vertices[t.faces[skin, 0]],
    )[:, 2] > 0
    static_f, static_b = project_front(_static_design(t), t.vertices, t.faces, skin[front_normal])

    # Contour candidates: skin of the face half of the head (not the neck, not behind the ears).
    centroid = t.vertices[t.faces[skin]].mean(1)
    azimuth = np.degrees(np.arctan2(centroid[:, 0], centroid[:, 2] + 0.01))
    neck = t.neckness[t.faces[skin]].max(1)
    cand = skin[(np.abs(azimuth) < 80.0) & (neck < 0.5) & (centroid[:, 1] < 0.03)]
    samples = np.array([[1 / 3, 1 / 3, 1 / 3], [2 / 3, 1 / 6, 1 / 6], [1 / 6, 2 / 3, 1 / 6], [1 / 6, 1 / 6, 2 / 3]])
    dyn_f = np.zeros((N_YAW_BINS, 17), dtype=np.int64)
    dyn_b = np.zeros((N_YAW_BINS, 17, 3))
    for b, yaw in enumerate(bin_yaw_degrees()):
        dyn_f[b], dyn_b[b] = _contour(t, yaw, pivot, cand, samples)
    return LandmarkEmbedding(
        static_faces=static_f,
        static_bary=static_b,
        dynamic_faces=dyn_f,
        dynamic_bary=dyn_b,
        full_faces=np.concatenate([dyn_f[0], static_f]),
        full_bary=np.concatenate([dyn_b[0], static_b]),
    )
