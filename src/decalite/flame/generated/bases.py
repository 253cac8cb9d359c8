"""Shape, expression and pose-corrective bases of the generated head.

Every component is a smooth displacement field of the template, in metres per unit coefficient. Shape
components change identity (head size and proportions first, then smooth, mostly symmetric random fields with
decreasing amplitude, like the variance order of a PCA basis). Expression components are localised to the
brows, eyes, cheeks and mouth (hand-designed actions first: smile, brow raise, blink...; then random localised
fields). Eyeballs move rigidly with their orbit; the mouth cavity follows the lip vertex it was extruded from.
"""

from __future__ import annotations

import numpy as np

from decalite.flame.generated.geometry import (
    EYE_CENTRES_XY,
    EYE_HALF_HEIGHT,
    EYE_HALF_WIDTH,
    HEAD_CENTRE,
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    ORIGIN,
    HeadTemplate,
    eye_opening,
    gauss,
    smoothstep,
    soft_neckness,
)

N_SHAPE = 300
N_EXP = 100
#: Names of the hand-designed expression components, in order; the rest are random localised fields.
EXPRESSION_NAMES = (
    "smile", "brow_raise", "brow_furrow", "blink", "pucker", "lip_stretch", "smile_left", "smile_right",
    "brow_raise_left", "brow_raise_right", "blink_left", "blink_right", "cheek_puff", "nose_wrinkle",
    "upper_lip_raise", "lower_lip_depress", "frown", "cheek_suck", "squint", "eyes_wide",
)
SHAPE_NAMES = (
    "scale", "head_width", "face_length", "head_depth", "nose_protrusion", "nose_width", "jaw_width",
    "chin_protrusion", "eye_spacing", "cheek_fullness", "brow_protrusion", "lip_fullness",
)


def _propagate(field: np.ndarray, t: HeadTemplate, points: np.ndarray) -> np.ndarray:
    """Make eyeballs rigid (displacement of their orbit's front point) and the cavity follow the lips.

    Args:
        field: (V, 3) displacement evaluated on the template; rewritten for eyeball and cavity vertices.
        points: (V, 3) template vertices (the field is re-evaluated by the caller, so here only copies happen).
    """
    out = field.copy()
    cav = t.part == 3
    out[cav] = field[t.cavity_source[cav]]
    for e in (1, 2):
        sel = t.part == e
        front = np.array([*EYE_CENTRES_XY[e - 1], points[sel, 2].max()])
        skin = np.where(t.part == 0)[0]
        near = skin[np.argsort(np.linalg.norm(points[skin] - front, axis=1))[:8]]
        out[sel] = field[near].mean(0)
    return out


def _frontal(v: np.ndarray, t: HeadTemplate) -> np.ndarray:
    """(V,) weight of the front of the face: 1 on the face, 0 at the sides, back and neck."""
    return smoothstep(0.0, 0.05, v[:, 2]) * (1.0 - t.neckness) * (t.part == 0)


