"""decalite's PyTorch rasterizer against a plain per-pixel reference, and its fill rule, depth order and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decalite.render.raster_torch import SUBPIXEL, rasterize


def _reference(verts_clip: np.ndarray, faces: np.ndarray, h: int, w: int):
    """Brute force: every pixel centre against every triangle. Returns (face id + 1, depth, tie) per pixel."""
    ndc = verts_clip[:, :3] / verts_clip[:, 3:4]
    ids = np.zeros((h, w), dtype=int)
    depth = np.full((h, w), np.inf)
    tie = np.zeros((h, w), dtype=bool)
    for r in range(h):
        for c in range(w):
            px, py = (c + 0.5) / w * 2 - 1, (r + 0.5) / h * 2 - 1
            for f, (a, b, d) in enumerate(faces):
                (ax, ay, az), (bx, by, bz), (dx, dy, dz) = ndc[a], ndc[b], ndc[d]
                area = (bx - ax) * (dy - ay) - (by - ay) * (dx - ax)
                if area == 0:
                    continue
                e = np.array([(dx - bx) * (py - by) - (dy - by) * (px - bx),
                              (ax - dx) * (py - dy) - (ay - dy) * (px - dx),
                              (bx - ax) * (py - ay) - (by - ay) * (px - ax)]) / area
                if (e < -1e-9).any():
                    continue
                if (np.abs(e) < 1e-9).any():
                    tie[r, c] = True
                z = e @ [az, bz, dz]
                if -1 <= z <= 1 and z < depth[r, c] - 1e-12:
                    depth[r, c], ids[r, c] = z, f + 1
                elif abs(z - depth[r, c]) <= 1e-12:
                    tie[r, c] = True
    return ids, depth, tie


def _grid_snapped(v: np.ndarray, h: int, w: int) -> np.ndarray:
    """Snap NDC xy to the rasterizer's subpixel grid so both implementations see identical triangles."""
    px = np.round(((v[:, 0] + 1) * 0.5 * w - 0.5) * SUBPIXEL) / SUBPIXEL
    py = np.round(((v[:, 1] + 1) * 0.5 * h - 0.5) * SUBPIXEL) / SUBPIXEL
    out = v.copy()
    out[:, 0] = (px + 0.5) / w * 2 - 1
    out[:, 1] = (py + 0.5) / h * 2 - 1
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_reference_on_random_meshes(seed):
    rng = np.random.default_rng(seed)
    h, w = 24, 20
    verts = np.concatenate([rng.uniform(-1.2, 1.2, (30, 2)), rng.uniform(-0.9, 0.9, (30, 1)), np.ones((30, 1))], 1)
    verts = _grid_snapped(verts, h, w)
    faces = rng.integers(0, 30, (25, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    rast = rasterize(torch.from_numpy(verts)[None], torch.from_numpy(faces).int(), (h, w))[0].numpy()
    ids, depth, tie = _reference(verts, faces, h, w)
    ok = ~tie
    assert ok.sum() > 0.8 * h * w
    np.testing.assert_array_equal(rast[..., 3][ok].astype(int), ids[ok])
    hit = ok & (ids > 0)
    np.testing.assert_allclose(rast[..., 2][hit], depth[hit], atol=1e-9)
    assert (rast[..., 3][ok] > 0).sum() == (ids[ok] > 0).sum()


def test_tessellated_full_screen_quad_covers_every_pixel_exactly_once():
    n = 7  # a 7 x 7 grid of quads whose vertices fall on pixel centres and edges
    g = np.linspace(-1, 1, n + 1)
    xx, yy = np.meshgrid(g, g)
    verts = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size), np.ones(xx.size)], 1)
    faces = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j, (i + 1) * (n + 1) + j + 1
            faces += [[a, b, d], [a, d, c]] if (i + j) % 2 else [[a, b, c], [b, d, c]]
    faces = torch.tensor(faces)
    for res in [(28, 28), (21, 35), (64, 64)]:
        rast = rasterize(torch.from_numpy(verts)[None], faces, res)
        assert (rast[..., 3] > 0).all()
        # Exactly once: each pixel's winner is the only candidate (depth ties would pick the lowest id; check the
        # coverage count directly by rasterizing each face alone).
        count = torch.zeros(res)
        for f in range(len(faces)):
            count += (rasterize(torch.from_numpy(verts)[None], faces[f : f + 1], res)[0, ..., 3] > 0).float()
        assert (count == 1).all()


