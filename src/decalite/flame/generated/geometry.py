"""Template surface of the generated head: skin, eyeballs, mouth slit and mouth cavity, with a UV layout.

The skin is a star-shaped surface around ``ORIGIN``: a latitude/longitude grid whose radius along each ray is a
smooth union of a head ellipsoid and a capped neck cylinder, plus a relief of facial features (brow ridge,
orbits and eye openings, nose, cheekbones, lips, chin). The grid is denser on the face. A slit along one grid
row between the mouth corners separates upper and lower lip; a cavity behind it keeps the surface closed, so
the mouth opens when the lower lip and its half of the cavity follow the jaw. Two UV spheres are the eyeballs.

Coordinates: metres, +y up, +z out of the face, +x to the subject's left (see ``model_data``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ORIGIN = np.array([0.0, 0.0, -0.01])
HEAD_CENTRE = np.array([0.0, 0.025, -0.01])
HEAD_AXES = np.array([0.078, 0.11, 0.10])
NECK_AXIS_Z = -0.022
NECK_RADIUS = 0.054
NECK_Y = (-0.16, 0.02)
UNION_SOFTNESS = 0.004

EYE_CENTRES_XY = np.array([[0.032, 0.02], [-0.032, 0.02]])  # left eye (+x) first, as FLAME's joints
EYE_HALF_WIDTH = 0.0115
EYE_HALF_HEIGHT = 0.0042
EYEBALL_RADIUS = 0.0122
MOUTH_Y = -0.047
MOUTH_HALF_WIDTH = 0.024

N_RINGS = 64  # latitude rings between the two poles
N_COLS = 84  # longitude columns
V_HEAD_MIN = 0.1  # the skin uses v in [V_HEAD_MIN, 1]; eyeballs and mouth cavity live below it


@dataclass(frozen=True)
class HeadTemplate:
    """Template mesh and the bookkeeping the rest of the generator needs.

    Attributes:
        vertices: (V, 3) positions in metres.
        faces: (F, 3) vertex indices, counter-clockwise seen from outside.
        verts_uvs: (T, 2) UV coordinates; faces_uvs: (F, 3).
        part: (V,) int8, 0 skin, 1 left eyeball, 2 right eyeball, 3 mouth cavity.
        lower_lip: (V,) bool, vertices that belong to the lower side of the mouth slit (lower lip copies and the
            lower half of the cavity).
        neckness: (V,) float in [0, 1], how much a skin vertex belongs to the neck rather than the head.
        grid_index: (N_RINGS, N_COLS) vertex index of each skin grid node (upper-lip side at the slit).
        eye_centres: (2, 3) eyeball centres (left, right).
        cavity_source: (V,) int, for cavity vertices the slit vertex they were extruded from, else -1.
        mouth_ring: row index of the mouth slit in the grid.
        mouth_corners: (2,) vertex indices of the slit's two corners (shared by both lips).
        ring_theta: (N_RINGS,) polar angle of each ring; col_phi: (N_COLS,) azimuth of each column.
    """

    vertices: np.ndarray
    faces: np.ndarray
    verts_uvs: np.ndarray
    faces_uvs: np.ndarray
    part: np.ndarray
    lower_lip: np.ndarray
    neckness: np.ndarray
    grid_index: np.ndarray
    eye_centres: np.ndarray
    cavity_source: np.ndarray
    mouth_ring: int
    mouth_corners: np.ndarray
    ring_theta: np.ndarray
    col_phi: np.ndarray


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at edge0 to 1 at edge1, elementwise."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def soft_neckness(neckness: np.ndarray, softening: float = 0.15) -> np.ndarray:
    """A smoother head/neck split than the surface's own: the logit of ``neckness`` scaled by ``softening``."""
    n = np.clip(neckness, 1e-12, 1.0 - 1e-12)
    return 1.0 / (1.0 + np.exp(-np.log(n / (1.0 - n)) * softening))


