"""Blender's own glTF importer reads decalite's GLB as it is meant: FLAME's bones, the named shape keys at the
reconstructed weights, and the posed mesh where glTF's rules put it. Needs a Python with Blender's ``bpy``
(``python3.11 -m venv blender && blender/bin/pip install bpy==4.5.*``) named by DECALITE_BLENDER_PYTHON;
skipped otherwise."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from apps.gltf_reader import pose_glb, read_glb
from decalite.apps.gltf import export_glb
from decalite.config import FlameConfig, RendererConfig
from decalite.model.factory import build_flame, build_renderer, load_assets
from decalite.types import FaceCode

BLENDER_PYTHON = os.environ.get("DECALITE_BLENDER_PYTHON")


@pytest.mark.skipif(not BLENDER_PYTHON, reason="set DECALITE_BLENDER_PYTHON to a Python with Blender's bpy "
                    "(pip install bpy==4.5.*)")
def test_blenders_gltf_importer_poses_the_glb_as_the_gltf_rules_do(tmp_path):
    cfg = FlameConfig(dir=None)
    assets = load_assets(cfg, os.environ["DECALITE_CACHE"], albedo=True)
    flame = build_flame(cfg, assets)
    renderer = build_renderer(RendererConfig(image_size=64, uv_size=64, backend="torch"), assets)
    g = torch.Generator().manual_seed(4)
    code = FaceCode(shape=torch.randn(1, flame.n_shape, generator=g), tex=torch.zeros(1, 50),
                    exp=0.6 * torch.randn(1, flame.n_exp, generator=g),
                    pose=torch.tensor([[0.1, -0.3, 0.05, 0.2, 0.0, 0.0]]), cam=torch.tensor([[6.0, 0.0, 0.0]]),
                    light=torch.zeros(1, 9, 3), detail=torch.zeros(1, 128))
    glb = export_glb(tmp_path / "face.glb", flame, renderer, assets.uv, code, None, None,
                     assets.model.expression_names)
    np.save(tmp_path / "reference.npy", pose_glb(*read_glb(glb)))
    script = Path(__file__).with_name("blender_import.py")
    proc = subprocess.run([BLENDER_PYTHON, str(script), str(glb), str(tmp_path / "reference.npy")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["bones"] == ["global", "neck", "jaw", "left_eye", "right_eye"]
    assert found["keys"][: flame.n_exp] == list(assets.model.expression_names[: flame.n_exp])
    np.testing.assert_allclose(found["values"][: flame.n_exp], code.exp[0].numpy(), atol=1e-5)
    assert found["max_distance"] < 1e-5  # metres: Blender's posed mesh is glTF's (and so FLAME's)
