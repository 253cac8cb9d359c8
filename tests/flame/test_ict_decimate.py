"""decalite.flame.ict.decimate: half-edge collapses keep a subset of the input vertices and a sound mesh."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from decalite.flame.ict.decimate import MIN_ANGLE_DEG, Decimated, _Collapser, decimate

RADIUS = 2.0
UV_MIRROR = 3.0  # the right chart's uv is (UV_MIRROR - x, y): mirrored, so its uv triangles are clockwise


# ----------------------------------------------------------------------------------------------- meshes
def _cap(n: int = 25, hole: float = 0.2, jitter: float = 0.0, seed: int | None = None):
    """An n x n grid on a sphere cap (radius RADIUS) with a square hole in the middle and a uv seam along x = 0.

    Returns positions (V, 3), faces (F, 3) counter-clockwise seen from outside, faces_uvs (F, 3) and uvs (2V, 2):
    faces left of x = 0 use uv (x, y) (indices 0..V-1), faces right of it a mirrored chart (indices V..2V-1).
    The vertices inside the hole are unused. ``seed`` picks random quad diagonals, ``jitter`` moves the
    interior vertices (off the seam) by up to that fraction of the grid step.
    """
    rng = np.random.default_rng(seed)
    xs = np.linspace(-1.0, 1.0, n)
    xy = np.stack(np.meshgrid(xs, xs, indexing="xy"), axis=-1).reshape(-1, 2)
    if jitter:
        movable = np.all(np.abs(xy) < 1 - 1e-9, axis=1) & (np.abs(xy[:, 0]) > 1e-9)
        xy[movable] += rng.uniform(-jitter, jitter, (int(movable.sum()), 2)) * (xs[1] - xs[0])
    index = np.arange(n * n).reshape(n, n)  # [row (y), column (x)]
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            if max(abs(xs[c] + xs[c + 1]), abs(xs[r] + xs[r + 1])) / 2 < hole:
                continue
            a, b, d, e = index[r, c], index[r, c + 1], index[r + 1, c + 1], index[r + 1, c]
            if (rng.random() < 0.5) if seed is not None else (r + c) % 2 == 0:
                faces += [[a, b, d], [a, d, e]]
            else:
                faces += [[a, b, e], [b, d, e]]
    faces = np.asarray(faces, dtype=np.int64)
    positions = np.concatenate([xy, np.sqrt(RADIUS**2 - np.sum(xy**2, axis=1))[:, None]], axis=1)
    n_vertices = len(positions)
    uvs = np.concatenate([xy, np.stack([UV_MIRROR - xy[:, 0], xy[:, 1]], axis=1)])
    left = xy[faces].mean(axis=1)[:, 0] < 0
    faces_uvs = np.where(left[:, None], faces, faces + n_vertices)
    return positions, faces, faces_uvs, uvs


def _shapes(positions: np.ndarray, n_shapes: int, seed: int = 1) -> np.ndarray:
    """(S, V, 3): positions and S - 1 smooth deformations of them (blendshape-like)."""
    rng = np.random.default_rng(seed)
    out = [positions]
    for _ in range(n_shapes - 1):
        wave = np.sin(positions @ rng.normal(size=3) * 2.0)[:, None]
        out.append(positions + 0.1 * wave * rng.normal(size=3))
    return np.stack(out)


# --------------------------------------------------------------------------------------------- measures
def _edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges (E, 2) and the number of faces on each (E,)."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    return np.unique(edges, axis=0, return_counts=True)


def _euler(faces: np.ndarray) -> int:
    """V - E + F of the vertices used by faces."""
    return len(np.unique(faces)) - len(_edges(faces)[0]) + len(faces)


def _boundary_vertices(faces: np.ndarray) -> np.ndarray:
    edges, counts = _edges(faces)
    return np.unique(edges[counts == 1])


def _boundary_loops(faces: np.ndarray) -> int:
    """The number of connected components of the boundary edges."""
    edges, counts = _edges(faces)
    boundary = edges[counts == 1]
    if not len(boundary):
        return 0
    nodes, inverse = np.unique(boundary, return_inverse=True)
    inverse = inverse.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(boundary)), (inverse[:, 0], inverse[:, 1])), shape=(len(nodes),) * 2)
    return connected_components(graph, directed=False)[0]


def _seam_vertices(faces: np.ndarray, faces_uvs: np.ndarray) -> np.ndarray:
    pairs = np.unique(np.stack([faces.ravel(), faces_uvs.ravel()], axis=1), axis=0)
    values, counts = np.unique(pairs[:, 0], return_counts=True)
    return values[counts > 1]


def _normals(corners: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) unnormalised triangle normals."""
    return np.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])