def ring_angles(n_rings: int = N_RINGS) -> np.ndarray:
    """Polar angles (from +y) of the latitude rings, denser over the face. Returns (n_rings,) radians."""
    theta = np.linspace(0.0, np.pi, 4001)
    # Density peaks between the brows and the chin (polar angle about 75..140 degrees).
    density = 1.0 + 2.6 * np.exp(-(((theta - np.radians(104.0)) / np.radians(26.0)) ** 2))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(theta))])
    cdf /= cdf[-1]
    targets = np.arange(1, n_rings + 1) / (n_rings + 1)
    return np.interp(targets, cdf, theta)


def column_angles(n_cols: int = N_COLS, front_slope: float = 0.4) -> np.ndarray:
    """Azimuths of the longitude columns, 0 at the front (+z), -pi at column 0, denser over the face."""
    t = 2.0 * np.arange(n_cols) / n_cols - 1.0
    return np.pi * t * (front_slope + (1.0 - front_slope) * t * t)


def _directions(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit ray directions for polar angle from +y and azimuth from +z towards +x. (..., 3)."""
    return np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], axis=-1)


def _ellipsoid_exit(d: np.ndarray) -> np.ndarray:
    """Distance from ORIGIN along unit directions d (N, 3) to the head ellipsoid's surface. (N,)."""
    o = (ORIGIN - HEAD_CENTRE) / HEAD_AXES
    dd = d / HEAD_AXES
    a = (dd * dd).sum(-1)
    b = 2.0 * (dd * o).sum(-1)
    c = (o * o).sum() - 1.0
    return (-b + np.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)


def _neck_exit(d: np.ndarray) -> np.ndarray:
    """Distance from ORIGIN along d (N, 3) to the capped vertical neck cylinder's surface. (N,)."""
    ox, oz = ORIGIN[0], ORIGIN[2] - NECK_AXIS_Z
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2.0 * (ox * d[:, 0] + oz * d[:, 2])
    c = ox * ox + oz * oz - NECK_RADIUS**2
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = np.where(a > 1e-12, (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))) / (2 * a), np.inf)
        cap_y = np.where(d[:, 1] < 0, NECK_Y[0], NECK_Y[1])
        t_cap = np.where(np.abs(d[:, 1]) > 1e-12, (cap_y - ORIGIN[1]) / d[:, 1], np.inf)
    return np.minimum(t_side, t_cap)


def _smooth_max(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    m = np.maximum(a, b)
    return m + s * np.log1p(np.exp(-np.abs(a - b) / s))


def gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-(((x - cx) / sx) ** 2) - ((y - cy) / sy) ** 2)