def test_nearer_triangle_wins_in_both_orders():
    verts = torch.tensor([[-0.9, -0.9, 0.5, 1], [0.9, -0.9, 0.5, 1], [0.0, 0.9, 0.5, 1],
                          [-0.9, 0.9, -0.2, 1], [0.9, 0.9, -0.2, 1], [0.0, -0.9, -0.2, 1]], dtype=torch.float64)
    for faces in ([[0, 1, 2], [3, 5, 4]], [[3, 5, 4], [0, 1, 2]]):
        rast = rasterize(verts[None], torch.tensor(faces), (32, 32))
        near = faces.index([3, 5, 4]) + 1
        centre = rast[0, 16, 16]
        assert int(centre[3]) == near and centre[2] == pytest.approx(-0.2)


def test_backface_culling():
    verts = torch.tensor([[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0, 0.5, 0, 1]], dtype=torch.float64)
    ccw, cw = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2, 1]])
    assert (rasterize(verts[None], cw, (16, 16), cull_backfaces=True)[..., 3] == 0).all()
    assert (rasterize(verts[None], ccw, (16, 16), cull_backfaces=True)[..., 3] > 0).any()
    assert (rasterize(verts[None], cw, (16, 16))[..., 3] > 0).any()


def test_barycentric_gradient_matches_finite_differences():
    verts = torch.tensor([[[-0.7, -0.6, 0.1, 1], [0.8, -0.5, 0.2, 1], [0.1, 0.9, 0.3, 1]]], dtype=torch.float64,
                         requires_grad=True)
    faces = torch.tensor([[0, 1, 2]])
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)

    def pixel_value(v):
        rast = rasterize(v, faces, (16, 16))[0, 8, 8]
        bary = torch.stack([rast[0], rast[1], 1 - rast[0] - rast[1]])
        return (bary @ colours).sum() * 0 + bary @ colours[:, 0] + 2 * (bary @ colours[:, 1])

    value = pixel_value(verts)
    value.backward()
    eps = 1e-6
    fd = torch.zeros_like(verts)
    for i in range(3):
        for k in range(2):
            d = torch.zeros_like(verts)
            d[0, i, k] = eps
            fd[0, i, k] = (pixel_value(verts.detach() + d) - pixel_value(verts.detach() - d)) / (2 * eps)
    torch.testing.assert_close(verts.grad[..., :2], fd[..., :2], atol=1e-6, rtol=1e-5)
    assert verts.grad[..., :2].abs().sum() > 0


def test_batches_are_independent_and_chunking_does_not_change_the_result():
    rng = np.random.default_rng(5)
    verts = torch.from_numpy(np.concatenate([rng.uniform(-1, 1, (2, 40, 3)), np.ones((2, 40, 1))], -1))
    faces = torch.from_numpy(rng.integers(0, 40, (60, 3)))
    full = rasterize(verts, faces, (32, 32))
    small = rasterize(verts, faces, (32, 32), max_pairs=50)
    torch.testing.assert_close(full, small)
    torch.testing.assert_close(full[1:], rasterize(verts[1:], faces, (32, 32)))


def test_closed_mesh_shows_no_holes():
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.8)
    verts = torch.from_numpy(np.concatenate([sphere.vertices, np.ones((len(sphere.vertices), 1))], 1))
    faces = torch.from_numpy(sphere.faces)
    size = 96
    rast = rasterize(verts[None], faces, (size, size))[0]
    c = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    inside = (x**2 + y**2).sqrt() < 0.8 * np.cos(np.pi / 40) - 2.0 / size  # inside the inscribed polygon
    assert (rast[..., 3][inside] > 0).all()
    # And with back faces culled, the front hemisphere alone still covers it.
    culled = rasterize(verts[None], faces, (size, size), cull_backfaces=True)[0]
    assert (culled[..., 3][inside] > 0).all()
    front = torch.from_numpy(sphere.vertices[sphere.faces].mean(1)[:, 2] > 0)
    assert front[(culled[..., 3][inside] - 1).long()].all()
