"""decalite-animate and decalite-transfer end to end (astronaut photo, dlib, short fits, generated head)."""

from __future__ import annotations

import subprocess
import sys

import imageio.v2 as imageio
import numpy as np
import skimage.data
from apps.gltf_reader import accessor, read_glb
from PIL import Image


def _cli(module: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_animate_and_transfer_clis(tmp_path, head_cache):
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photo)
    flipped = tmp_path / "driver"
    flipped.mkdir()
    for i, shift in enumerate((0, 8)):
        Image.fromarray(np.roll(skimage.data.astronaut(), shift, axis=1)).save(flipped / f"frame{i}.png")
    common = ["landmarks=dlib", "model=small", "fit_steps=10", f"paths.cache_dir={head_cache}", "progress=false"]
    proc = _cli("decalite.cli.animate", f"input={photo}", f"output={tmp_path / 'anim'}", "frames=6", "save.gltf=true",
                *common, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(imageio.mimread(tmp_path / "anim" / "astronaut_animation.gif")) == 6
    assert (tmp_path / "anim" / "astronaut_animation.mp4").stat().st_size > 1000
    doc, binary = read_glb(tmp_path / "anim" / "astronaut_animation.glb")  # the sweep as the GLB's clip
    (clip,) = doc["animations"]
    assert len(accessor(doc, binary, clip["samplers"][0]["input"])) == 6
    proc = _cli("decalite.cli.transfer", f"source={photo}", f"driver={flipped}", f"output={tmp_path / 'tr'}", *common,
                "save.gltf=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    codes = np.load(tmp_path / "tr" / "astronaut_driven_by_driver_codes.npz")
    assert codes["exp"].shape[0] == 2 and np.allclose(codes["shape"][0], codes["shape"][1])
    doc, binary = read_glb(tmp_path / "tr" / "astronaut_driven_by_driver.glb")
    weights = accessor(doc, binary, doc["animations"][0]["samplers"][0]["output"]).reshape(2, -1)
    np.testing.assert_allclose(weights[:, : codes["exp"].shape[1]], codes["exp"], atol=1e-6)  # the driver's frames
    proc = _cli("decalite.cli.animate", f"output={tmp_path / 'x'}", *common, cwd=tmp_path)
    assert proc.returncode == 2 and "input=IMAGE" in proc.stdout + proc.stderr
