"""The generated head as files: written in FLAME's formats, read back by the one loader, used by the CLIs."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from hydra import compose, initialize_config_dir

from decalite.cli._hydra import CONF_DIR
from decalite.config import FlameConfig
from decalite.errors import AssetError
from decalite.flame.assets import load_flame_assets
from decalite.flame.default import resolve_flame_dir
from decalite.flame.generated import generate_head, write_generated_head
from decalite.model.factory import load_assets, load_flame_layer


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_generated_head(tmp_path_factory.mktemp("head") / "seed0", seed=0)


def test_generate_write_load_round_trip(written):
    head = generate_head(seed=0)
    assets = load_flame_assets(written)
    np.testing.assert_allclose(assets.model.v_template, head.model.v_template)
    np.testing.assert_array_equal(assets.model.faces, head.model.faces)
    np.testing.assert_allclose(assets.model.shapedirs, head.model.shapedirs)
    np.testing.assert_allclose(assets.model.j_regressor, head.model.j_regressor)
    np.testing.assert_array_equal(assets.model.parents, head.model.parents)
    np.testing.assert_array_equal(assets.embedding.dynamic_faces, head.embedding.dynamic_faces)
    np.testing.assert_allclose(assets.embedding.full_bary, head.embedding.full_bary, atol=1e-6)
    np.testing.assert_allclose(assets.uv.verts_uvs, head.uv.verts_uvs, atol=1e-6)
    np.testing.assert_array_equal(assets.uv.faces_uvs, head.uv.faces_uvs)
    np.testing.assert_array_equal(assets.face_eye_mask > 0.5, head.face_eye_mask > 0.5)
    np.testing.assert_allclose(assets.albedo.mean, head.albedo.mean, atol=1e-6)


def test_same_seed_gives_identical_files(written, tmp_path):
    again = write_generated_head(tmp_path / "again", seed=0)
    assert _digests(written) == _digests(again)
    other = write_generated_head(tmp_path / "other", seed=1)
    assert _digests(written)["generic_model.pkl"] != _digests(other)["generic_model.pkl"]


def test_other_flame_tools_can_read_the_pickle(written):
    """smplx/DECA read generic_model.pkl with plain pickle (latin-1) and numpy/scipy only."""
    import pickle

    with open(written / "generic_model.pkl", "rb") as f:
        data = pickle.load(f, encoding="latin1")
    assert np.asarray(data["shapedirs"]).shape[2] == 400
    assert data["J_regressor"].shape == (5, np.asarray(data["v_template"]).shape[0])
    assert np.asarray(data["kintree_table"]).shape == (2, 5)


def test_unset_flame_dir_uses_the_ict_head_and_says_so_once(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="decalite.flame.default"):
        first = resolve_flame_dir(None, cache_dir=tmp_path)
        second = resolve_flame_dir(None, cache_dir=tmp_path)
    assert first == second and (first / "generic_model.pkl").exists()
    notes = [r for r in caplog.records if "ICT Face Model Light" in r.message]
    assert len(notes) == 1
    layer = load_flame_layer(FlameConfig(dir=None, n_shape=10, n_exp=5), cache_dir=tmp_path)
    assert layer.n_vertices == 10_000 and (layer.n_shape, layer.n_exp) == (10, 5)


def test_embedded_generated_head_is_the_mannequin_and_says_so_once(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="decalite.flame.default"):
        first = resolve_flame_dir(None, cache_dir=tmp_path, embedded="generated")
        resolve_flame_dir(None, cache_dir=tmp_path, embedded="generated")
    assert len([r for r in caplog.records if "generated FLAME-format mannequin" in r.message]) == 1
    layer = load_flame_layer(FlameConfig(dir=None, embedded="generated", n_shape=10, n_exp=5), cache_dir=tmp_path)
    assert layer.n_vertices == generate_head(0).model.n_vertices
    assert first.name.startswith("generated_head_v")
    with pytest.raises(ValueError, match="flame.embedded='mannequin'"):
        resolve_flame_dir(None, cache_dir=tmp_path, embedded="mannequin")


def test_missing_flame_folder_names_it_and_the_fix(tmp_path):
    with pytest.raises(AssetError) as err:
        resolve_flame_dir(tmp_path / "no-such-FLAME")
    assert "no-such-FLAME" in str(err.value) and "flame.is.tue.mpg.de" in str(err.value)


def test_assets_cli_writes_a_complete_folder(tmp_path):
    out = tmp_path / "head"
    subprocess.run([sys.executable, "-m", "decalite.cli.assets", "source=generated", f"output={out}", "seed=3"],
                   check=True, cwd=tmp_path)
    names = {p.name for p in out.iterdir()}
    assert {"generic_model.pkl", "landmark_embedding.npy", "head_template.obj", "uv_face_mask.png",
            "uv_face_eye_mask.png", "albedo.npz"} <= names
    assets = load_flame_assets(out)
    assert assets.model.n_vertices > 4000
    assert assets.generated  # a written generated head is recognised wherever it lives


def test_assets_cli_expands_the_shipped_ict_head(tmp_path):
    out = tmp_path / "ict"
    subprocess.run([sys.executable, "-m", "decalite.cli.assets", f"output={out}"], check=True, cwd=tmp_path)
    assets = load_flame_assets(out)
    assert assets.model.n_vertices == 10_000 and "mouthSmile_L" in assets.model.expression_names
    assert "MIT" in (out / "README.txt").read_text() and not assets.generated
    bad = subprocess.run([sys.executable, "-m", "decalite.cli.assets", f"output={out}", "pack=x.npz"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "input=PATH/FaceXModel" in bad.stderr


def test_assets_know_whether_they_are_the_generated_head(tmp_path):
    assert load_assets(FlameConfig(dir=None, embedded="generated"), cache_dir=tmp_path, albedo=False).generated
    assert not load_assets(FlameConfig(dir=None), cache_dir=tmp_path, albedo=False).generated  # the ICT head
    flame_like = tmp_path / "flame"
    shutil.copytree(resolve_flame_dir(None, cache_dir=tmp_path, embedded="generated"), flame_like)
    (flame_like / "README.txt").unlink()  # a FLAME folder has no generated-head README
    assert not load_assets(FlameConfig(dir=str(flame_like)), albedo=False).generated


def test_demo_writes_meshes_that_load(tmp_path, head_cache):
    from decalite.cli.demo import run

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("demo", overrides=[f"output={tmp_path / 'demo'}", f"paths.cache_dir={head_cache}"])
    summary = run(cfg)
    for name in summary["meshes"]:
        mesh = trimesh.load(tmp_path / "demo" / "head" / name, process=False)
        assert len(mesh.vertices) >= summary["vertices"]  # OBJ loaders may split UV seams
    neutral = np.loadtxt(tmp_path / "demo" / "head" / "neutral_landmarks3d.txt")
    jaw = np.loadtxt(tmp_path / "demo" / "head" / "jaw_open_landmarks3d.txt")
    assert neutral.shape == (68, 3) and jaw[57, 1] < neutral[57, 1] - 0.005
    # the default head is ICT's: its named expressions are ARKit blendshapes, and they move the face (they were
    # all-zero codes labelled smile / blink when only the generated head's names were known)
    assert summary["head"] == "ICT Face Model Light (embedded)"
    assert {"smile.obj", "blink.obj", "brow_raise.obj"} <= set(summary["meshes"])
    smile = np.loadtxt(tmp_path / "demo" / "head" / "smile_landmarks3d.txt")
    assert np.linalg.norm(smile[[48, 54]] - neutral[[48, 54]], axis=1).min() > 0.002  # mouth corners, metres
    blink = np.loadtxt(tmp_path / "demo" / "head" / "blink_landmarks3d.txt")
    assert (neutral[[37, 38, 43, 44], 1] - blink[[37, 38, 43, 44], 1]).min() > 0.002  # upper lids come down
    from PIL import Image

    for name in summary["renders"]:
        assert Image.open(tmp_path / "demo" / "head" / name).size[1] >= 224
    dense = trimesh.load(tmp_path / "demo" / "head" / "detailed_dense.obj", process=False)
    assert len(dense.vertices) > 1.5 * summary["vertices"]  # one vertex per face texel: denser than the coarse mesh


def test_demo_reconstructs_and_animates_into_its_output_folder(tmp_path, head_cache):
    """The demo's second part (offline landmarks, the fit from the mean face, the sweep) writes into
    <output>/reconstruct and <output>/animate and leaves the caller's config as it was."""
    from decalite.cli.demo import reconstruct_and_animate

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("demo", overrides=[f"output={tmp_path / 'demo'}", f"paths.cache_dir={head_cache}",
                                         "fit_steps=2", "frames=2", "renderer.image_size=64",
                                         "save.dense=false", "save.vis=false"])
    summary = reconstruct_and_animate(cfg)
    assert cfg.output == str(tmp_path / "demo") and cfg.input is None
    assert summary["reconstructed"] and not summary["failures"]
    files = [Path(f) for f in summary["reconstructed"][0]["files"]]
    assert all(f.parent.parent == tmp_path / "demo" / "reconstruct" and f.exists() for f in files)
    assert summary["animation"] and all(Path(f).parent == tmp_path / "demo" / "animate" for f in summary["animation"])
