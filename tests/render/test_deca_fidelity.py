"""Pins of DECA's conventions in the render path: fixed displacement, detached coarse maps in the detail path,
culling only on closed meshes, DECA's albedo sampling, and the official checkpoint needing the fixed map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decalite.cli.schema import compose_typed
from decalite.config import ReconstructConfig
from decalite.errors import AssetError
from decalite.flame.albedo import AlbedoModel
from decalite.flame.assets import load_fixed_displacement
from decalite.flame.generated import generate_head
from decalite.flame.layer import FlameLayer
from decalite.flame.model_data import AlbedoData
from decalite.geometry.mesh import is_closed
from decalite.model.factory import build_deca
from decalite.render.renderer import Renderer
from decalite.types import UVLayout

UV = 64


@pytest.fixture(scope="module")
def head():
    return generate_head(0)


@pytest.fixture(scope="module")
def posed(head):
    layer = FlameLayer(head.model, head.embedding, n_shape=10, n_exp=10)
    return layer(batch_size=1).vertices


def test_fixed_displacement_is_added_unmasked_and_the_prediction_masked(head, posed):
    """DECA: positions + (pred * face_eye_mask + fixed) * normals."""
    fixed = np.full((UV, UV), 1e-3, dtype=np.float32)
    rend = Renderer(head.uv, head.face_eye_mask, image_size=64, uv_size=UV, backend="torch", fixed_displacement=fixed)
    plain = Renderer(head.uv, head.face_eye_mask, image_size=64, uv_size=UV, backend="torch")
    pos, normals = rend.coarse_uv_maps(posed)
    zero = torch.zeros(1, 1, UV, UV)
    with_fixed, _ = rend.detailed_uv_positions(posed, zero)
    torch.testing.assert_close(with_fixed, pos + 1e-3 * normals)  # everywhere, also outside the mask
    pred = torch.full((1, 1, UV, UV), 2e-3)
    detailed, _ = plain.detailed_uv_positions(posed, pred)
    outside = plain.face_eye_mask[0, 0] == 0
    inside = plain.face_eye_mask[0, 0] == 1
    assert outside.any() and inside.any()
    torch.testing.assert_close(detailed[0][:, outside], pos[0][:, outside])
    torch.testing.assert_close(detailed[0][:, inside], (pos + 2e-3 * normals)[0][:, inside])
    # The rendered detail normals change with the fixed map too.
    cam = torch.tensor([[6.5, 0.0, 0.0]])
    a = rend(posed, cam, displacement=zero).uv_detail_normals
    b = plain(posed, cam, displacement=zero).uv_detail_normals
    assert not torch.allclose(a, b)


def test_detail_path_sees_detached_coarse_maps(head, posed):
    rend = Renderer(head.uv, head.face_eye_mask, image_size=64, uv_size=UV, backend="torch")
    cam = torch.tensor([[6.5, 0.0, 0.0]])
    disp = torch.zeros(1, 1, UV, UV, requires_grad=True)
    for detach, expect_grad in ((None, False), (False, True)):
        verts = posed.detach().clone().requires_grad_(True)
        out = rend(verts, cam, displacement=disp, detach_coarse=detach)
        out.uv_detail_normals.sum().backward()
        got = verts.grad is not None and verts.grad.abs().sum() > 0
        assert got == expect_grad
        assert disp.grad is not None
        disp.grad = None


def _open_box() -> UVLayout:
    """A unit cube with outward faces and its +z side (towards the camera) missing: open, 10 triangles."""
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], dtype=np.float64)
    idx = {tuple(p): i for i, p in enumerate(v)}

    def quad(a, b, c, d):  # counter-clockwise seen from outside
        return [[idx[a], idx[b], idx[c]], [idx[a], idx[c], idx[d]]]

    h = 0.5
    faces = (quad((-h, -h, -h), (-h, h, -h), (h, h, -h), (h, -h, -h))  # back (-z), normal -z
             + quad((-h, -h, -h), (h, -h, -h), (h, -h, h), (-h, -h, h))  # bottom
             + quad((-h, h, -h), (-h, h, h), (h, h, h), (h, h, -h))  # top
             + quad((-h, -h, -h), (-h, -h, h), (-h, h, h), (-h, h, -h))  # left
             + quad((h, -h, -h), (h, h, -h), (h, h, h), (h, -h, h)))  # right
    faces = np.asarray(faces, dtype=np.int64)
    uvs = (v[:, :2] + 0.5) * 0.9 + 0.05
    return UVLayout(vertices=v, faces=faces, verts_uvs=uvs, faces_uvs=faces)


def test_open_meshes_are_not_culled(head):
    """FLAME is open at the mouth: looking into an opening must show the inner faces, as DECA's renderer does."""
    box = _open_box()
    assert not is_closed(torch.from_numpy(box.faces)) and is_closed(torch.from_numpy(head.model.faces))
    verts = torch.from_numpy(box.vertices).float()[None]
    cam = torch.tensor([[1.2, 0.0, 0.0]])
    auto = Renderer(box, image_size=32, uv_size=16, backend="torch")
    culled = Renderer(box, image_size=32, uv_size=16, backend="torch", cull_backfaces=True)
    assert auto.cull_backfaces is False and culled.cull_backfaces is True
    centre = (slice(12, 20), slice(12, 20))
    assert (auto(verts, cam).alpha[0, 0][centre] == 1).all()  # the inside of the back wall
    assert (culled(verts, cam).alpha[0, 0][centre] == 0).all()  # see-through with culling
    assert Renderer(head.uv, image_size=32, uv_size=16, backend="torch").cull_backfaces is True  # closed head
    with pytest.raises(ValueError, match="cull_backfaces"):
        Renderer(box, image_size=32, uv_size=16, backend="torch", cull_backfaces="yes")


