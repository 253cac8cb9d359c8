"""UV masks and the linear albedo model of the generated head.

The skin's UV chart is the (column, ring) grid itself, so each texel's template position is a bilinear
interpolation of grid vertices. Eyeballs and the mouth cavity have small charts in the strip v < 0.1.
"""

from __future__ import annotations

import numpy as np

from decalite.flame.generated.geometry import (
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    N_COLS,
    N_RINGS,
    V_HEAD_MIN,
    HeadTemplate,
    eye_opening,
)
from decalite.flame.model_data import AlbedoData

SKIN = np.array([0.80, 0.60, 0.50])
LIPS = np.array([0.72, 0.42, 0.42])
BROWS = np.array([0.40, 0.30, 0.24])
SCLERA = np.array([0.92, 0.90, 0.86])
IRIS = np.array([0.32, 0.22, 0.14])
CAVITY = np.array([0.35, 0.10, 0.10])


def texel_uv(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size) u and v of texel centres; row 0 is the top of the image (v near 1)."""
    c = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(c, 1.0 - c, indexing="xy")
    return u, v


def texel_positions(t: HeadTemplate, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Template position (..., 3) and skin neckness (...,) under each skin texel (NaN outside the skin chart)."""
    ring = (1.0 - v) / (1.0 - V_HEAD_MIN) * (N_RINGS + 1) - 1.0
    col = u * N_COLS
    r0 = np.clip(np.floor(ring), 0, N_RINGS - 2).astype(int)
    c0 = np.floor(col).astype(int) % N_COLS
    fr = np.clip(ring - r0, 0.0, 1.0)[..., None]
    fc = (col - np.floor(col))[..., None]
    g = t.grid_index
    p = lambda r, c: t.vertices[g[r, c % N_COLS]]  # noqa: E731
    pos = (1 - fr) * ((1 - fc) * p(r0, c0) + fc * p(r0, c0 + 1)) + fr * ((1 - fc) * p(r0 + 1, c0) + fc * p(r0 + 1, c0 + 1))
    nk = lambda r, c: t.neckness[g[r, c % N_COLS]]  # noqa: E731
    neck = (1 - fr[..., 0]) * nk(r0, c0) + fr[..., 0] * nk(r0 + 1, c0)
    off = v < V_HEAD_MIN
    pos[off] = np.nan
    return pos, neck


def uv_masks(t: HeadTemplate, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(face_mask, face_eye_mask), each (size, size) float32 in {0, 1}: the face without / with the eyes."""
    u, v = texel_uv(size)
    pos, neck = texel_positions(t, u, v)
    x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
    with np.errstate(invalid="ignore"):
        oval = ((x / 0.068) ** 2 + ((y + 0.012) / 0.088) ** 2 < 1.0) & (z > 0.0) & (neck < 0.5)
        eyes = eye_opening(np.nan_to_num(x), np.nan_to_num(y)) > 0.05
    face_eye = oval.astype(np.float32)
    face = (oval & ~eyes).astype(np.float32)
    return face, face_eye


def _eye_texels(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean eyeball texels and their polar angle (radians from the front pole)."""
    inside = np.zeros_like(u, dtype=bool)
    polar = np.full_like(u, np.pi)
    for e in range(2):
        cu, cv = 0.02 + 0.33 * e + 0.04, 0.05
        rad = np.hypot(u - cu, v - cv)
        sel = rad < 0.04
        inside |= sel
        polar = np.where(sel, rad / 0.04 * np.pi, polar)
    return inside, polar


def albedo_model(t: HeadTemplate, rng: np.random.Generator, size: int = 128, n_components: int = 50) -> AlbedoData:
    """A linear albedo model: mean (size, size, 3) and basis (size, size, 3, n_components), RGB in [0, 1]."""
    u, v = texel_uv(size)
    pos, _ = texel_positions(t, u, v)
    x, y, z = (np.nan_to_num(pos[..., i]) for i in range(3))
    skin = ~np.isnan(pos[..., 0])
    mean = np.tile(SKIN, (size, size, 1))
    ax = np.abs(x)
    front = z > 0.0
    lip_w = np.exp(-(((y - MOUTH_Y) / 0.0085) ** 2)) * np.clip(1 - (ax / (MOUTH_HALF_WIDTH + 0.004)) ** 2, 0, 1) * front
    brow_y = 0.041 + 0.004 * np.exp(-(((ax - 0.03) / 0.02) ** 2))
    brow_w = np.exp(-(((y - brow_y) / 0.0035) ** 2)) * ((ax > 0.008) & (ax < 0.058)) * front
    mean = mean * (1 - lip_w[..., None]) + LIPS * lip_w[..., None]
    mean = mean * (1 - brow_w[..., None]) + BROWS * brow_w[..., None]
    eye, polar = _eye_texels(u, v)
    iris = eye & (polar < 0.45)
    pupil = eye & (polar < 0.18)
    mean[eye] = SCLERA
    mean[iris] = IRIS
    mean[pupil] = 0.05
    cavity = (v < V_HEAD_MIN) & (u > 0.69)
    mean[cavity] = CAVITY

    basis = linear_basis(mean, skin, iris, rng, n_components)
    return AlbedoData(mean=mean.astype(np.float32), basis=basis.astype(np.float32))


def linear_basis(mean: np.ndarray, skin: np.ndarray, iris: np.ndarray, rng: np.random.Generator,
                 n_components: int) -> np.ndarray:
    """(A, A, 3, n_components) albedo components: brightness, redness and yellowness of the skin, iris colour,
    then smooth low-frequency colour patterns over the skin (random frequencies, phases and colours from ``rng``).

    Args:
        mean: (A, A, 3) mean albedo. skin, iris: (A, A) bool texels of the skin and the irises.
    """
    size = mean.shape[0]
    u, v = texel_uv(size)
    basis = np.zeros((size, size, 3, n_components))
    skin_f = skin.astype(float)[..., None]
    basis[..., 0] = mean * 0.25 * skin_f  # overall brightness
    basis[..., 1] = np.array([0.06, -0.02, -0.02]) * skin_f  # redness
    basis[..., 2] = np.array([0.04, 0.03, -0.04]) * skin_f  # yellowness
    if n_components > 3:
        basis[..., 3] = np.array([0.08, 0.06, 0.03]) * iris[..., None]  # iris colour
    for k in range(4, n_components):
        fu, fv = rng.integers(1, 2 + k // 6, size=2)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        pattern = np.cos(2 * np.pi * fu * u + phase[0]) * np.cos(2 * np.pi * fv * v + phase[1])
        colour = rng.normal(size=3)
        colour /= np.linalg.norm(colour)
        basis[..., k] = 0.05 * np.exp(-k / 15.0) * pattern[..., None] * colour * skin_f
    return basis
