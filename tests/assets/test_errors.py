"""Every bad asset file gives an AssetError that names the file, the problem and how to obtain a good one."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from decalite.errors import AssetError
from decalite.flame.asset_writer import write_flame_model, write_landmark_embedding
from decalite.flame.assets import (
    FLAME_FILES,
    load_albedo,
    load_flame_model,
    load_landmark_embedding,
    load_uv_layout,
    load_uv_mask,
)
from decalite.flame.model_data import FlameModelData

FLAME_HINT = "flame.is.tue.mpg.de"
DECA_HINT = "yfeng95/DECA"
ALBEDO_HINT = "BFM_to_FLAME"

LOADERS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "model": (load_flame_model, FLAME_HINT),
    "landmarks": (load_landmark_embedding, DECA_HINT),
    "template": (load_uv_layout, DECA_HINT),
    "face_mask": (load_uv_mask, DECA_HINT),
    "albedo": (load_albedo, ALBEDO_HINT),
}


def _file_name(key: str) -> str:
    name = FLAME_FILES[key]
    return name if isinstance(name, str) else name[0]


def _assert_asset_error(info: pytest.ExceptionInfo[AssetError], path: Path, hint: str, *fragments: str) -> None:
    message = str(info.value)
    assert f"'{path}'" in message, message
    assert hint in message, message
    assert "Expected:" in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.path == str(path)


@pytest.mark.parametrize("key", sorted(LOADERS))
def test_missing_file(tmp_path: Path, key: str) -> None:
    loader, hint = LOADERS[key]
    path = tmp_path / _file_name(key)
    with pytest.raises(AssetError) as info:
        loader(path)
    _assert_asset_error(info, path, hint, "file not found")


def test_missing_model_message_reads_well(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    with pytest.raises(AssetError) as info:
        load_flame_model(path)
    assert str(info.value).startswith(f"Cannot read FLAME model '{path}': file not found. Expected: FLAME 2020")
    assert "leave flame.dir unset to use decalite's generated head" in str(info.value)


@pytest.mark.parametrize("key", sorted(LOADERS))
def test_truncated_file(asset_dir: Path, key: str) -> None:
    loader, hint = LOADERS[key]
    path = asset_dir / _file_name(key)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AssetError) as info:
        loader(path)
    _assert_asset_error(info, path, hint)


@pytest.mark.parametrize("key", sorted(LOADERS))
def test_garbage_file(tmp_path: Path, key: str) -> None:
    loader, hint = LOADERS[key]
    path = tmp_path / _file_name(key)
    path.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(AssetError) as info:
        loader(path)
    _assert_asset_error(info, path, hint)


def _model_dict(tmp_path: Path, model: FlameModelData) -> dict[str, Any]:
    good = tmp_path / "good.pkl"
    write_flame_model(good, model)
    return pickle.loads(good.read_bytes())


def _write_pickle(path: Path, content: Any) -> Path:
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


def test_wrong_shape_shapedirs(tmp_path: Path, tiny_model: FlameModelData) -> None:
    content = _model_dict(tmp_path, tiny_model)
    content["shapedirs"] = content["shapedirs"][:, :, :100]
    path = _write_pickle(tmp_path / "generic_model.pkl", content)
    with pytest.raises(AssetError) as info:
        load_flame_model(path)
    _assert_asset_error(info, path, FLAME_HINT, "'shapedirs'", "(30, 3, 100)", "K > 300")


@pytest.mark.parametrize(
    ("key", "bad", "fragment"),
    [
        ("posedirs", lambda a: a[:, :, :27], "(30, 3, 36)"),
        ("weights", lambda a: a[:, :4], "(30, 5)"),
        ("v_template", lambda a: a[:, :2], "(V, 3)"),
        ("f", lambda a: a + 100, "V = 30"),
        ("kintree_table", lambda a: a[::-1], "joint ids 0..4, found [4294967295, 0, 1, 1, 1]"),
        ("kintree_table", lambda a: np.stack([[4294967295, 4294967295, 1, 1, 1], a[1]]).astype(a.dtype), "one root"),
        ("kintree_table", lambda a: np.stack([[4294967295, 2, 0, 1, 1], a[1]]).astype(a.dtype), "precede"),
        ("shapedirs", lambda a: a.astype(object), "not a numeric array"),
    ],
)
def test_wrong_model_arrays(tmp_path: Path, tiny_model: FlameModelData, key: str, bad: Any, fragment: str) -> None:
    content = _model_dict(tmp_path, tiny_model)
    content[key] = bad(content[key])
    path = _write_pickle(tmp_path / "generic_model.pkl", content)
    with pytest.raises(AssetError) as info:
        load_flame_model(path)
    _assert_asset_error(info, path, FLAME_HINT, fragment)


def test_missing_model_key(tmp_path: Path, tiny_model: FlameModelData) -> None:
    content = _model_dict(tmp_path, tiny_model)
    del content["posedirs"]
    path = _write_pickle(tmp_path / "generic_model.pkl", content)
    with pytest.raises(AssetError) as info:
        load_flame_model(path)
    _assert_asset_error(info, path, FLAME_HINT, "missing key(s) 'posedirs'")


def test_model_pickle_not_a_dict(tmp_path: Path) -> None:
    path = _write_pickle(tmp_path / "generic_model.pkl", [np.zeros(3)])
    with pytest.raises(AssetError, match="holds a list, not a dict"):
        load_flame_model(path)


def _landmark_dict(tmp_path: Path, embedding: Any) -> dict[str, Any]:
    good = tmp_path / "good.npy"
    write_landmark_embedding(good, embedding)
    return np.load(good, allow_pickle=True)[()]


def _save_dict_npy(path: Path, content: dict[str, Any]) -> Path:
    np.save(path, np.array(content, dtype=object), allow_pickle=True)
    return path


def test_landmark_missing_key_and_wrong_shape(tmp_path: Path, tiny_embedding: Any) -> None:
    content = _landmark_dict(tmp_path, tiny_embedding)
    broken = dict(content)
    del broken["dynamic_lmk_bary_coords"]
    path = _save_dict_npy(tmp_path / "landmark_embedding.npy", broken)
    with pytest.raises(AssetError) as info:
        load_landmark_embedding(path)
    _assert_asset_error(info, path, DECA_HINT, "'dynamic_lmk_bary_coords'")

    broken = dict(content)
    broken["static_lmk_bary_coords"] = broken["static_lmk_bary_coords"][:50]
    _save_dict_npy(path, broken)
    with pytest.raises(AssetError) as info:
        load_landmark_embedding(path)
    _assert_asset_error(info, path, DECA_HINT, "'static_lmk_bary_coords'", "(50, 3)", "(51, 3)")


def test_landmark_npy_without_dict(tmp_path: Path) -> None:
    path = tmp_path / "landmark_embedding.npy"
    np.save(path, np.zeros((3, 3)))
    with pytest.raises(AssetError, match="not a dict"):
        load_landmark_embedding(path)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nf 1/1 2/1 3/1 4/1\n", "only triangles"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0 0 1\nf 1//1 2//1 3//1\n", "no texture index"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "no texture index"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 4/1\n", "only 3 vertices"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 -4/1\n", "out of range"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/2\n", "texture coordinate 2"),
        ("v 0 0\n", "line 1"),
        ("v 0 0 0\nvt 0 0\n", "no faces"),
    ],
)
def test_bad_obj(tmp_path: Path, body: str, fragment: str) -> None:
    path = tmp_path / "head_template.obj"
    path.write_text(body)
    with pytest.raises(AssetError) as info:
        load_uv_layout(path)
    _assert_asset_error(info, path, DECA_HINT, fragment)


def test_albedo_unknown_layout(tmp_path: Path) -> None:
    path = tmp_path / "albedo.npz"
    np.savez(path, foo=np.zeros(3))
    with pytest.raises(AssetError) as info:
        load_albedo(path)
    _assert_asset_error(info, path, ALBEDO_HINT, "unknown albedo layout", "['foo']")


def test_albedo_inconsistent_sizes(tmp_path: Path) -> None:
    path = tmp_path / "albedo.npz"
    np.savez(path, MU=np.zeros((1, 4 * 4 * 3)), PC=np.zeros((5 * 5 * 3, 2)))
    with pytest.raises(AssetError, match="same H\\*W\\*3"):
        load_albedo(path)
    np.savez(path, MU=np.zeros(2 * 3 * 3), PC=np.zeros((2 * 3 * 3, 2)))
    with pytest.raises(AssetError, match="not a square"):
        load_albedo(path)