def eye_opening(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Soft indicator of the two almond-shaped eye openings in front view. (N,) in [0, 1]."""
    out = np.zeros_like(x)
    for ex, ey in EYE_CENTRES_XY:
        u = (x - ex) / EYE_HALF_WIDTH
        half = EYE_HALF_HEIGHT * np.clip(1.0 - u * u, 0.0, None) ** 0.7
        inside = smoothstep(-0.0012, 0.0012, half - np.abs(y - ey)) * (np.abs(u) < 1.0)
        out = np.maximum(out, inside)
    return out


def face_relief(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Radial offset (metres) of the facial features at front-view position (x, y). (N,)."""
    ax = np.abs(x)
    r = np.zeros_like(x)
    # Orbits and eye openings: the skin inside the opening lies behind the eyeball.
    for ex, ey in EYE_CENTRES_XY:
        r -= 0.007 * gauss(x, y, ex, ey, 0.019, 0.014)
    r -= 0.009 * eye_opening(x, y)
    # Brow ridge.
    brow_y = 0.040 + 0.004 * np.exp(-(((ax - 0.03) / 0.02) ** 2))
    r += 0.005 * np.exp(-(((y - brow_y) / 0.008) ** 2)) * (1.0 - smoothstep(0.025, 0.065, ax)) ** 0.5
    # Nose: ridge from the root (y 0.028) to the tip (y -0.012), underside back to the base (y -0.026).
    height = np.where(
        y > -0.012,
        0.004 + 0.020 * np.clip((0.028 - y) / 0.040, 0.0, 1.0) ** 1.4,
        0.024 * np.clip(1.0 - ((-0.012 - y) / 0.015) ** 2, 0.0, 1.0),
    )
    width = 0.0055 + 0.0055 * np.clip((0.028 - y) / 0.040, 0.0, 1.0)
    r += height * np.exp(-((x / width) ** 4)) * (y < 0.034)
    r += 0.007 * gauss(ax, y, 0.013, -0.019, 0.006, 0.005)  # alar wings
    # Cheekbones and cheeks.
    r += 0.004 * gauss(ax, y, 0.046, 0.0, 0.013, 0.012)
    # Lips, the groove between them, the mentolabial fold and the chin.
    lip_window = np.clip(1.0 - (ax / (MOUTH_HALF_WIDTH + 0.003)) ** 2, 0.0, 1.0) ** 0.6
    taper = 0.35 + 0.65 * lip_window  # lips are fuller in the middle than at the corners
    r += 0.0055 * gauss(x, y, 0.0, MOUTH_Y + 0.0065 * taper, 0.5, 0.0045 * taper) * lip_window
    r += 0.0060 * gauss(x, y, 0.0, MOUTH_Y - 0.0075 * taper, 0.5, 0.0055 * taper) * lip_window
    r -= 0.0025 * gauss(x, y, 0.0, MOUTH_Y, 0.5, 0.0018) * lip_window
    r -= 0.0020 * gauss(x, y, 0.0, -0.0650, 0.012, 0.004)
    r += 0.0060 * gauss(x, y, 0.0, -0.0780, 0.016, 0.010)
    return r


FACE_HALF_WIDTH = 0.036  # features inside this half-width keep their position
LOWER_FACE_NARROWING = 0.45


def narrow_lower_face(points: np.ndarray, neckness: np.ndarray) -> np.ndarray:
    """Bring the cheeks and jaw inwards (a head ellipsoid is wider there than a face): beyond FACE_HALF_WIDTH
    the lateral distance shrinks by up to LOWER_FACE_NARROWING on the front of the lower face. (N, 3) -> (N, 3)."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    weight = smoothstep(-0.06, 0.02, z) * (1.0 - smoothstep(-0.03, 0.05, y)) * (1.0 - neckness)
    ax = np.abs(x)
    outside = np.clip(ax - FACE_HALF_WIDTH, 0.0, None)
    out = points.copy()
    out[:, 0] = np.sign(x) * (ax - outside * LOWER_FACE_NARROWING * weight)
    return out


def skin_radius(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radius of the skin along unit directions d (N, 3) and how much each ray hits the neck. (N,), (N,)."""
    r_head = _ellipsoid_exit(d)
    r_neck = _neck_exit(d)
    r = _smooth_max(r_head, r_neck, UNION_SOFTNESS)
    neckness = 1.0 / (1.0 + np.exp(-(r_neck - r_head) / UNION_SOFTNESS))
    p = ORIGIN + r[:, None] * d
    front = smoothstep(0.0, 0.05, p[:, 2]) * (1.0 - neckness)
    r = r + front * face_relief(p[:, 0], p[:, 1])
    return r, neckness


def _uv_sphere(centre: np.ndarray, radius: float, n_lat: int = 10, n_lon: int = 16):
    """A UV sphere whose poles lie on the z axis (+z front pole). Returns vertices (N, 3), faces (F, 3) and
    per-vertex (polar angle from +z, azimuth) for texturing."""
    polar = np.linspace(0.0, np.pi, n_lat + 1)[1:-1]
    azim = np.linspace(0.0, 2 * np.pi, n_lon, endpoint=False)
    pp, aa = np.meshgrid(polar, azim, indexing="ij")
    ring = np.stack([np.sin(pp) * np.cos(aa), np.sin(pp) * np.sin(aa), np.cos(pp)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 0, 1.0]], ring, [[0, 0, -1.0]]]) * radius + centre
    angles = np.concatenate([[[0.0, 0.0]], np.stack([pp, aa], -1).reshape(-1, 2), [[np.pi, 0.0]]])
    n_ring = len(polar)
    faces = []
    idx = lambda i, j: 1 + i * n_lon + (j % n_lon)  # noqa: E731
    last = 1 + n_ring * n_lon
    for j in range(n_lon):
        faces.append([0, idx(0, j), idx(0, j + 1)])
        faces.append([last, idx(n_ring - 1, j + 1), idx(n_ring - 1, j)])
        for i in range(n_ring - 1):
            faces.append([idx(i, j), idx(i + 1, j + 1), idx(i, j + 1)])
            faces.append([idx(i, j), idx(i + 1, j), idx(i + 1, j + 1)])
    return verts, np.asarray(faces, dtype=np.int64), angles