def _radial(v: np.ndarray) -> np.ndarray:
    d = v - ORIGIN
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def shape_basis(t: HeadTemplate, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 300) identity shape components."""
    v = t.vertices
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    head = (1.0 - soft_neckness(t.neckness, 0.1))[:, None]
    front = _frontal(v, t)
    lower = smoothstep(0.0, 0.05, -(y + 0.01))  # below the nose
    nose = gauss(x, y, 0.0, -0.005, 0.012, 0.022) * front
    cheeks = (gauss(np.abs(x), y, 0.045, -0.01, 0.016, 0.018)) * front
    lips = gauss(x, y, 0.0, MOUTH_Y, MOUTH_HALF_WIDTH, 0.01) * front
    comps = [
        (v - HEAD_CENTRE) * 0.04 * head,
        np.stack([x * 0.05, 0 * x, 0 * x], -1) * head,
        np.stack([0 * x, np.minimum(y - 0.02, 0.0) * 0.06, 0 * x], -1) * head,
        np.stack([0 * x, 0 * x, (z + 0.01) * 0.04], -1) * head,
        np.stack([0 * x, -0.001 * nose, 0.004 * nose], -1),
        np.stack([x * 0.25 * nose, 0 * x, 0 * x], -1),
        np.stack([x * 0.08 * lower, 0 * x, 0 * x], -1) * head,
        np.stack([0 * x, -0.001 * front * lower, 0.005 * front * lower * gauss(x, y, 0, -0.075, 0.02, 0.015)], -1),
        np.stack([np.sign(x) * 0.002 * sum(gauss(x, y, ex, ey, 0.014, 0.012) for ex, ey in EYE_CENTRES_XY), 0 * x, 0 * x], -1)
        * front[:, None],
        _radial(v) * (0.004 * cheeks)[:, None],
        _radial(v) * (0.003 * np.exp(-(((y - 0.041) / 0.008) ** 2)) * front)[:, None],
        np.stack([0 * x, np.sign(y - MOUTH_Y) * 0.0015 * lips, 0.002 * lips], -1),
    ]
    assert len(comps) == len(SHAPE_NAMES)
    normals = _radial(v)
    k0 = len(comps)
    for k in range(k0, N_SHAPE):
        amp = 0.0015 * np.exp(-(k - k0) / 40.0) + 0.0001
        scale = 0.06 * np.exp(-(k - k0) / 120.0) + 0.012
        n_rbf = 3
        centres = HEAD_CENTRE + rng.normal(size=(n_rbf, 3)) * [0.05, 0.06, 0.06]
        centres[:, 2] = np.abs(centres[:, 2] - HEAD_CENTRE[2]) + HEAD_CENTRE[2]  # favour the face
        weights = rng.normal(size=n_rbf)
        a = np.zeros(len(v))
        for c, w in zip(centres, weights):
            mirrored = c * [-1, 1, 1]
            sym = np.exp(-((v - c) ** 2).sum(1) / scale**2) + np.exp(-((v - mirrored) ** 2).sum(1) / scale**2)
            asym = 0.2 * np.exp(-((v - c) ** 2).sum(1) / scale**2)
            a += w * (sym + asym * rng.normal())
        a /= max(np.abs(a).max(), 1e-9)
        tangent = rng.normal(size=3) * 0.2
        comps.append(amp * (a[:, None] * (normals + tangent)) * head)
    basis = np.stack([_propagate(c, t, v) for c in comps], axis=-1)
    return basis


def _eye_lids(v: np.ndarray, e: int) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower eyelid weights (V,) of eye e (0 left, 1 right)."""
    ex, ey = EYE_CENTRES_XY[e]
    u = (v[:, 0] - ex) / (EYE_HALF_WIDTH * 1.15)
    across = np.clip(1.0 - u * u, 0.0, 1.0) ** 0.5
    dy = v[:, 1] - ey
    upper = across * smoothstep(-0.0015, 0.001, dy) * (1.0 - smoothstep(0.006, 0.013, dy))
    lower = across * smoothstep(-0.0015, 0.001, -dy) * (1.0 - smoothstep(0.004, 0.009, -dy))
    return upper, lower


