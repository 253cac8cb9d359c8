"""UV space: world2uv position maps and the dense detailed mesh."""

from __future__ import annotations

import numpy as np
import torch

from decalite.render.uv_space import UVSpace, dense_detail_mesh
from decalite.types import UVLayout

N = 9  # grid vertices per side


def _plane_layout() -> UVLayout:
    """A flat square mesh whose UV coordinates equal its (x + 0.5, y + 0.5), counter-clockwise from +z."""
    g = np.linspace(0.0, 1.0, N)
    u, v = np.meshgrid(g, g)
    uvs = np.stack([u.ravel(), v.ravel()], 1)
    verts = np.concatenate([uvs - 0.5, np.zeros((N * N, 1))], 1)
    faces = []
    for i in range(N - 1):
        for j in range(N - 1):
            a, b, c, d = i * N + j, i * N + j + 1, (i + 1) * N + j, (i + 1) * N + j + 1
            faces += [[a, b, d], [a, d, c]]
    faces = np.array(faces)
    return UVLayout(vertices=verts, faces=faces, verts_uvs=uvs, faces_uvs=faces)


def test_plane_position_map_matches_its_analytic_positions():
    layout = _plane_layout()
    space = UVSpace(layout, uv_size=32)
    pos = space.world2uv(torch.from_numpy(layout.vertices)[None].float())  # (1, 3, U, U)
    c = (torch.arange(32) + 0.5) / 32
    v, u = torch.meshgrid(1.0 - c, c, indexing="ij")  # row 0 is v = 1
    torch.testing.assert_close(pos[0, 0], u - 0.5, atol=1e-5, rtol=0)
    torch.testing.assert_close(pos[0, 1], v - 0.5, atol=1e-5, rtol=0)
    assert space.valid.min() == 1.0


def test_dense_detail_mesh_has_a_vertex_per_valid_texel_and_follows_the_displacement():
    layout = _plane_layout()
    space = UVSpace(layout, uv_size=16)
    pos = space.world2uv(torch.from_numpy(layout.vertices)[None].float())[0]
    normals = torch.zeros_like(pos)
    normals[2] = 1.0
    valid = torch.ones(16, 16, dtype=torch.bool)
    valid[:4] = False
    verts, faces, texels = dense_detail_mesh(pos, valid, normals)
    assert verts.shape == (12 * 16, 3) and faces.shape == (2 * 11 * 15, 3)
    tri = verts[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (fn[:, 2] > 0).all()  # outward (+z)
    bumped, _, _ = dense_detail_mesh(pos + 0.01 * normals, valid, normals)
    np.testing.assert_allclose(bumped[:, 2] - verts[:, 2], 0.01, atol=1e-6)
    assert (texels[:, 0] >= 4).all()