def build_template() -> HeadTemplate:
    """Build the template head (deterministic; no random numbers)."""
    theta = ring_angles()
    phi = column_angles()
    tt, pp = np.meshgrid(theta, phi, indexing="ij")  # (R, C)
    d = _directions(tt, pp).reshape(-1, 3)  # (R, C, 3) -> (R*C, 3)
    r, neck = skin_radius(d)
    grid = narrow_lower_face(ORIGIN + r[:, None] * d, neck)
    n_r, n_c = N_RINGS, N_COLS

    poles_d = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    r_poles, neck_poles = skin_radius(poles_d)
    poles = ORIGIN + r_poles[:, None] * poles_d

    verts = [grid, poles]
    neckness = [neck, neck_poles]
    grid_index = np.arange(n_r * n_c).reshape(n_r, n_c)
    top, bottom = n_r * n_c, n_r * n_c + 1
    n_v = n_r * n_c + 2

    # Mouth slit: the ring closest to MOUTH_Y at the front, between the corner columns.
    front_col = int(np.argmin(np.abs(phi)))
    mouth_ring = int(np.argmin(np.abs(grid.reshape(n_r, n_c, 3)[:, front_col, 1] - MOUTH_Y)))
    ring_x = grid.reshape(n_r, n_c, 3)[mouth_ring, :, 0]
    front = np.abs(phi) < np.pi / 2
    inner_cols = np.where(front & (np.abs(ring_x) < MOUTH_HALF_WIDTH - 1e-4))[0]
    corner_cols = (inner_cols.min() - 1, inner_cols.max() + 1)
    lower_copy = {int(c): n_v + k for k, c in enumerate(inner_cols)}
    verts.append(grid.reshape(n_r, n_c, 3)[mouth_ring, inner_cols])
    neckness.append(np.zeros(len(inner_cols)))
    n_v += len(inner_cols)

    def gidx(i: int, j: int, lower: bool = False) -> int:
        j %= n_c
        if lower and i == mouth_ring and j in lower_copy:
            return lower_copy[j]
        return int(grid_index[i, j])

    # UVs: one vt per grid node plus a duplicated seam column at u = 1, and one per pole.
    u_cols = (np.arange(n_c + 1)) / n_c
    v_rows = 1.0 - (np.arange(1, n_r + 1) / (n_r + 1)) * (1.0 - V_HEAD_MIN)
    vt_grid = np.stack(np.meshgrid(u_cols, v_rows, indexing="xy"), -1).reshape(-1, 2)  # (R*(C+1), 2)
    vt_top, vt_bottom = len(vt_grid), len(vt_grid) + 1
    uvs = [vt_grid, np.array([[0.5, 1.0], [0.5, V_HEAD_MIN]])]

    def tidx(i: int, j: int) -> int:
        return i * (n_c + 1) + j  # j in [0, n_c]

    faces, faces_uv = [], []
    for j in range(n_c):
        # Caps: counter-clockwise seen from outside.
        faces.append([top, gidx(0, j), gidx(0, j + 1)])
        faces_uv.append([vt_top, tidx(0, j), tidx(0, j + 1)])
        faces.append([bottom, gidx(n_r - 1, j + 1), gidx(n_r - 1, j)])
        faces_uv.append([vt_bottom, tidx(n_r - 1, j + 1), tidx(n_r - 1, j)])
        for i in range(n_r - 1):
            lower = i == mouth_ring  # quads just below the slit use the lower-lip copies
            a, b = gidx(i, j, lower), gidx(i, j + 1, lower)
            c, e = gidx(i + 1, j), gidx(i + 1, j + 1)
            faces.append([a, e, b])
            faces.append([a, c, e])
            faces_uv.append([tidx(i, j), tidx(i + 1, j + 1), tidx(i, j + 1)])
            faces_uv.append([tidx(i, j), tidx(i + 1, j), tidx(i + 1, j + 1)])

    part = [np.zeros(n_v, dtype=np.int8)]
    lower_lip = np.zeros(n_v, dtype=bool)
    lower_lip[list(lower_copy.values())] = True
    lower_lip = [lower_lip]
    cavity_source = [np.full(n_v, -1)]

    # Mouth cavity: extrude the slit loop inwards in a few shrinking rings, closed by a centre vertex.
    upper_loop = [gidx(mouth_ring, c) for c in range(corner_cols[0], corner_cols[1] + 1)]
    lower_loop = [lower_copy[int(c)] for c in inner_cols[::-1]]
    loop = upper_loop + lower_loop  # corner, upper..., corner, lower (reversed)...
    all_v = np.concatenate(verts)
    loop_p = all_v[loop]
    centre = loop_p.mean(0)
    n_loop = len(loop)
    is_lower = np.array([False] * len(upper_loop) + [True] * len(lower_loop))
    depths = [(0.006, 0.85, 0.003), (0.014, 0.6, 0.008), (0.022, 0.3, 0.010)]
    ring_ids = [list(loop)]
    cav_pts, cav_lower, cav_src = [], [], []
    for depth, shrink, open_y in depths:
        pts = centre + (loop_p - centre) * [shrink, 1.0, 1.0]
        pts = pts + [0.0, 0.0, -depth]
        # Round the cavity: upper half bulges up, lower half down (zero-width at rest is avoided inside).
        pts[:, 1] += np.where(is_lower, -open_y, open_y) * np.sin(np.linspace(0, np.pi, n_loop, endpoint=False))
        pts[:, 1] = np.where(is_lower, np.minimum(pts[:, 1], centre[1]), np.maximum(pts[:, 1], centre[1]))
        ids = list(range(n_v, n_v + n_loop))
        n_v += n_loop
        ring_ids.append(ids)
        cav_pts.append(pts)
        cav_lower.append(is_lower.copy())
        cav_src.append(np.array(loop))
    back = centre + [0.0, 0.0, -0.028]
    cav_pts.append(back[None])
    cav_lower.append(np.array([False]))
    cav_src.append(np.array([loop[0]]))
    back_id = n_v
    n_v += 1
    n_cavity = sum(len(p) for p in cav_pts)
    verts.extend(cav_pts)
    neckness.append(np.zeros(n_cavity))
    part.append(np.full(n_cavity, 3, dtype=np.int8))
    lower_lip.append(np.concatenate(cav_lower))
    cavity_source.append(np.concatenate(cav_src))

    vt_cavity_start = sum(len(u) for u in uvs)
    cav_uv = []
    for k in range(len(depths) + 1):
        s = np.arange(n_loop + 1) / n_loop  # one extra column: the strip's seam gets its own texture coordinates
        cav_uv.append(np.stack([0.70 + 0.28 * s, np.full(n_loop + 1, 0.09 - 0.02 * k)], -1))
    cav_uv.append(np.array([[0.84, 0.005]]))
    uvs.extend(cav_uv)

    def cav_t(ring: int, k: int) -> int:
        return vt_cavity_start + ring * (n_loop + 1) + k  # k in [0, n_loop]

    # Loop order runs left-to-right along the upper lip (x increasing), which is clockwise seen from the
    # front; the cavity's faces point into the mouth (outwards of the closed volume).
    for ring in range(len(depths)):
        ra, rb = ring_ids[ring], ring_ids[ring + 1]
        for k in range(n_loop):
            k1 = (k + 1) % n_loop
            faces.append([ra[k], rb[k], rb[k1]])
            faces.append([ra[k], rb[k1], ra[k1]])
            faces_uv.append([cav_t(ring, k), cav_t(ring + 1, k), cav_t(ring + 1, k + 1)])
            faces_uv.append([cav_t(ring, k), cav_t(ring + 1, k + 1), cav_t(ring, k + 1)])
    last = ring_ids[-1]
    for k in range(n_loop):
        faces.append([last[k], back_id, last[(k + 1) % n_loop]])
        faces_uv.append([cav_t(len(depths), k), vt_cavity_start + (len(depths) + 1) * (n_loop + 1), cav_t(len(depths), k + 1)])

    # Eyeballs, placed so their front pole sits 2 mm in front of the surrounding orbit.
    eye_centres = []
    for e, (ex, ey) in enumerate(EYE_CENTRES_XY):
        d_eye = np.array([ex, ey, 0.09]) - ORIGIN
        d_eye /= np.linalg.norm(d_eye)
        r_eye = _ellipsoid_exit(d_eye[None])[0]
        p = ORIGIN + r_eye * d_eye
        orbit_z = p[2] - 0.007
        centre_e = np.array([ex, ey, orbit_z + 0.002 - EYEBALL_RADIUS])
        eye_centres.append(centre_e)
        ev, ef, ang = _uv_sphere(centre_e, EYEBALL_RADIUS)
        faces.extend((ef + n_v).tolist())
        vt_start = sum(len(u) for u in uvs)
        # Eyeball texture: a disc chart, front pole at the centre of the eye's UV square.
        u0 = 0.02 + 0.33 * e
        rad = ang[:, 0] / np.pi * 0.04
        uv_e = np.stack([u0 + 0.04 + rad * np.cos(ang[:, 1]), 0.05 + rad * np.sin(ang[:, 1])], -1)
        # The back pole is a single vertex but lies on the whole rim of the disc chart: give each of its faces
        # its own rim coordinate so the back cap does not fold over the chart.
        ef_uv = ef + vt_start
        back = len(ev) - 1
        rim = []
        for fi in np.where((ef == back).any(1))[0]:
            others = ef[fi][ef[fi] != back]
            azim = np.angle(np.exp(1j * ang[others, 1]).mean())
            rim.append([u0 + 0.04 + 0.04 * np.cos(azim), 0.05 + 0.04 * np.sin(azim)])
            ef_uv[fi][ef[fi] == back] = vt_start + len(uv_e) + len(rim) - 1
        uvs.append(np.concatenate([uv_e, np.asarray(rim)]))
        faces_uv.extend(ef_uv.tolist())
        verts.append(ev)
        neckness.append(np.zeros(len(ev)))
        part.append(np.full(len(ev), 1 + e, dtype=np.int8))
        lower_lip.append(np.zeros(len(ev), dtype=bool))
        cavity_source.append(np.full(len(ev), -1))
        n_v += len(ev)

    return HeadTemplate(
        vertices=np.concatenate(verts),
        faces=np.asarray(faces, dtype=np.int64),
        verts_uvs=np.concatenate(uvs),
        faces_uvs=np.asarray(faces_uv, dtype=np.int64),
        part=np.concatenate(part),
        lower_lip=np.concatenate(lower_lip),
        neckness=np.concatenate(neckness),
        grid_index=grid_index,
        eye_centres=np.asarray(eye_centres),
        cavity_source=np.concatenate(cavity_source),
        mouth_ring=mouth_ring,
        mouth_corners=np.array([gidx(mouth_ring, c) for c in corner_cols]),
        ring_theta=theta,
        col_phi=phi,
    )