def _min_angles_deg(corners: np.ndarray) -> np.ndarray:
    """(K, 3, 3) -> (K,) smallest corner angle of each triangle."""
    e = np.roll(corners, -1, axis=1) - corners
    e /= np.linalg.norm(e, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(-np.sum(e * np.roll(e, 1, axis=1), axis=-1), -1, 1))).min(axis=1)


def _uv_signed_areas(uvs: np.ndarray, faces_uvs: np.ndarray) -> np.ndarray:
    a, b, c = (uvs[faces_uvs[:, k]] for k in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _assert_sound(result: Decimated, n_vertices: int) -> np.ndarray:
    """Shared structural checks; returns the faces in original vertex indices (F', 3)."""
    kept, faces = result.kept, result.faces
    assert kept.dtype == np.int64 and faces.dtype == np.int64 and result.faces_uvs.dtype == np.int64
    assert np.all(np.diff(kept) > 0) and kept[0] >= 0 and kept[-1] < n_vertices
    assert faces.shape[1] == 3 and result.faces_uvs.shape == faces.shape
    assert np.array_equal(np.unique(faces), np.arange(len(kept)))  # every kept vertex is used
    original = kept[faces]
    assert np.all((original[:, 0] != original[:, 1]) & (original[:, 1] != original[:, 2]))
    assert np.all(original[:, 2] != original[:, 0])
    assert len(np.unique(np.sort(original, axis=1), axis=0)) == len(original)  # no duplicate faces
    assert _edges(original)[1].max() <= 2  # edge-manifold
    return original


# ---------------------------------------------------------------------------------------------- the cap
@pytest.fixture(scope="module")
def cap():
    positions, faces, faces_uvs, uvs = _cap()
    protected = np.array([5 * 25 + 5, 17 * 25 + 8, 8 * 25 + 19, 20 * 25 + 20])
    n_used = len(np.unique(faces))
    target = int(0.55 * n_used)
    result = decimate(positions[None], faces, faces_uvs, uvs, target, protected=protected)
    return positions, faces, faces_uvs, uvs, protected, target, result


def test_cap_reaches_target_and_keeps_protected_boundary_and_seam_vertices(cap) -> None:
    positions, faces, faces_uvs, _, protected, target, result = cap
    _assert_sound(result, len(positions))
    assert len(result.kept) == target
    assert set(result.kept) <= set(np.unique(faces).tolist())  # a subset of the used input vertices
    kept = set(result.kept.tolist())
    assert set(protected.tolist()) <= kept
    assert set(_boundary_vertices(faces).tolist()) <= kept
    seam = _seam_vertices(faces, faces_uvs)
    assert len(seam) > 20 and set(seam.tolist()) <= kept
    # the kept interior (protected aside) was thinned: collapses happened away from the locked vertices
    assert len(kept) < len(np.unique(faces))


def test_cap_keeps_topology(cap) -> None:
    positions, faces, *_, result = cap
    original = _assert_sound(result, len(positions))
    assert _boundary_loops(faces) == 2
    assert _boundary_loops(original) == 2
    assert _euler(original) == _euler(faces) == 0
    # the boundary itself is untouched: the same boundary edges
    edges_in, counts_in = _edges(faces)
    edges_out, counts_out = _edges(original)
    assert np.array_equal(edges_in[counts_in == 1], edges_out[counts_out == 1])


def test_cap_faces_keep_orientation_in_3d_and_uv(cap) -> None:
    positions, faces, faces_uvs, uvs, *_, result = cap
    original = _assert_sound(result, len(positions))
    corners = positions[original]
    radial = corners.mean(axis=1)
    n = _normals(corners)
    cosine = np.sum(n * radial, axis=1) / (np.linalg.norm(n, axis=1) * np.linalg.norm(radial, axis=1))
    assert cosine.min() > 0.9  # no flip; faces stay close to the sphere's normal
    # every corner's uv index is one the input used at that vertex, so uv values are exact
    pairs_in = {tuple(p) for p in np.stack([faces.ravel(), faces_uvs.ravel()], axis=1).tolist()}
    pairs_out = {tuple(p) for p in np.stack([original.ravel(), result.faces_uvs.ravel()], axis=1).tolist()}
    assert pairs_out <= pairs_in
    # each face uses one chart, with its sign: left counter-clockwise, the mirrored right chart clockwise
    chart_right = uvs[result.faces_uvs][:, :, 0] > UV_MIRROR / 2
    assert np.all(chart_right.all(axis=1) | ~chart_right.any(axis=1))
    area = _uv_signed_areas(uvs, result.faces_uvs)
    assert np.all(np.where(chart_right[:, 0], -area, area) > 0)
    assert (chart_right[:, 0]).any() and (~chart_right[:, 0]).any()


def test_cap_new_triangles_are_not_thin(cap) -> None:
    positions, faces, *_, result = cap
    original = _assert_sound(result, len(positions))
    assert _min_angles_deg(positions[faces]).min() > 30.0  # the input is well shaped
    assert _min_angles_deg(positions[original]).min() >= MIN_ANGLE_DEG - 1e-9


def test_unused_vertices_are_dropped_and_a_high_target_changes_nothing() -> None:
    positions, faces, faces_uvs, uvs = _cap()
    used = np.unique(faces)
    assert len(used) < len(positions)  # the hole's vertices
    result = decimate(positions, faces, faces_uvs, uvs, target_vertices=len(used))
    assert np.array_equal(result.kept, used)
    assert np.array_equal(result.kept[result.faces], faces)
    assert np.array_equal(result.faces_uvs, faces_uvs)


def test_deterministic() -> None:
    positions, faces, faces_uvs, uvs = _cap(n=21, jitter=0.3, seed=3)
    shapes = _shapes(positions, 3)
    target = int(0.6 * len(np.unique(faces)))
    first = decimate(shapes, faces, faces_uvs, uvs, target, protected=[30, 200])
    second = decimate(shapes.copy(), faces.copy(), faces_uvs.copy(), uvs.copy(), target, protected=[30, 200])
    assert len(first.kept) == target
    for a, b in zip((first.kept, first.faces, first.faces_uvs), (second.kept, second.faces, second.faces_uvs)):
        assert np.array_equal(a, b)


# -------------------------------------------------------------------------------- the deformed shapes
def _hexagon_fan(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex 0 at the origin, ring (6, 2) around it; positions (7, 3) and the 6 counter-clockwise faces."""
    positions = np.concatenate([np.zeros((1, 3)), np.concatenate([ring, np.zeros((6, 1))], axis=1)])
    faces = np.array([[0, 1 + k, 1 + (k + 1) % 6] for k in range(6)], dtype=np.int64)
    return positions, faces


def _regular_and_pinwheel() -> tuple[np.ndarray, np.ndarray]:
    """Two hexagons (6, 2): a regular one and a pinwheel (every other vertex pulled in and turned by 45 degrees).

    The centre sees every edge of both (their fans are valid), but no vertex of the pinwheel sees all the
    others: collapsing the centre into any ring vertex flips a triangle of the pinwheel.
    """
    angles = np.radians(np.arange(6) * 60.0)
    regular = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    pin_angles = angles + np.radians([0, 45, 0, 45, 0, 45])
    pin_radius = np.array([1.0, 0.3, 1.0, 0.3, 1.0, 0.3])
    return regular, np.stack([pin_radius * np.cos(pin_angles), pin_radius * np.sin(pin_angles)], axis=1)


def test_collapse_that_flips_a_face_in_a_deformed_shape_is_refused(caplog) -> None:
    regular, pinwheel = _regular_and_pinwheel()
    neutral, faces = _hexagon_fan(regular)
    deformed, _ = _hexagon_fan(pinwheel)
    assert np.all(_normals(deformed[faces])[:, 2] > 0)  # the deformed input itself is not flipped
    uvs = neutral[:, :2]

    alone = decimate(neutral[None], faces, faces, uvs, target_vertices=6)
    assert np.array_equal(alone.kept, np.arange(1, 7))  # the centre goes when only the neutral counts
    assert (_normals(deformed[alone.kept[alone.faces]])[:, 2] < 0).any()  # ... and that flips the deformed one

    with caplog.at_level(logging.WARNING, logger="decalite.flame.ict.decimate"):
        both = decimate(np.stack([neutral, deformed]), faces, faces, uvs, target_vertices=6)
    assert np.array_equal(both.kept, np.arange(7))
    assert np.array_equal(both.faces, faces)
    assert "no legal collapse" in caplog.text


def test_twisted_second_shape_keeps_every_face_unflipped() -> None:
    positions, faces, faces_uvs, uvs = _cap(n=31, hole=0.0)
    flat = positions.copy()
    flat[:, 2] = 0.0
    radius = np.linalg.norm(flat[:, :2], axis=1)
    turn = 1.4 * np.cos(np.pi * radius / np.sqrt(2.0))  # a smooth in-plane twist (no face of it is flipped)
    cos, sin = np.cos(turn), np.sin(turn)
    twisted = np.stack([cos * flat[:, 0] - sin * flat[:, 1], sin * flat[:, 0] + cos * flat[:, 1], 0 * radius], 1)
    assert np.all(_normals(twisted[faces])[:, 2] > 0)
    target = len(positions) // 3

    def flipped(result: Decimated) -> int:
        return int(np.sum(_normals(twisted[result.kept[result.faces]])[:, 2] <= 0))

    neutral_only = decimate(flat[None], faces, faces_uvs, uvs, target)
    both = decimate(np.stack([flat, twisted]), faces, faces_uvs, uvs, target)
    assert len(neutral_only.kept) == target and len(both.kept) == target
    assert flipped(neutral_only) > 0
    assert flipped(both) == 0
    assert np.all(_normals(flat[both.kept[both.faces]])[:, 2] > 0)


def test_quadrics_of_a_deformed_shape_keep_its_crease() -> None:
    # flat neutral; the second shape folds it into a roof along x = 0. Only the summed error sees the ridge.
    positions, faces, _, _ = _cap(n=21, hole=0.0)
    flat = positions.copy()
    flat[:, 2] = 0.0
    roof = flat.copy()
    roof[:, 2] = 0.5 * (1.0 - np.abs(flat[:, 0]))
    uvs = flat[:, :2]
    target = int(0.3 * len(positions))

    def straddling(result: Decimated) -> int:  # faces cutting the ridge (corners strictly on both sides)
        x = flat[result.kept[result.faces]][..., 0]
        return int(np.sum((x < -1e-9).any(axis=1) & (x > 1e-9).any(axis=1)))

    both = decimate(np.stack([flat, roof]), faces, faces, uvs, target)
    assert len(both.kept) == target
    assert straddling(both) == 0
    assert straddling(decimate(flat[None], faces, faces, uvs, target)) > 0


def test_collapse_that_flips_a_uv_triangle_is_refused() -> None:
    regular, pinwheel = _regular_and_pinwheel()
    positions, faces = _hexagon_fan(regular)
    regular_uv = np.concatenate([np.zeros((1, 2)), regular])
    pinwheel_uv = np.concatenate([np.zeros((1, 2)), pinwheel])
    assert np.all(np.concatenate([_uv_signed_areas(regular_uv, faces), _uv_signed_areas(pinwheel_uv, faces)]) > 0)
    assert len(decimate(positions, faces, faces, regular_uv, target_vertices=6).kept) == 6
    refused = decimate(positions, faces, faces, pinwheel_uv, target_vertices=6)
    assert np.array_equal(refused.kept, np.arange(7))


# ------------------------------------------------------------------------------------------ topology
def _tube(n_rings: int, n_around: int, length: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """An open tube (rings of n_around vertices, ring k at height k * length): positions (V, 3), faces (F, 3)."""
    ring, around = np.meshgrid(np.arange(n_rings), np.arange(n_around), indexing="ij")
    angle = 2 * np.pi * around / n_around
    positions = np.stack([np.cos(angle), np.sin(angle), length * ring], axis=-1).reshape(-1, 3).astype(float)
    faces = []
    for r in range(n_rings - 1):
        for c in range(n_around):
            a, b = r * n_around + c, r * n_around + (c + 1) % n_around  # quad a, b, b + n, a + n
            if (r + c) % 2:
                faces += [[a, b, b + n_around], [a, b + n_around, a + n_around]]
            else:
                faces += [[a, b, a + n_around], [b, b + n_around, a + n_around]]
    return positions, np.asarray(faces, dtype=np.int64)


def test_link_condition_refuses_pinching_a_three_sided_tube() -> None:
    # the middle ring of a 3-sided tube: its vertices are pairwise joined, with no face between them
    positions, faces = _tube(3, 3)
    collapser = _Collapser(positions[None], faces, faces, np.zeros((len(positions), 2)), ())
    u = 3
    assert collapser._topology(u, 4) is None and collapser._topology(u, 5) is None
    other_rings = [v for v in sorted(collapser._neighbours(u)) if v > 5 or v < 3]
    assert any(collapser._topology(u, v) is not None for v in other_rings)  # u itself may go, along the tube


def test_a_tetrahedron_is_not_collapsed_into_a_double_triangle() -> None:
    angles = np.radians([90.0, 210.0, 330.0])
    positions = np.concatenate([np.stack([np.cos(angles), np.sin(angles), 0 * angles], axis=1), [[0, 0, 0.05]]])
    faces = np.array([[0, 2, 1], [3, 0, 1], [3, 1, 2], [3, 2, 0]], dtype=np.int64)
    collapser = _Collapser(positions[None], faces, faces, np.zeros((4, 2)), ())
    assert all(collapser._topology(3, v) is None for v in range(3))  # each would repeat face (v, a, b)
    result = decimate(positions, faces, faces, np.zeros((4, 2)), target_vertices=3)
    assert np.array_equal(result.kept, np.arange(4))


def test_collapses_along_a_cylinder_do_not_make_slivers() -> None:
    # along the axis a cylinder is straight, so the quadrics favour long thin triangles: the angle bound stops them
    positions, faces = _tube(20, 32, length=3.0 / 19)
    assert _min_angles_deg(positions[faces]).min() > 30.0
    result = decimate(positions, faces, faces, np.zeros((len(positions), 2)), len(positions) // 2)
    original = _assert_sound(result, len(positions))
    assert len(result.kept) == len(positions) // 2
    assert _min_angles_deg(positions[original]).min() >= MIN_ANGLE_DEG - 1e-9
    assert _euler(original) == _euler(faces) == 0


# ------------------------------------------------------------------------------------ a closed sphere
def test_closed_sphere_reduces_and_stays_closed() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    positions = np.asarray(sphere.vertices, dtype=np.float64)
    faces = np.asarray(sphere.faces, dtype=np.int64)
    uvs = np.zeros((len(positions), 2))  # no texture layout: degenerate uv triangles carry no constraint
    target = len(positions) // 2
    result = decimate(_shapes(positions, 2), faces, faces, uvs, target)
    original = _assert_sound(result, len(positions))
    assert len(result.kept) == target
    assert _edges(original)[1].min() == 2  # closed: every edge has two faces
    assert _euler(original) == _euler(faces) == 2
    corners = positions[original]
    n = _normals(corners)
    assert np.all(np.sum(n * corners.mean(axis=1), axis=1) > 0)


# --------------------------------------------------------------------------------------------- inputs
def test_rejects_a_face_with_a_repeated_vertex() -> None:
    positions, faces, faces_uvs, uvs = _cap(n=5, hole=0.0)
    faces = faces.copy()
    faces[0, 1] = faces[0, 0]
    with pytest.raises(ValueError, match="repeated vertex"):
        decimate(positions, faces, faces_uvs, uvs, 10)


@pytest.mark.slow
def test_14k_vertex_mesh_with_8_shapes() -> None:
    """A face-model-sized mesh (~14k vertices, ~28k triangles, S = 8): 4,000 vertices go; the time is printed."""
    positions, faces, faces_uvs, uvs = _cap(n=120, hole=0.15, jitter=0.3, seed=0)
    shapes = _shapes(positions, 8)
    n_used = len(np.unique(faces))
    start = time.perf_counter()
    result = decimate(shapes, faces, faces_uvs, uvs, n_used - 4000)
    print(f"\ndecimate: {n_used} -> {len(result.kept)} vertices, S = 8, in {time.perf_counter() - start:.1f} s")
    original = _assert_sound(result, len(positions))
    assert len(result.kept) == n_used - 4000
    assert _euler(original) == _euler(faces) and _boundary_loops(original) == _boundary_loops(faces)
    for shape in shapes:
        before = np.mean(_normals(shape[faces]), axis=0)  # a cap: each face should agree with the mean normal
        assert np.all(_normals(shape[original]) @ before > 0)
