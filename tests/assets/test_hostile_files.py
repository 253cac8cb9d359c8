"""Hostile files: every loader refuses, by file name and field, what declares more than it holds.

The timeouts are hang guards (these files used to hang or ask for gigabytes); memory is bounded in
test_fuzz_loaders.py, which loads the same files under RLIMIT_AS.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import skimage.data
import torch
from PIL import Image

from decalite.data.shards import IdentitySample, SampleError, decode_sample, encode_sample, sample_size
from decalite.errors import AssetError
from decalite.flame.assets import (
    FLAME_FILES,
    load_albedo,
    load_fixed_displacement,
    load_flame_assets,
    load_flame_model,
    load_landmark_embedding,
    load_uv_mask,
)
from decalite.flame.model_data import FlameModelData
from decalite.io import chumpy_to_numpy, safe_load_pickle
from decalite.io.bounded import LoadLimits, to_array
from decalite.io.images import InputError, load_image
from decalite.io.inputs import expand_inputs
from decalite.io.npy import check_npz
from decalite.io.pickle_scan import scan_pickle
from decalite.io.torch_files import check_torch_file
from decalite.nets.checkpoints import load_weights

from . import hostile

# --------------------------------------------------------------------------------------------------------
# The three files of the issue


@pytest.mark.timeout(10)
def test_nested_shared_lists_do_not_hang_load_flame_assets(asset_dir: Path) -> None:
    path = asset_dir / FLAME_FILES["model"]
    path.write_bytes(hostile.nested_lists_model())
    assert path.stat().st_size < 1200  # the ~1 kB file of the issue
    with pytest.raises(AssetError) as info:
        load_flame_assets(asset_dir)
    message = str(info.value)
    assert f"'{path}'" in message and "key 'v_template'" in message
    assert "more elements than the 150,000 allowed for it (at most 50,000 vertices x 3)" in message


@pytest.mark.timeout(10)
def test_huge_npy_header_names_the_file(asset_dir: Path) -> None:
    path = asset_dir / FLAME_FILES["landmarks"]
    path.write_bytes(hostile.huge_header_npy())
    with pytest.raises(AssetError) as info:
        load_landmark_embedding(path)
    message = str(info.value)
    assert f"'{path}'" in message and "landmark embedding" in message
    assert "declares shape (100000000000,) of float64 (800,000,000,000 bytes) but only 64 bytes" in message


@pytest.mark.timeout(10)
def test_zero_stride_array_is_refused_before_it_is_made_contiguous(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(hostile.zero_stride_model())
    with pytest.raises(AssetError) as info:
        load_flame_model(path)
    message = str(info.value)
    assert f"'{path}'" in message and "['v_template']" in message
    assert "(1000000000, 3) float64 tensor (3,000,000,000 elements, strides (0, 0)) over a storage of 8 bytes" in message


# --------------------------------------------------------------------------------------------------------
# Bounded conversions


def test_chumpy_conversion_visits_shared_references_once() -> None:
    shared = hostile.nested_shared_lists(60)
    converted = chumpy_to_numpy({"x": shared}, name="model")
    level = converted["x"]
    for _ in range(60):  # the result shares its references like the input: 60 lists, not 2**60
        assert level[0] is level[1]
        level = level[0]
    assert level == [1.0]


def test_walk_bounds_name_the_path() -> None:
    wide = [[i] for i in range(50)]
    with pytest.raises(AssetError, match=r"at 'f'\[9\]: it holds more than 10 objects") as info:
        chumpy_to_numpy(wide, name="f", source="m.pkl", limits=LoadLimits(max_nodes=10))
    assert info.value.path == "m.pkl"
    deep: list = []
    for _ in range(30):
        deep = [deep]
    with pytest.raises(AssetError, match=r"nested more than 20 levels deep"):
        chumpy_to_numpy(deep, name="f", limits=LoadLimits(max_depth=20))
    cyclic: list = [1.0]
    cyclic.append(cyclic)
    with pytest.raises(AssetError, match="a list contains itself"):
        to_array(chumpy_to_numpy(cyclic), name="f", source=None, max_elements=100)


def test_to_array_checks_before_converting() -> None:
    with pytest.raises(AssetError, match=r"key 'J' is a sparse \(100000, 100000\) matrix: 10,000,000,000 elements"):
        to_array(sp.coo_matrix(([1.0], ([0], [0])), shape=(10**5, 10**5)), name="J", source="m", max_elements=10**6)
    view = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(10**6, 3), strides=(0, 0))
    with pytest.raises(AssetError, match=r"strides \(0, 0\) over 8 bytes"):
        to_array(view, name="v", source="m", max_elements=10**7)
    with pytest.raises(AssetError, match="holds a str, not numbers"):
        to_array(["x" * 100] * 1000, name="v", source="m", max_elements=10**7)
    with pytest.raises(AssetError, match="more elements than the 5 allowed for it"):
        to_array([[1, 2, 3], [4, 5, 6]], name="v", source="m", max_elements=5)
    # Within the limits, arrays and tensors come back without a copy.
    arr = np.arange(12.0).reshape(3, 4)
    assert to_array(arr, name="a", source=None, max_elements=12) is arr
    tensor = torch.arange(6.0)
    assert np.shares_memory(to_array(tensor, name="t", source=None, max_elements=6), tensor.numpy())
    np.testing.assert_array_equal(to_array([[1, 2], [3, 4]], name="l", source=None, max_elements=4), [[1, 2], [3, 4]])


def test_plausible_shapes_of_a_flame_file(tmp_path: Path, tiny_model: FlameModelData) -> None:
    content = {
        "v_template": tiny_model.v_template, "f": tiny_model.faces, "shapedirs": tiny_model.shapedirs,
        "posedirs": tiny_model.posedirs, "J_regressor": sp.csc_matrix(tiny_model.j_regressor),
        "kintree_table": np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]]), "weights": tiny_model.lbs_weights,
    }  # fmt: skip
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(content, protocol=2))
    assert load_flame_model(path).n_vertices == 30
    content["J_regressor"] = sp.coo_matrix(([1.0], ([0], [0])), shape=(5, 10**9))  # 5e9 elements when dense
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(AssetError, match=r"key 'J_regressor' is a sparse \(5, 1000000000\) matrix.* \(5 joints x 30"):
        load_flame_model(path)
    content["J_regressor"] = tiny_model.j_regressor
    content["shapedirs"] = np.zeros((30, 3, 1001))  # more components than a FLAME file holds
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(AssetError, match="30 vertices x 3 x at most 1,000 components"):
        load_flame_model(path)


# --------------------------------------------------------------------------------------------------------
# The pickle scan and guarded callables


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_scan_agrees_with_pickletools(protocol: int) -> None:
    import pickletools

    data = pickle.dumps({"a": np.arange(5.0), "b": [1, "x", (2.5, None)], "c": b"\x00" * 300}, protocol=protocol)
    scan = scan_pickle(data + b"trailing")
    assert scan.end == len(data)
    assert scan.opcodes == sum(1 for _ in pickletools.genops(data))


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (hostile.memo_bomb, "memo index 2147483647"),
        (hostile.bytearray8_bomb, "BYTEARRAY8 at byte 2 declares 1,099,511,627,776 bytes"),
        (hostile.reconstruct_bomb, r"_reconstruct of a non-empty shape \(10000000000,\)"),
        (hostile.ndarray_call_bomb, r"numpy.ndarray\(<shape>\)"),
        (hostile.scalar_bomb, "a numpy scalar of 800,000,000 bytes"),
        (hostile.set_of_zero_stride_tensor, r"set\(\) of a Tensor"),
        (hostile.deep_nesting, "nested more than 100 levels deep"),
        (hostile.lying_storage_pickle, "declares 2,000,000,000 elements"),
    ],
)
@pytest.mark.timeout(10)
def test_pickle_bombs_are_refused(tmp_path: Path, build, expected: str) -> None:
    path = tmp_path / "bomb.pkl"
    path.write_bytes(build())
    with pytest.raises(AssetError, match=expected) as info:
        safe_load_pickle(path)
    assert f"'{path}'" in str(info.value)


def test_file_size_and_opcode_limits(tmp_path: Path) -> None:
    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps(list(range(1000)), protocol=2))
    with pytest.raises(AssetError, match="larger than 100 bytes, the limit"):
        safe_load_pickle(path, limits=LoadLimits(max_bytes=100))
    with pytest.raises(AssetError, match="more than 50 opcodes"):
        safe_load_pickle(path, limits=LoadLimits(max_opcodes=50))
    assert safe_load_pickle(path) == list(range(1000))


# --------------------------------------------------------------------------------------------------------
# Checkpoints


@pytest.mark.timeout(30)
def test_checkpoints_declaring_more_than_they_hold(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.arange(3.0)}, good)
    legacy_good = tmp_path / "legacy_good.pt"
    torch.save({"w": torch.arange(3.0)}, legacy_good, _use_new_zipfile_serialization=False)
    for path in (good, legacy_good):
        check_torch_file(path)
        assert load_weights(path, {}).format == "decalite"
    bomb = tmp_path / "bomb.pt"
    hostile.deflate_bomb_checkpoint(bomb, gib=1)
    with pytest.raises(AssetError, match=r"record 'archive/data/0': 1,073,741,824 bytes after inflating") as info:
        load_weights(bomb, {})
    assert f"'{bomb}'" in str(info.value) and "network weights" in str(info.value)
    legacy = tmp_path / "legacy.pt"
    hostile.legacy_checkpoint(legacy)
    with pytest.raises(AssetError, match=r"declares 2,000,000,000 elements \(8,000,000,000 bytes\)") as info:
        load_weights(legacy, {})
    assert f"'{legacy}'" in str(info.value)


# --------------------------------------------------------------------------------------------------------
# .npy / .npz files of a FLAME folder


def test_albedo_and_displacement_sizes_are_checked(tmp_path: Path) -> None:
    npz = tmp_path / "albedo.npz"
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("MU.npy", hostile.huge_header_npy(10**10))
        archive.writestr("PC.npy", hostile.huge_header_npy(10))
    with pytest.raises(AssetError, match=r"member 'MU.npy' declares shape \(10000000000,\)") as info:
        load_albedo(npz)
    assert f"'{npz}'" in str(info.value) and "albedo model" in str(info.value)
    zeros = tmp_path / "zeros.npz"
    np.savez_compressed(zeros, MU=np.zeros(3 << 20), PC=np.zeros((3, 1)))  # 24 MB of zeros in ~25 kB
    with zipfile.ZipFile(zeros) as archive, pytest.raises(AssetError, match="more than 200x"):
        check_npz(archive, str(zeros), max_bytes=1 << 30)
    fake = tmp_path / "FLAME_texture.npz"
    fake.write_bytes(hostile.huge_header_npy())  # an .npy where the .npz should be
    with pytest.raises(AssetError, match="not an .npz archive"):
        load_albedo(fake)
    disp = tmp_path / "fixed_displacement_256.npy"
    disp.write_bytes(hostile.huge_header_npy())
    with pytest.raises(AssetError, match="displacement map declares shape") as info:
        load_fixed_displacement(disp)
    assert f"'{disp}'" in str(info.value)


# --------------------------------------------------------------------------------------------------------
# Images, videos, shard samples


def test_image_bombs_are_refused_by_name_and_other_inputs_go_on(tmp_path: Path) -> None:
    (tmp_path / "huge.png").write_bytes(hostile.png_header_only(50_000, 50_000))  # over PIL's own limit
    (tmp_path / "big.png").write_bytes(hostile.png_header_only(10_000, 10_000))  # over decalite's
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "face.jpg")
    items, failures = expand_inputs(tmp_path)
    assert not failures
    outcomes = {}
    for item in items:
        try:
            outcomes[item.name] = item.load().shape
        except InputError as err:
            assert isinstance(err, AssetError) and err.path == str(item.path)
            outcomes[item.name] = err.reason
    assert outcomes["face"] == (512, 512, 3)
    assert "decompression bomb" in outcomes["huge"]
    assert "declares 10000 x 10000 pixels (100,000,000), more than the 67,108,864" in outcomes["big"]
    mask = tmp_path / "uv_face_mask.png"
    mask.write_bytes(hostile.png_header_only(10_000, 10_000))
    with pytest.raises(AssetError, match="declares 10000 x 10000 pixels") as info:
        load_uv_mask(mask)
    assert f"'{mask}'" in str(info.value)


def test_big_jpegs_are_decoded_at_reduced_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import decalite.io.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 1_000_000)  # scaled down: 1.5 MP images are "too large"
    Image.new("RGB", (1800, 1600), (200, 100, 50)).save(tmp_path / "big.jpg", quality=50)
    Image.new("RGB", (1800, 1600), (200, 100, 50)).save(tmp_path / "big.png")
    image = load_image(tmp_path / "big.jpg", max_side=512)  # decoded at 1/2 scale (900 x 800), then downscaled
    assert image.shape == (455, 512, 3) and abs(int(image[100, 100, 0]) - 200) < 8
    with pytest.raises(InputError, match="declares 1800 x 1600 pixels"):
        load_image(tmp_path / "big.png", max_side=512)


def test_video_frame_size_is_checked_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import imageio.v2 as imageio

    import decalite.io.images as images

    imageio.mimsave(tmp_path / "clip.mp4", [np.zeros((64, 48, 3), np.uint8)] * 3, fps=10, macro_block_size=16)
    items, failures = expand_inputs(tmp_path / "clip.mp4", every_n_frames=1)
    assert len(items) == 3 and not failures
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    items, failures = expand_inputs(tmp_path / "clip.mp4", every_n_frames=1)
    assert not items and failures[0]["file"].endswith("clip.mp4")
    assert "video frames: it declares 48 x 64 pixels (3,072), more than the 1,000" in failures[0]["reason"]


def _raw_sample() -> dict:
    rng = np.random.default_rng(0)
    sample = IdentitySample(
        identity="n000123", images=rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8),
        landmarks=rng.uniform(0, 32, (2, 68, 2)).astype(np.float32), masks=np.full((2, 32, 32), 255, np.uint8),
        gt={"shape": np.zeros((2, 10), np.float32)},
    )  # fmt: skip
    return {**encode_sample(sample), "__url__": "shard-000.tar"}


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("member", "content", "expected"),
    [
        (None, None, None),
        ("extra", {f"{i:04d}.txt": b"" for i in range(3000)}, "3,009 files, more than the 2,064"),
        ("meta.json", b" " * (2 << 20), "meta.json has 2,097,152 bytes"),
        ("meta.json", b"[" * 200_000 + b"]" * 200_000, "meta.json is not valid JSON"),
        ("meta.json", json.dumps({"n_images": 10**9}).encode(), "n_images is 1000000000"),
        ("lmk.npy", _npy(np.zeros((2, 5, 2), np.float32)), r"lmk.npy has shape \(2, 5, 2\), expected \(2, 68, 2\)"),
        ("lmk.npy", hostile.huge_header_npy(), r"lmk.npy declares shape \(100000000000,\)"),
        ("01.mask.png", hostile.png_header_only(10_000, 10_000), "01.mask.png: it declares 10000 x 10000"),
        ("00.jpg", hostile.png_header_only(20_000, 20_000), "00.jpg: refused as a decompression bomb by PIL"),
        ("gt.npz", None, r"gt.npz: member 'shape.npy' declares shape \(10000000000,\)"),
    ],
)
@pytest.mark.timeout(10)
def test_shard_sample_bounds(member: str | None, content, expected: str | None) -> None:
    raw = _raw_sample()
    if member == "extra":
        raw.update(content)
    elif member == "gt.npz":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("shape.npy", hostile.huge_header_npy(10**10))
        raw["gt.npz"] = buf.getvalue()
    elif member is not None:
        raw[member] = content
    if expected is None:
        assert sample_size(raw) == 2 and decode_sample(raw).images.shape == (2, 32, 32, 3)
        return
    with pytest.raises(SampleError, match=expected) as info:
        decode_sample(raw)
    assert isinstance(info.value, AssetError) and isinstance(info.value, ValueError)
    assert "'shard-000.tar#n000123__000'" in str(info.value)
