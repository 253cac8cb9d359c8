"""Self-describing checkpoints (issue 19): a training checkpoint records the head, sizes and synthetic data it was
trained with, and decalite-evaluate / decalite-reconstruct load it with no other setting; an override that
contradicts it is an error naming both values, before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import skimage.data
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from PIL import Image

import decalite
from decalite.cli._hydra import CONF_DIR
from decalite.cli.evaluate import EvaluateConfig  # noqa: F401  (importing the tool registers its schema)
from decalite.cli.train import run
from decalite.cli.trained import TrainedSettingsError, adopt_trained_settings, trained_settings
from decalite.errors import AssetError
from decalite.nets.checkpoints import SETTINGS_KEY, read_training_record

REPO = Path(__file__).resolve().parents[2]
# Not the tools' defaults (ResNet-50, 224 px, the 256 px synthetic world), so a tool that ignored the record would
# build other networks and fail to load the weights, or score other data.
TRAINED = ["experiment=synthetic_cpu", "trainer=cpu", "model=small", "renderer.image_size=32",
           "renderer.uv_size=32", "renderer.backend=torch", "flame.n_shape=12", "data.synthetic.train_identities=2",
           "data.synthetic.val_identities=1", "data.synthetic.size=48", "data.synthetic.render_size=48",
           "data.synthetic.identities_per_shard=1", "data.num_workers=0", "data.batch_size=1", "data.k=2",
           "data.epoch_length=4", "trainer.max_steps=1", "++trainer.limit_val_batches=0", "threads=2",
           "logger=csv", "callbacks.images.every_n_steps=0", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(workspace, checkpoint) of a one-step synthetic_cpu run in a small world."""
    tmp = tmp_path_factory.mktemp("selfdescribing")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*TRAINED, f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={tmp / 'logs'}",
                                          f"paths.cache_dir={os.environ['DECALITE_CACHE']}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / "run")
    result = run(cfg)
    assert result.checkpoint and Path(result.checkpoint).is_file()
    return tmp, Path(result.checkpoint)


def _tool(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", f"decalite.cli.{module}", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)


def test_the_checkpoint_records_its_settings_and_version(trained):
    tmp, checkpoint = trained
    record = read_training_record(checkpoint)
    assert record["version"] == decalite.__version__
    settings = record["settings"]
    assert settings["flame.n_shape"] == 12 and settings["model.n_shape"] == 12  # resolved, not "${flame.n_shape}"
    assert settings["model.backbone"] == "resnet18" and settings["renderer.image_size"] == 32
    assert settings["flame.embedded"] == "ict" and settings["flame.dir"] is None
    assert settings["data.synthetic.root"] == str(tmp / "data" / "synthetic_48")
    # readable with the safe loader: plain containers only
    raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert raw[SETTINGS_KEY]["settings"] == settings


def test_a_file_without_a_record_and_a_malformed_record(tmp_path):
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"deca.x": torch.zeros(1)}}, plain)
    assert read_training_record(plain) is None
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, SETTINGS_KEY: {"version": "0"}}, bad)
    with pytest.raises(AssetError, match="bad.ckpt.*not a training record"):
        read_training_record(bad)
    with pytest.raises(AssetError, match="missing.ckpt"):
        read_training_record(tmp_path / "missing.ckpt")


def _reconstruct_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("reconstruct", overrides=list(overrides))


def test_adopt_takes_unset_values_and_refuses_contradicting_ones():
    recorded = {"flame.n_shape": 12, "model.n_shape": 12, "model.backbone": "resnet18", "renderer.image_size": 32,
                "flame.dir": None, "data.synthetic.size": 48}
    cfg = _reconstruct_cfg()
    changed = adopt_trained_settings(cfg, recorded, explicit=set(), source="x.ckpt")
    assert cfg.flame.n_shape == 12 and cfg.model.n_shape == 12 and cfg.model.backbone == "resnet18"
    assert cfg.renderer.image_size == 32
    assert "renderer.image_size: 224 -> 32" in changed
    assert OmegaConf.select(cfg, "data") is None  # a key the tool does not have is skipped

    cfg = _reconstruct_cfg("flame.n_shape=16")
    with pytest.raises(TrainedSettingsError, match=r"x.ckpt: flame.n_shape=16 is set, the checkpoint was trained "
                                                   r"with flame.n_shape=12"):
        adopt_trained_settings(cfg, recorded, explicit={"flame.n_shape"}, source="x.ckpt")
    # an explicit value equal to the record is fine
    cfg = _reconstruct_cfg("renderer.image_size=32")
    adopt_trained_settings(cfg, recorded, explicit={"renderer.image_size"}, source="x.ckpt")


