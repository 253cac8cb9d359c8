"""Tests of decalite.geometry.distance against an all-pairs numpy brute force written independently.

The reference does not use Voronoi regions: it projects onto the triangle's plane (solving the 2x2 Gram system
for barycentrics) and keeps that point when it lies inside, and compares it with the closest points on the three
edges as segments; the nearest candidate wins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from decalite.geometry.distance import closest_points_on_triangles, point_to_mesh

TOL = 1e-10


def _segments(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Closest points on segments [a, b] to p, all (..., 3)."""
    ab = b - a
    ll = (ab * ab).sum(-1)
    t = np.where(ll > 0, ((p - a) * ab).sum(-1) / np.where(ll > 0, ll, 1.0), 0.0)
    return a + np.clip(t, 0.0, 1.0)[..., None] * ab


def _reference_closest(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Brute-force closest point on each triangle, (N, 3) and (N, 3, 3) -> (N, 3)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    e0, e1 = b - a, c - a
    g00, g01, g11 = (e0 * e0).sum(-1), (e0 * e1).sum(-1), (e1 * e1).sum(-1)
    r0, r1 = ((p - a) * e0).sum(-1), ((p - a) * e1).sum(-1)
    det = g00 * g11 - g01 * g01
    ok = det > 1e-12 * np.maximum(g00 * g11, 1e-300)
    safe = np.where(ok, det, 1.0)
    u = (g11 * r0 - g01 * r1) / safe
    v = (g00 * r1 - g01 * r0) / safe
    inside = ok & (u >= 0) & (v >= 0) & (u + v <= 1)
    proj = a + u[:, None] * e0 + v[:, None] * e1
    cands = np.stack([_segments(p, a, b), _segments(p, b, c), _segments(p, c, a), proj], 1)  # (N, 4, 3)
    d2 = ((cands - p[:, None]) ** 2).sum(-1)
    d2[:, 3] = np.where(inside, d2[:, 3], np.inf)
    return cands[np.arange(len(p)), d2.argmin(1)]


def _brute_force(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs: (P,) distances and (P, F) distance table."""
    tri = vertices[faces]  # (F, 3, 3)
    n_p, n_f = len(points), len(faces)
    p = np.repeat(points, n_f, 0)  # (P*F, 3)
    t = np.tile(tri, (n_p, 1, 1))  # (P*F, 3, 3)
    table = np.linalg.norm(_reference_closest(p, t) - p, axis=1).reshape(n_p, n_f)
    return table.min(1), table


def _points_around(vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Points on the surface, slightly off it, and far from it."""
    tri = vertices[faces]
    scale = float(np.ptp(vertices, axis=0).max())
    f = rng.integers(0, len(faces), n)
    w = rng.dirichlet(np.ones(3), n)
    on = np.einsum("nk,nkc->nc", w, tri[f])
    near = on + rng.normal(scale=0.02 * scale, size=on.shape)
    far = vertices.mean(0) + rng.normal(scale=2.0 * scale, size=(n, 3))
    return np.concatenate([on, near, far, vertices[:5], vertices.mean(0, keepdims=True)])


def _check_against_brute_force(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, k: int) -> None:
    dist, closest, face = point_to_mesh(points, vertices, faces, k=k)
    ref, table = _brute_force(points, vertices, faces)
    assert dist.dtype == np.float64 and closest.shape == points.shape and face.dtype == np.int64
    np.testing.assert_allclose(dist, ref, rtol=0, atol=TOL)
    # The returned closest point is at the returned distance and lies on the returned face.
    np.testing.assert_allclose(np.linalg.norm(closest - points, axis=1), dist, rtol=0, atol=TOL)
    np.testing.assert_allclose(table[np.arange(len(points)), face], ref, rtol=0, atol=TOL)
    on_face = _reference_closest(closest, vertices[faces][face])
    np.testing.assert_allclose(on_face, closest, rtol=0, atol=TOL)


@pytest.mark.parametrize("k", [1, 4, 32])
def test_icosphere_matches_brute_force(k: int) -> None:
    rng = np.random.default_rng(0)
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    vertices = np.asarray(mesh.vertices) * np.array([1.0, 0.7, 1.3])  # an ellipsoid: no symmetric ties
    faces = np.asarray(mesh.faces)
    _check_against_brute_force(_points_around(vertices, faces, rng, 150), vertices, faces, k)


def test_triangle_soup_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    n_f = 300
    centres = rng.uniform(-1, 1, size=(n_f, 1, 3))
    sizes = rng.uniform(0.01, 0.6, size=(n_f, 1, 1))  # small and large triangles mixed
    vertices = (centres + sizes * rng.normal(size=(n_f, 3, 3))).reshape(-1, 3)
    faces = np.arange(3 * n_f).reshape(n_f, 3)
    _check_against_brute_force(_points_around(vertices, faces, rng, 150), vertices, faces, k=8)


def test_degenerate_triangles_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(3, 3))
    tris = np.stack([
        [a, a, a],  # a point
        [a, a, b],  # repeated vertex (first pair)
        [a, b, b],  # repeated vertex (second pair)
        [b, a, b],  # repeated vertex (ends)
        [a, (a + b) / 2, b],  # collinear, middle vertex in the middle
        [(a + b) / 2, a, b],  # collinear, first vertex in the middle
        [a, b, a + 2.5 * (b - a)],  # collinear, one vertex beyond
        [a, b, c],  # a proper one
        [a, b, a + (b - a) * 0.5 + 1e-9 * c],  # a sliver
    ])
    vertices = tris.reshape(-1, 3)
    faces = np.arange(len(vertices)).reshape(-1, 3)
    points = np.concatenate([rng.normal(scale=2.0, size=(200, 3)), vertices, (vertices[:-1] + vertices[1:]) / 2])
    # Per triangle (no mesh search): compare every point with every triangle.
    p = np.repeat(points, len(tris), 0)
    t = np.tile(tris, (len(points), 1, 1))
    got = closest_points_on_triangles(torch.from_numpy(p), torch.from_numpy(t)).numpy()
    assert np.isfinite(got).all()
    ref = _reference_closest(p, t)
    np.testing.assert_allclose(np.linalg.norm(got - p, axis=1), np.linalg.norm(ref - p, axis=1), rtol=0, atol=TOL)
    # And through the mesh search.
    _check_against_brute_force(points, vertices, faces, k=2)


def test_closest_point_regions_by_hand() -> None:
    tri = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    points = np.array([
        [0.5, 0.5, 3.0],  # face: straight down
        [-1.0, -1.0, 0.0],  # vertex a
        [3.0, -0.5, 1.0],  # vertex b
        [-0.5, 4.0, 0.0],  # vertex c
        [1.0, -2.0, 0.0],  # edge ab
        [-2.0, 1.0, 5.0],  # edge ac
        [2.0, 2.0, 0.0],  # edge bc
    ])
    expected = np.array([
        [0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0],
        [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0],
    ])
    got = closest_points_on_triangles(points, np.repeat(tri[None], len(points), 0))
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, expected, atol=1e-15)