def expression_basis(t: HeadTemplate, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 100) expression components, localised to brows, eyes, cheeks and mouth."""
    v = t.vertices
    x, y = v[:, 0], v[:, 1]
    ax = np.abs(x)
    sx = np.sign(x)
    front = _frontal(v, t)
    zero = np.zeros_like(x)
    left = smoothstep(-0.006, 0.006, x)
    right = 1.0 - left
    opening = eye_opening(x, y)

    def vec(dx, dy, dz):
        return np.stack([dx + zero, dy + zero, dz + zero], -1) * front[:, None]

    corners = gauss(ax, y, MOUTH_HALF_WIDTH, MOUTH_Y, 0.013, 0.011)
    cheek_raise = gauss(ax, y, 0.040, -0.012, 0.016, 0.014)
    smile = vec(0.0025 * sx * corners, 0.0035 * corners + 0.0018 * cheek_raise, -0.0008 * corners + 0.001 * cheek_raise)
    forehead = smoothstep(0.028, 0.036, y) * (1.0 - smoothstep(0.06, 0.10, y)) * (1.0 - smoothstep(0.045, 0.07, ax))
    brow_raise = vec(0.0, 0.005 * forehead, 0.0)
    inner_brow = gauss(ax, y, 0.014, 0.040, 0.012, 0.010)
    brow_furrow = vec(-0.002 * sx * inner_brow, -0.003 * inner_brow, 0.0006 * inner_brow)

    def blink_of(e: int) -> np.ndarray:
        upper, _ = _eye_lids(v, e)
        # Close the lid: down by the opening's height and forward over the eyeball.
        return vec(0.0, -2.0 * EYE_HALF_HEIGHT * upper, 0.0095 * upper * np.maximum(opening, 0.3))

    blink = blink_of(0) + blink_of(1)
    lip_region = gauss(x, y, 0.0, MOUTH_Y, MOUTH_HALF_WIDTH * 1.1, 0.012)
    pucker = vec(-0.35 * x * lip_region, 0.0, 0.005 * lip_region)
    stretch = vec(0.004 * sx * corners, -0.001 * corners, -0.001 * corners)
    cheeks = gauss(ax, y, 0.045, -0.03, 0.016, 0.016)
    puff = vec(0.003 * sx * cheeks, 0.0, 0.003 * cheeks)
    nose_root = gauss(x, y, 0.0, 0.012, 0.012, 0.01) + gauss(ax, y, 0.013, -0.018, 0.006, 0.006)
    nose_wrinkle = vec(0.0, 0.002 * nose_root, -0.001 * nose_root)
    upper_lip = gauss(x, y, 0.0, MOUTH_Y + 0.007, MOUTH_HALF_WIDTH, 0.006) * (~t.lower_lip)
    lower_lip = gauss(x, y, 0.0, MOUTH_Y - 0.008, MOUTH_HALF_WIDTH, 0.007) * (y <= MOUTH_Y + 1e-4)
    lower_lip = np.where(t.lower_lip, gauss(x, MOUTH_Y - 0.008, 0.0, MOUTH_Y - 0.008, MOUTH_HALF_WIDTH, 0.007), lower_lip)
    frown = vec(0.0, -0.003 * corners, 0.0)
    suck = vec(-0.003 * sx * cheeks, 0.0, -0.002 * cheeks)
    squint = sum(vec(0.0, 0.003 * _eye_lids(v, e)[1], 0.001 * _eye_lids(v, e)[1]) for e in (0, 1))
    wide = sum(vec(0.0, 0.002 * _eye_lids(v, e)[0], 0.0) for e in (0, 1))
    comps = [
        smile, brow_raise, brow_furrow, blink, pucker, stretch, smile * left[:, None], smile * right[:, None],
        brow_raise * left[:, None], brow_raise * right[:, None], blink_of(0), blink_of(1), puff, nose_wrinkle,
        vec(0.0, 0.003 * upper_lip, 0.001 * upper_lip), vec(0.0, -0.003 * lower_lip, 0.0005 * lower_lip),
        frown, suck, squint, wide,
    ]
    assert len(comps) == len(EXPRESSION_NAMES)
    anchors = np.array(
        [[0.03, 0.045], [0.012, 0.04], [0.032, 0.026], [0.032, 0.014], [0.045, -0.01], [0.04, -0.035],
         [MOUTH_HALF_WIDTH, MOUTH_Y], [0.01, MOUTH_Y + 0.007], [0.01, MOUTH_Y - 0.008], [0.0, -0.075],
         [0.012, -0.02], [0.0, 0.06]]
    )
    k0 = len(comps)
    for k in range(k0, N_EXP):
        amp = 0.003 * np.exp(-(k - k0) / 30.0) + 0.0002
        cx, cy = anchors[rng.integers(len(anchors))] + rng.normal(size=2) * 0.004
        sgm = rng.uniform(0.007, 0.016)
        direction = rng.normal(size=3) * [1.0, 1.0, 0.5]
        direction /= np.linalg.norm(direction)
        w = gauss(x, y, cx, cy, sgm, sgm) + gauss(x, y, -cx, cy, sgm, sgm) * rng.uniform(0.0, 1.0)
        d = np.stack([direction[0] * np.where(x * cx >= 0, 1.0, -1.0) + zero, direction[1] + zero, direction[2] + zero], -1)
        comps.append(amp * w[:, None] * d * front[:, None])
    # Lid and lip fields must not split at the slit: the lower copies take the lower-lip value computed above.
    basis = np.stack([_propagate(c, t, v) for c in comps], axis=-1)
    for e in (1, 2):
        basis[t.part == e] = 0.0  # expressions never move the eyeballs
    return basis


#: A component at +-FOLD_SIGMAS standard deviations must not turn any face (outside the eyelids) by more than
#: FOLD_MAX_TURN_DEG, i.e. flip it: a flipped face is the surface folding over itself, which a shape render shows
#: as a thin dark crease (the "dark line across the cheeks" of fits that push a code to 2-3 sigma). Generator v4
#: had 28 expression and 3 shape components that folded within 3 sigma (brow raise from 2 sigma: a 10 mm shear
#: over an 8 mm band).
FOLD_SIGMAS = 3.0
FOLD_MAX_TURN_DEG = 90.0


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(..., F, 3) unit normals of vertices (..., V, 3)."""
    a, b, c = (vertices[..., faces[:, i], :] for i in range(3))
    n = np.cross(b - a, c - a)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def eyelid_faces(t: HeadTemplate) -> np.ndarray:
    """(F,) bool: faces touching an eyelid vertex (where closing the eye turns faces over by design)."""
    lids = sum(w for e in (0, 1) for w in _eye_lids(t.vertices, e)) > 1e-3
    return lids[t.faces].any(1)


