"""Tests of decalite.geometry.mesh: face / vertex normals and per-face gathering."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from decalite.geometry.mesh import face_normals, face_vertices, vertex_normals


def _as_torch(mesh: trimesh.Trimesh) -> tuple[torch.Tensor, torch.Tensor]:
    verts = torch.tensor(np.asarray(mesh.vertices, dtype=np.float64))[None]  # (V, 3) -> (1, V, 3)
    faces = torch.tensor(np.asarray(mesh.faces, dtype=np.int64))
    return verts, faces


def test_cube_normals_point_outward() -> None:
    verts, faces = _as_torch(trimesh.creation.box(extents=(1.0, 1.0, 1.0)))
    fn = face_normals(verts, faces)
    centres = face_vertices(verts, faces).mean(dim=2)  # (1, F, 3, 3) -> (1, F, 3)
    assert fn.shape == (1, faces.shape[0], 3)
    torch.testing.assert_close(fn.norm(dim=-1), torch.ones(1, faces.shape[0], dtype=fn.dtype))
    assert ((fn * centres).sum(-1) > 0).all()
    # Axis-aligned: each face normal is a signed unit axis.
    assert torch.allclose(fn.abs().amax(-1), torch.ones_like(fn[..., 0]))
    vn = vertex_normals(verts, faces)
    assert vn.shape == verts.shape
    assert ((vn * verts).sum(-1) > 0).all()


def test_icosphere_matches_trimesh_and_radial() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=1.5)
    verts, faces = _as_torch(sphere)
    vn = vertex_normals(verts, faces)[0]
    ref = torch.tensor(np.asarray(sphere.vertex_normals, dtype=np.float64))
    assert ((vn * ref).sum(-1) > 0.9995).all()
    radial = verts[0] / verts[0].norm(dim=-1, keepdim=True)
    assert ((vn * radial).sum(-1) > 0.999).all()
    fn = face_normals(verts, faces)[0]
    ref_fn = torch.tensor(np.asarray(sphere.face_normals, dtype=np.float64))
    torch.testing.assert_close(fn, ref_fn, atol=1e-6, rtol=0)


def test_batched_and_float32() -> None:
    verts, faces = _as_torch(trimesh.creation.icosphere(subdivisions=1))
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    batch = torch.cat([verts, verts @ rot.T], dim=0).float()  # second mesh rotated 90 degrees about z
    vn = vertex_normals(batch, faces)
    fn = face_normals(batch, faces)
    assert vn.dtype == torch.float32 and vn.shape == (2, verts.shape[1], 3)
    torch.testing.assert_close(vn[1], vn[0] @ rot.float().T, atol=1e-5, rtol=0)
    torch.testing.assert_close(fn[1], fn[0] @ rot.float().T, atol=1e-5, rtol=0)


def test_degenerate_faces_no_nan() -> None:
    verts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 1, 3], [3, 3, 3]])  # collinear, proper, collapsed; vertex 4 unused
    verts.requires_grad_(True)
    fn = face_normals(verts, faces)
    vn = vertex_normals(verts, faces)
    assert torch.isfinite(fn).all() and torch.isfinite(vn).all()
    torch.testing.assert_close(fn[0, 0], torch.zeros(3))
    torch.testing.assert_close(fn[0, 1], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(vn[0, 4], torch.zeros(3))
    (fn.sum() + vn.sum()).backward()
    assert torch.isfinite(verts.grad).all()


def test_face_vertices_gather() -> None:
    attr = torch.arange(12.0).reshape(2, 3, 2)  # (B=2, V=3, C=2)
    faces = torch.tensor([[2, 0, 1], [1, 1, 0]])
    out = face_vertices(attr, faces)
    assert out.shape == (2, 2, 3, 2)
    torch.testing.assert_close(out[1, 0, 0], attr[1, 2])
    torch.testing.assert_close(out[0, 1], attr[0, [1, 1, 0]])
