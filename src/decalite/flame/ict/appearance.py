"""UV masks and a procedural albedo model in the ICT head's UV atlas.

ICT Face Model Light has no albedo model (the full model's is under another licence), so decalite builds a
procedural one, like the mannequin's: a mean skin colour with lips and brows placed from the landmarks, white
scleras, brown irises with dark pupils, and a linear basis (brightness, redness, yellowness, iris colour, then
smooth low-frequency colour patterns over the skin). It is not a statistical model of real skin.
Masks (DECA's uv_face_mask / uv_face_eye_mask): the face-eye mask is ICT's narrow face area in the face tile;
the face mask leaves out the eyes (the eye-landmark polygons grown by a few millimetres).
"""

from __future__ import annotations

import numpy as np

from decalite.flame.generated.appearance import BROWS, IRIS, LIPS, SCLERA, SKIN, linear_basis
from decalite.flame.ict.landmarks import _inside_polygon
from decalite.flame.model_data import AlbedoData

#: How far around the eye landmarks the face mask stops (metres, front view).
EYE_MARGIN = 0.004


def rasterize_uv(uvs: np.ndarray, faces_uvs: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which face covers each texel centre of a (size, size) UV image, and where.

    Args:
        uvs: (T, 2) in [0, 1], v up. faces_uvs: (F, 3).
    Returns:
        face (size, size) int64 (-1 where no face) and barycentric coordinates (size, size, 3); row 0 is v = 1.
    """
    face = np.full((size, size), -1, dtype=np.int64)
    bary = np.zeros((size, size, 3))
    px = np.stack([uvs[:, 0] * size - 0.5, (1.0 - uvs[:, 1]) * size - 0.5], axis=1)  # texel-centre coordinates
    tri = px[faces_uvs]  # (F, 3, 2)
    lo = np.clip(np.ceil(tri.min(1)), 0, size - 1).astype(int)
    hi = np.clip(np.floor(tri.max(1)), 0, size - 1).astype(int)
    for f in range(tri.shape[0]):
        (x0, y0), (x1, y1) = lo[f], hi[f]
        if x1 < x0 or y1 < y0:
            continue
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        a, b, c = tri[f]
        det = (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])
        if abs(det) < 1e-12:
            continue
        w1 = ((xs - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (ys - a[1])) / det
        w2 = ((b[0] - a[0]) * (ys - a[1]) - (xs - a[0]) * (b[1] - a[1])) / det
        w0 = 1.0 - w1 - w2
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        face[ys[inside], xs[inside]] = f
        bary[ys[inside], xs[inside]] = np.stack([w0, w1, w2], -1)[inside]
    return face, bary


def texel_attribute(values: np.ndarray, faces: np.ndarray, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """(size, size, C) per-vertex ``values`` (V, C) interpolated at each texel (NaN where no face)."""
    out = np.einsum("hwk,hwkc->hwc", bary, values[faces[np.maximum(face, 0)]])
    out[face < 0] = np.nan
    return out


def _eye_polygons(rest: np.ndarray, landmarks68: np.ndarray) -> list[np.ndarray]:
    """The two eye-landmark polygons (6, 2) in the front view, grown by EYE_MARGIN from their centres."""
    polys = []
    for a in (36, 42):
        p = rest[landmarks68[a:a + 6], :2]
        c = p.mean(0)
        d = p - c
        polys.append(c + d * (1.0 + EYE_MARGIN / np.linalg.norm(d, axis=1, keepdims=True)) + 0.0)
    return polys


def uv_masks(rest: np.ndarray, faces: np.ndarray, face_area: np.ndarray, landmarks68: np.ndarray,
             face_tile: np.ndarray, face: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(face_mask, face_eye_mask), each (size, size) float32 in {0, 1}.

    Args:
        rest: (V, 3). faces: (F, 3). face_area: (V,) bool, the narrow face. landmarks68: (68,) vertices.
        face_tile: (F,) bool, faces in the face tile. face, bary: :func:`rasterize_uv` of the atlas.
    """
    covered = face >= 0
    f = np.maximum(face, 0)
    inside = covered & face_tile[f] & face_area[faces[f]].all(-1)
    xy = texel_attribute(rest, faces, face, bary)[..., :2]
    eyes = np.zeros_like(inside)
    for poly in _eye_polygons(rest, landmarks68):
        eyes |= _inside_polygon(np.nan_to_num(xy).reshape(-1, 2), poly).reshape(inside.shape)
    return (inside & ~eyes).astype(np.float32), inside.astype(np.float32)


def albedo_model(rest: np.ndarray, faces: np.ndarray, landmarks68: np.ndarray, part_of_face: dict[str, np.ndarray],
                 face: np.ndarray, bary: np.ndarray, rng: np.random.Generator, n_components: int = 50) -> AlbedoData:
    """The procedural albedo model: mean (A, A, 3) and basis (A, A, 3, n_components), RGB in [0, 1].

    Args:
        part_of_face: name -> (F,) bool for "skin", "sclera", "iris". face, bary: :func:`rasterize_uv` at A.
    """
    size = face.shape[0]
    f = np.maximum(face, 0)
    covered = face >= 0
    pos = np.nan_to_num(texel_attribute(rest, faces, face, bary))
    x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
    skin = covered & part_of_face["skin"][f]
    sclera = covered & part_of_face["sclera"][f]
    iris = covered & part_of_face["iris"][f]
    lmk = rest[landmarks68]
    mean = np.tile(SKIN, (size, size, 1))
    front = z > lmk[[0, 16], 2].mean()
    xy = np.stack([x, y], -1).reshape(-1, 2)
    lips = _inside_polygon(xy, lmk[48:60, :2]).reshape(size, size) & front & skin
    brow_w = np.zeros((size, size))
    for a in (17, 22):
        bx, by = lmk[a:a + 5, 0], lmk[a:a + 5, 1]
        order = np.argsort(bx)
        on = (x > bx.min() - 0.002) & (x < bx.max() + 0.002)
        brow_w = np.maximum(brow_w, np.exp(-(((y - np.interp(x, bx[order], by[order]) - 0.002) / 0.003) ** 2)) * on)
    brow_w *= front & skin
    mean[lips] = LIPS
    mean = mean * (1 - brow_w[..., None]) + BROWS * brow_w[..., None]
    mean[sclera] = SCLERA
    mean[iris] = IRIS
    for side in (0, 1):
        verts = np.unique(faces[part_of_face["iris"] & (np.sign(rest[faces[:, 0], 0]) == (1 if side == 0 else -1))])
        if verts.size:
            pole = rest[verts[np.argmax(rest[verts, 2])]]
            mean[iris & (np.linalg.norm(pos - pole, axis=-1) < 0.0018)] = 0.05  # pupil
    basis = linear_basis(mean, skin, iris, rng, n_components)
    return AlbedoData(mean=mean.astype(np.float32), basis=basis.astype(np.float32))