def test_albedo_is_not_clamped_and_shrinks_by_nearest_neighbour():
    gen = np.random.default_rng(0)
    mean = gen.uniform(0.2, 0.8, size=(8, 8, 3))
    basis = gen.normal(size=(8, 8, 3, 2))
    model = AlbedoModel(AlbedoData(mean=mean, basis=basis, source="test"), n_tex=2, uv_size=4)
    tex = torch.tensor([[3.0, -2.0]], requires_grad=True)
    out = model(tex)
    # Nearest neighbour from 8 to 4 takes every second texel (DECA: F.interpolate's default mode).
    want = mean[::2, ::2] + basis[::2, ::2] @ np.array([3.0, -2.0])
    np.testing.assert_allclose(out[0].permute(1, 2, 0).detach().numpy(), want, rtol=1e-5, atol=1e-5)
    assert out.min() < 0 and out.max() > 1  # unclamped
    out.sum().backward()
    assert tex.grad.abs().min() > 0
    assert AlbedoModel(AlbedoData(mean=mean, basis=basis, source="t"), 2, 4, clamp=True)(tex).max() <= 1


def test_official_checkpoint_requires_the_fixed_displacement(tmp_path, head_cache):
    cfg = compose_typed("reconstruct", ["model=small", f"paths.cache_dir={head_cache}",
                                        "renderer.backend=torch", "input=unused"], ReconstructConfig)
    official = tmp_path / "deca_model.tar"
    torch.save({"E_flame": {}, "E_detail": {}, "D_detail": {}}, official)
    cfg.model.checkpoint = str(official)
    with pytest.raises(AssetError, match="fixed_displacement_256.npy") as err:
        build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    assert "yfeng95/DECA" in str(err.value)
    fixed = tmp_path / "fixed_displacement_256.npy"
    np.save(fixed, np.full((256, 256), 5e-4, dtype=np.float32))
    cfg.model.fixed_displacement = str(fixed)
    deca, _ = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    assert float(deca.renderer.fixed_displacement.mean()) == pytest.approx(5e-4)
    # A decalite checkpoint does not need it.
    cfg.model.fixed_displacement = None
    torch.save({"state_dict": {}}, tmp_path / "ours.ckpt")
    cfg.model.checkpoint = str(tmp_path / "ours.ckpt")
    assert build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)[0].renderer.fixed_displacement is None


def test_fixed_displacement_file_errors(tmp_path):
    bad = tmp_path / "fixed_displacement_256.npy"
    np.save(bad, np.zeros((3, 256, 256), dtype=np.float32))
    with pytest.raises(AssetError, match="square float array"):
        load_fixed_displacement(bad)
    np.save(bad, np.full((256, 256), 0.5, dtype=np.float32))
    with pytest.raises(AssetError, match="5 cm"):
        load_fixed_displacement(bad)
    with pytest.raises(AssetError, match="not found"):
        load_fixed_displacement(tmp_path / "missing.npy")