def test_paths_may_point_elsewhere_but_not_to_another_head():
    cfg = _reconstruct_cfg("flame=flame2020", "flame.dir=/elsewhere/FLAME2020")
    adopt_trained_settings(cfg, {"flame.dir": "/data/FLAME2020"}, explicit={"flame.dir"}, source="x.ckpt")
    assert cfg.flame.dir == "/elsewhere/FLAME2020"  # the same files on another machine
    with pytest.raises(TrainedSettingsError, match="flame.dir"):  # FLAME files vs the embedded head
        adopt_trained_settings(cfg, {"flame.dir": None}, explicit={"flame.dir"}, source="x.ckpt")


def test_trained_settings_resolves_interpolations():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=synthetic_cpu", "flame.n_shape=20"])
    settings = trained_settings(cfg)
    assert settings["model.n_shape"] == 20 and settings["model.detail_size"] == 64
    assert settings["init_cam"] == [9.0, 0.0, 0.0] and settings["coarse_from"] == "encoder"


@pytest.mark.slow
def test_evaluate_and_reconstruct_need_only_the_checkpoint(trained, tmp_path):
    ws, checkpoint = trained
    out = tmp_path / "eval"
    proc = _tool("evaluate", f"model.checkpoint={checkpoint}", f"output={out}", "max_identities=1", "threads=2",
                 cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    scores = json.loads((out / "train_eval.json").read_text())
    assert set(scores) == {"before", "after", "mean_face"} and scores["after"]["landmark_nme"] > 0
    assert not (tmp_path / "data").exists()  # the recorded data folder was scored, not the default one rebuilt

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(photo)
    out = tmp_path / "rec"
    proc = _tool("reconstruct", f"model.checkpoint={checkpoint}", f"input={photo}", f"output={out}",
                 "landmarks=dlib", "fit_steps=2", "progress=false", "save.obj=false", "save.dense=false",
                 "save.vis=false", cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "using the settings it was trained with" in proc.stdout + proc.stderr
    codes = next((out / "astronaut").glob("*_codes.npz"))
    import numpy as np

    assert np.load(codes)["shape"].shape[-1] == 12


@pytest.mark.slow
def test_contradicting_override_and_missing_checkpoint_fail_before_work(trained, tmp_path):
    _, checkpoint = trained
    proc = _tool("reconstruct", f"model.checkpoint={checkpoint}", "flame.n_shape=16", f"input={tmp_path}",
                 f"output={tmp_path / 'rec'}", cwd=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert "flame.n_shape=16 is set, the checkpoint was trained with flame.n_shape=12" in text
    assert not (tmp_path / "rec").exists()

    proc = _tool("evaluate", f"output={tmp_path / 'eval'}", cwd=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert "model.checkpoint is not set" in text and "model.checkpoint=outputs/train/" in text
    assert "MissingMandatoryValue" not in text and not (tmp_path / "data").exists()

    proc = _tool("evaluate", f"model.checkpoint={tmp_path / 'nope.ckpt'}", f"output={tmp_path / 'eval'}", cwd=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "nope.ckpt" in text and "file not found" in text, text[-3000:]


def test_a_synthetic_world_is_recorded_whole_and_adopted():
    """Generator settings set only on the training command line (+data.synthetic.yaw=10) are recorded, and a tool
    that scores the data takes them (evaluate would otherwise refuse the data as written with other settings)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        train = compose("train", overrides=["experiment=synthetic_cpu", "+data.synthetic.yaw=10.0"])
        evaluate = compose("evaluate", overrides=[])
    settings = trained_settings(train)
    assert settings["data.synthetic.yaw"] == 10.0 and settings["data.synthetic.size"] == 80
    changed = adopt_trained_settings(evaluate, settings, explicit=set(), source="x.ckpt")
    assert evaluate.data.synthetic.yaw == 10.0 and evaluate.data.synthetic.size == 80
    assert "data.synthetic.yaw: (unset) -> 10.0" in changed
    reconstruct = _reconstruct_cfg()  # no data block: nothing of it is added
    adopt_trained_settings(reconstruct, settings, explicit=set(), source="x.ckpt")
    assert OmegaConf.select(reconstruct, "data") is None
