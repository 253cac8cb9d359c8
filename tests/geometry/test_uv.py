"""UV-space detail geometry: normals of position maps and displacement-mapped detail normals."""

from __future__ import annotations

import torch

from decalite.geometry.uv import detail_normals, displace, position_map_normals

U = 64


def _plane():
    """A flat square position map: x = u - 0.5, y = v - 0.5, z = 0, row 0 at v = 1; normals +z."""
    c = (torch.arange(U, dtype=torch.float64) + 0.5) / U
    v, u = torch.meshgrid(1.0 - c, c, indexing="ij")
    pos = torch.stack([u - 0.5, v - 0.5, torch.zeros_like(u)])[None]  # (1, 3, U, U)
    normals = torch.zeros_like(pos)
    normals[:, 2] = 1.0
    return pos, normals


def _sphere_cap(radius: float = 1.0):
    c = (torch.arange(U, dtype=torch.float64) + 0.5) / U - 0.5
    y, x = torch.meshgrid(-c, c, indexing="ij")
    z = torch.sqrt(radius**2 - x**2 - y**2)
    pos = torch.stack([x, y, z])[None]
    return pos, pos / radius


def test_plane_normals_point_out_of_the_plane():
    pos, normals = _plane()
    n = position_map_normals(pos, normals)
    torch.testing.assert_close(n, normals)


def test_zero_displacement_gives_back_the_coarse_normals():
    pos, normals = _sphere_cap()
    mask = torch.ones(1, 1, U, U, dtype=torch.float64)
    n = detail_normals(pos, normals, torch.zeros(1, 1, U, U, dtype=torch.float64), mask)
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # borders use one-sided differences
    assert (n[inner] - normals[inner]).norm(dim=1).max() < 1e-3


def test_positive_bump_tilts_normals_outward_around_it():
    pos, normals = _plane()
    c = (torch.arange(U, dtype=torch.float64) + 0.5) / U - 0.5
    y, x = torch.meshgrid(-c, c, indexing="ij")
    bump = (0.02 * torch.exp(-(x**2 + y**2) / 0.01))[None, None]
    mask = torch.ones(1, 1, U, U, dtype=torch.float64)
    n = detail_normals(pos, normals, bump, mask)
    mid, off = U // 2, U // 2 + 6
    assert n[0, 0, mid, off] > 0.05  # right of the bump (+x): tilted towards +x
    assert n[0, 0, mid, U - 1 - off] < -0.05  # left: towards -x
    assert n[0, 1, U - 1 - off, mid] > 0.05  # above (+y, smaller row): towards +y
    assert (n[0, 2] > 0).all()
    torch.testing.assert_close(n.norm(dim=1), torch.ones(1, U, U, dtype=torch.float64))


def test_mask_keeps_coarse_normals_outside_and_displaces_inside():
    pos, normals = _plane()
    mask = torch.zeros(1, 1, U, U, dtype=torch.float64)
    mask[..., : U // 2] = 1.0
    noise = torch.randn(1, 1, U, U, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.01
    n = detail_normals(pos, normals, noise, mask)
    torch.testing.assert_close(n[..., U // 2 + 1 :], normals[..., U // 2 + 1 :])
    assert (n[..., : U // 2 - 1] - normals[..., : U // 2 - 1]).abs().max() > 0.1
    moved = displace(pos, normals, noise, mask)
    torch.testing.assert_close(moved[:, 2:3], noise * mask)