def max_face_turn(t: HeadTemplate, component: np.ndarray, amplitude: float, ignore: np.ndarray) -> float:
    """The largest angle (degrees) by which a face not in ``ignore`` (F,) turns when the component (V, 3) is
    added at +amplitude or -amplitude."""
    n0 = _face_normals(t.vertices, t.faces)
    moved = t.vertices[None] + np.array([amplitude, -amplitude])[:, None, None] * component[None]
    cos = (_face_normals(moved, t.faces) * n0[None]).sum(-1)[:, ~ignore]
    return float(np.degrees(np.arccos(np.clip(cos.min(), -1.0, 1.0))))


def tame_folds(t: HeadTemplate, basis: np.ndarray, sigmas: float = FOLD_SIGMAS,
               max_turn_deg: float = FOLD_MAX_TURN_DEG) -> np.ndarray:
    """Scale down each component of basis (V, 3, K) that would fold the surface within +-sigmas: the largest
    factor in (0, 1] (bisection, 1 % resolution) keeping every face outside the eyelids within max_turn_deg."""
    ignore = eyelid_faces(t)
    out = basis.copy()
    for k in range(basis.shape[-1]):
        comp = basis[..., k]
        if max_face_turn(t, comp, sigmas, ignore) <= max_turn_deg:
            continue
        low, high = 0.0, 1.0
        while high - low > 0.01:
            mid = 0.5 * (low + high)
            low, high = (mid, high) if max_face_turn(t, comp, sigmas * mid, ignore) <= max_turn_deg else (low, mid)
        out[..., k] = comp * low
    return out


def pose_correctives(t: HeadTemplate, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 36) pose-corrective offsets per entry of (R - I) of neck, jaw, left eye and right eye.

    The jaw's correctives bulge the cheeks and thin the lips as the mouth opens (entry (2, 1) of the jaw
    rotation, sin of the opening angle); the neck's fold the throat when the head pitches. Eyes have none.
    """
    v = t.vertices
    x, y = v[:, 0], v[:, 1]
    front = _frontal(v, t)
    normals = _radial(v)
    dirs = np.zeros((len(v), 3, 36))
    cheeks = gauss(np.abs(x), y, 0.05, -0.035, 0.015, 0.02) * front
    lips = gauss(x, y, 0.0, MOUTH_Y, MOUTH_HALF_WIDTH, 0.01) * front
    jaw = 9  # features 9..17 belong to the jaw (joint 2)
    dirs[:, :, jaw + 7] = normals * (0.008 * cheeks)[:, None] - normals * (0.004 * lips)[:, None]
    throat = t.neckness * np.clip(v[:, 2] / 0.05, 0.0, 1.0) * (t.part == 0)
    dirs[:, :, 0 + 7] = normals * (0.006 * throat)[:, None]
    dirs[:, :, 0 + 2] = normals * (0.003 * throat * np.sign(x))[:, None]
    # A little seeded variety so different seeds give different but smooth correctives.
    dirs[:, :, jaw + 4] = normals * (0.002 * rng.uniform(0.5, 1.0) * cheeks)[:, None]
    dirs[t.part == 3] = dirs[t.cavity_source[t.part == 3]]
    return dirs
