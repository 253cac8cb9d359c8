"""Writers -> loaders round trips, determinism, and compatibility with plain FLAME/DECA readers."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from PIL import Image

from decalite.errors import AssetError
from decalite.flame.asset_writer import (
    write_albedo_npz,
    write_flame_model,
    write_landmark_embedding,
    write_obj_with_uvs,
    write_uv_mask,
)
from decalite.flame.assets import (
    FLAME_FILES,
    find_albedo_file,
    load_albedo,
    load_flame_assets,
    load_flame_model,
    load_landmark_embedding,
    load_uv_layout,
    load_uv_mask,
)
from decalite.flame.model_data import AlbedoData, FlameModelData, LandmarkEmbedding
from decalite.types import UVLayout


def _assert_model_equal(a: FlameModelData, b: FlameModelData) -> None:
    for name in ("v_template", "faces", "shapedirs", "posedirs", "j_regressor", "parents", "lbs_weights"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_flame_model_round_trip(tmp_path: Path, tiny_model: FlameModelData) -> None:
    path = tmp_path / "generic_model.pkl"
    write_flame_model(path, tiny_model)
    loaded = load_flame_model(path)
    _assert_model_equal(loaded, tiny_model)
    assert loaded.faces.dtype == np.int64 and loaded.parents.dtype == np.int64
    assert loaded.v_template.dtype == np.float64 and loaded.j_regressor.dtype == np.float64
    assert loaded.parents.tolist() == [-1, 0, 1, 1, 1]
    assert loaded.n_exp_total == 100
    assert loaded.source == str(path)


def test_flame_model_file_reads_like_the_real_one(tmp_path: Path, tiny_model: FlameModelData) -> None:
    """What smplx / DECA do: pickle.load(encoding='latin1'), then np.array / .todense()."""
    path = tmp_path / "generic_model.pkl"
    write_flame_model(path, tiny_model)
    with open(path, "rb") as fh:
        assert fh.read(2) == b"\x80\x02"  # protocol 2
        fh.seek(0)
        raw = pickle.load(fh, encoding="latin1")
    assert sp.isspmatrix_csc(raw["J_regressor"])
    np.testing.assert_array_equal(np.array(raw["J_regressor"].todense()), tiny_model.j_regressor)
    assert raw["f"].dtype == np.uint32
    assert raw["kintree_table"].dtype == np.uint32 and raw["kintree_table"][0, 0] == 4294967295
    assert raw["kintree_table"].astype(np.int64)[0].tolist() == [4294967295, 0, 1, 1, 1]
    np.testing.assert_allclose(raw["J"], tiny_model.j_regressor @ tiny_model.v_template)
    assert raw["bs_style"] == "lbs" and raw["bs_type"] == "lrotmin"
    assert raw["shapedirs"].shape == (30, 3, 400) and raw["posedirs"].shape == (30, 3, 36)


def test_landmark_embedding_round_trip(tmp_path: Path, tiny_embedding: LandmarkEmbedding) -> None:
    path = tmp_path / "landmark_embedding.npy"
    write_landmark_embedding(path, tiny_embedding)
    loaded = load_landmark_embedding(path)
    for name in ("static_faces", "static_bary", "dynamic_faces", "dynamic_bary", "full_faces", "full_bary"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(tiny_embedding, name), err_msg=name)
    assert loaded.full_faces.shape == (68,) and loaded.full_bary.shape == (68, 3)
    assert loaded.dynamic_faces.dtype == np.int64 and loaded.dynamic_bary.dtype == np.float64


def test_landmark_embedding_file_reads_like_the_real_one(tmp_path: Path, tiny_embedding: LandmarkEmbedding) -> None:
    """What DECA does: np.load(allow_pickle=True, encoding='latin1')[()], dynamic_* are torch tensors."""
    path = tmp_path / "landmark_embedding.npy"
    write_landmark_embedding(path, tiny_embedding)
    raw = np.load(path, allow_pickle=True, encoding="latin1")[()]
    assert isinstance(raw["dynamic_lmk_faces_idx"], torch.Tensor)
    assert raw["dynamic_lmk_faces_idx"].dtype == torch.long
    assert raw["dynamic_lmk_bary_coords"].dtype == torch.float32
    assert raw["full_lmk_faces_idx"].shape == (1, 68) and raw["full_lmk_bary_coords"].shape == (1, 68, 3)
    np.testing.assert_array_equal(raw["dynamic_lmk_faces_idx"].numpy(), tiny_embedding.dynamic_faces)
    np.testing.assert_array_equal(raw["static_lmk_faces_idx"], tiny_embedding.static_faces)


def test_uv_layout_round_trip(tmp_path: Path, tiny_uv: UVLayout) -> None:
    path = tmp_path / "head_template.obj"
    write_obj_with_uvs(path, tiny_uv)
    loaded = load_uv_layout(path)
    for name in ("vertices", "faces", "verts_uvs", "faces_uvs"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(tiny_uv, name), err_msg=name)
    assert loaded.faces.dtype == np.int64 and loaded.verts_uvs.dtype == np.float64


def test_obj_parser_variants(tmp_path: Path) -> None:
    path = tmp_path / "t.obj"
    path.write_text(
        "# comment\nmtllib x.mtl\no head\n"
        "v 0 0 0\nv 1 0 0\nv 0 1 0 0.5 0.5 0.5\nv 1 1 0\n"
        "vt 0 0\nvt 1 0\nvt 0 1 0\nvt 1 1\nvn 0 0 1\ns off\n"
        "f 1/1/1 2/2/1 3/3/1\n"
        "f -3/-3 -1/-1 -2/-2\n"
    )
    uv = load_uv_layout(path)
    assert uv.vertices.shape == (4, 3) and uv.verts_uvs.shape == (4, 2)
    assert uv.faces.tolist() == [[0, 1, 2], [1, 3, 2]]
    assert uv.faces_uvs.tolist() == [[0, 1, 2], [1, 3, 2]]


def test_uv_mask_round_trip_and_resize(tmp_path: Path, tiny_mask: np.ndarray) -> None:
    path = tmp_path / "uv_face_mask.png"
    write_uv_mask(path, tiny_mask)
    with Image.open(path) as img:
        assert img.mode == "L" and img.size == (16, 16)
    loaded = load_uv_mask(path)
    assert loaded.dtype == np.float32 and loaded.shape == (16, 16)
    np.testing.assert_allclose(loaded, tiny_mask, atol=1e-6)
    resized = load_uv_mask(path, size=8)
    assert resized.shape == (8, 8) and resized.dtype == np.float32
    assert 0.0 <= resized.min() and resized.max() <= 1.0


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "I;16"])
def test_uv_mask_colour_modes(tmp_path: Path, mode: str) -> None:
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:6, 2:6] = 255
    if mode == "I;16":
        img = Image.fromarray(mask.astype(np.uint16) * 257)
    else:
        img = Image.fromarray(np.repeat(mask[..., None], len(mode), axis=2)).convert(mode)
    path = tmp_path / f"mask_{mode.replace(';', '')}.png"
    img.save(path)
    loaded = load_uv_mask(path)
    np.testing.assert_allclose(loaded, mask / 255.0, atol=1e-6)


def test_albedo_mu_pc_round_trip_and_bgr(tmp_path: Path, tiny_albedo: AlbedoData) -> None:
    path = tmp_path / "FLAME_albedo_from_BFM.npz"
    write_albedo_npz(path, tiny_albedo)
    with np.load(path) as npz:
        assert npz["MU"].shape == (1, 8 * 8 * 3) and npz["PC"].shape == (8 * 8 * 3, 4)
        assert npz["MU"].dtype == np.float32
        # Stored BGR: the first stored channel of texel 0 is the blue value.
        assert npz["MU"][0, 0] == tiny_albedo.mean[0, 0, 2]
        assert npz["MU"][0, 2] == tiny_albedo.mean[0, 0, 0]
    loaded = load_albedo(path)
    np.testing.assert_array_equal(loaded.mean, tiny_albedo.mean)
    np.testing.assert_array_equal(loaded.basis, tiny_albedo.basis)
    assert loaded.mean.dtype == np.float32 and loaded.basis.dtype == np.float32
    assert loaded.mean[..., 0].mean() > 0.6 and loaded.mean[..., 2].mean() < 0.3  # R stays R, B stays B
    two = load_albedo(path, n_components=2)
    assert two.n_components == 2
    np.testing.assert_array_equal(two.basis, tiny_albedo.basis[..., :2])


def test_albedo_bfm_layout_any_mu_shape(tmp_path: Path) -> None:
    """MU may be flat or (1, N); PC may have extra leading dimensions; extra keys are ignored."""
    rgb = np.array([0.9, 0.5, 0.1])
    mu = np.tile(rgb[::-1], 4 * 4)  # BGR texels, flat
    pc = np.arange(4 * 4 * 3 * 3, dtype=np.float64).reshape(1, 4 * 4 * 3, 3)
    path = tmp_path / "a.npz"
    np.savez(path, MU=mu, PC=pc, specMU=mu, specPC=pc)
    albedo = load_albedo(path)
    assert albedo.mean.shape == (4, 4, 3) and albedo.basis.shape == (4, 4, 3, 3)
    np.testing.assert_allclose(albedo.mean[2, 3], rgb)
    np.testing.assert_allclose(albedo.basis[0, 0, :, 0], [6.0, 3.0, 0.0])  # BGR rows 0, 1, 2 -> RGB 2, 1, 0


def test_albedo_flame_texture_layout(tmp_path: Path) -> None:
    """FLAME_texture.npz: mean (H, W, 3), tex_dir (H, W, 3, N), BGR, 0..255; H != W allowed."""
    h, w, n = 4, 6, 5
    rng = np.random.default_rng(5)
    mean_bgr = np.empty((h, w, 3))
    mean_bgr[..., 0], mean_bgr[..., 1], mean_bgr[..., 2] = 30.0, 120.0, 240.0  # B, G, R
    tex_dir = rng.normal(size=(h, w, 3, n)) * 10
    path = tmp_path / "FLAME_texture.npz"
    np.savez(path, mean=mean_bgr, tex_dir=tex_dir)
    albedo = load_albedo(path, n_components=3)
    assert albedo.mean.shape == (h, w, 3) and albedo.basis.shape == (h, w, 3, 3)
    np.testing.assert_allclose(albedo.mean[0, 0], [240 / 255, 120 / 255, 30 / 255], rtol=1e-6)
    np.testing.assert_allclose(albedo.basis, tex_dir[:, :, ::-1, :3] / 255.0, rtol=1e-5, atol=1e-7)


def test_albedo_too_many_components(tmp_path: Path, tiny_albedo: AlbedoData) -> None:
    path = tmp_path / "FLAME_albedo_from_BFM.npz"
    write_albedo_npz(path, tiny_albedo)
    with pytest.raises(AssetError, match="5 albedo components requested, but the file holds only 4"):
        load_albedo(path, n_components=5)


def _write_all(root: Path, model, embedding, uv, albedo, mask) -> None:
    write_flame_model(root / "generic_model.pkl", model)
    write_landmark_embedding(root / "landmark_embedding.npy", embedding)
    write_obj_with_uvs(root / "head_template.obj", uv)
    write_uv_mask(root / "uv_face_mask.png", mask)
    write_albedo_npz(root / "albedo.npz", albedo)


def test_writers_are_deterministic(
    tmp_path: Path, tiny_model, tiny_embedding, tiny_uv, tiny_albedo, tiny_mask
) -> None:
    _write_all(tmp_path / "a", tiny_model, tiny_embedding, tiny_uv, tiny_albedo, tiny_mask)
    # Fresh copies (fresh tensors / storages at other addresses) must give identical bytes.
    model_copy = dataclasses.replace(tiny_model, **{k: v.copy() for k, v in vars(tiny_model).items()
                                                    if isinstance(v, np.ndarray)})
    _write_all(tmp_path / "b", model_copy, tiny_embedding, tiny_uv, tiny_albedo, tiny_mask.copy())
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(names) == 5
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_load_flame_assets_folder(asset_dir: Path, tiny_model, tiny_albedo, tiny_mask) -> None:
    assets = load_flame_assets(asset_dir, n_tex=3)
    _assert_model_equal(assets.model, tiny_model)
    assert assets.albedo is not None and assets.albedo.n_components == 3
    np.testing.assert_allclose(assets.face_mask, tiny_mask, atol=1e-6)
    np.testing.assert_allclose(assets.face_eye_mask, 1.0 - tiny_mask, atol=1e-6)
    assert assets.root == str(asset_dir)
    assert find_albedo_file(asset_dir) == asset_dir / FLAME_FILES["albedo"][0]
    assert load_flame_assets(asset_dir, albedo=False).albedo is None


def test_load_flame_assets_albedo_optional(asset_dir: Path) -> None:
    (asset_dir / FLAME_FILES["albedo"][0]).unlink()
    assert load_flame_assets(asset_dir).albedo is None
    with pytest.raises(AssetError, match="BFM_to_FLAME"):
        load_flame_assets(asset_dir, require_albedo=True)


def test_load_flame_assets_missing_required_file(asset_dir: Path) -> None:
    (asset_dir / "landmark_embedding.npy").unlink()
    with pytest.raises(AssetError) as info:
        load_flame_assets(asset_dir)
    assert str(asset_dir / "landmark_embedding.npy") in str(info.value)
    assert "file not found" in str(info.value)
    with pytest.raises(AssetError, match="folder not found"):
        load_flame_assets(asset_dir / "nope")