def test_float32_and_torch_inputs() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=1)
    points = torch.tensor([[0.0, 0.0, 2.0], [0.1, 0.2, 0.3]], dtype=torch.float32)
    dist, _, _ = point_to_mesh(points, torch.tensor(mesh.vertices, dtype=torch.float32),
                               torch.tensor(mesh.faces), k=4)
    ref, _ = _brute_force(points.double().numpy(), np.asarray(mesh.vertices, dtype=np.float32).astype(np.float64),
                          np.asarray(mesh.faces))
    assert dist.dtype == np.float64
    np.testing.assert_allclose(dist, ref, atol=TOL)
    q = closest_points_on_triangles(points, torch.tensor(mesh.vertices[mesh.faces[:2]], dtype=torch.float32))
    assert q.dtype == torch.float32 and q.shape == (2, 3)


def test_chunking_gives_the_same_result() -> None:
    rng = np.random.default_rng(3)
    mesh = trimesh.creation.icosphere(subdivisions=2)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    points = _points_around(vertices, faces, rng, 50)
    whole = point_to_mesh(points, vertices, faces, k=16)
    chunked = point_to_mesh(points, vertices, faces, k=16, chunk_pairs=97)
    for x, y in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(x, y)


def test_empty_points_and_no_faces() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=0)
    dist, closest, face = point_to_mesh(np.empty((0, 3)), mesh.vertices, mesh.faces)
    assert dist.shape == (0,) and closest.shape == (0, 3) and face.shape == (0,)
    with pytest.raises(ValueError, match="no faces"):
        point_to_mesh(np.zeros((1, 3)), mesh.vertices, np.empty((0, 3), dtype=np.int64))


def test_gradients_flow_through_closest_points() -> None:
    rng = np.random.default_rng(4)
    p = torch.tensor(rng.normal(size=(6, 3)), requires_grad=True)
    tri = torch.tensor(rng.normal(size=(6, 3, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, t: closest_points_on_triangles(x, t), (p, tri))
