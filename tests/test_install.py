"""decalite installs from a wheel and its tools run from any folder (not only from an editable install of a clone).

The wheel is built from a copy of the package's sources (the clone stays clean) and installed without its
dependencies, nothing downloaded, into a fresh virtual environment that sees this environment's packages through a
path file (the editable install's own path file is not processed there, so ``decalite`` comes from the wheel).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def installed(tmp_path_factory, head_cache):
    """(bin folder, environment) of a fresh venv holding only decalite's wheel."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "--wheel-dir", str(root / "dist"), str(source)], cwd=root, env=env)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (root / "dist").glob("decalite-*.whl")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root, env=env)
    assert made.returncode == 0, made.stderr[-2000:]
    python = venv / "bin" / "python"
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                 str(wheel)], cwd=root, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=root, env=env).stdout.strip()
    # This environment's packages (torch, hydra, ...) after the venv's own: the wheel's decalite comes first.
    Path(purelib, "project_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return wheel, venv / "bin", env


def test_wheel_ships_configs_and_head_not_tests(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "decalite/conf/train.yaml" in names and "decalite/conf/experiment/synthetic_cpu.yaml" in names
    assert any(n.startswith("decalite/flame/ict/data/") and n.endswith(".npz") for n in names)
    assert any(n.startswith("decalite/flame/ict/data/") and "LICENSE" in n.upper() for n in names), \
        "the embedded head's MIT licence must ship beside its data"
    assert not any(n.startswith("tests/") for n in names)
    # decalite-view's page works offline from the wheel: the bundle and three.js's licence ship with it
    assert {"decalite/view/static/index.html", "decalite/view/static/viewer.js",
            "decalite/view/static/three.js-LICENSE.txt"} <= set(names)
    assert not any("node_modules" in n for n in names)


def test_installed_tools_run_from_an_empty_folder(installed, tmp_path):
    _, bin_dir, env = installed
    where = _run([str(bin_dir / "python"), "-c", "import decalite; print(decalite.__file__)"], tmp_path, env)
    assert where.returncode == 0 and str(bin_dir.parent) in where.stdout, where.stdout + where.stderr
    job = _run([str(bin_dir / "decalite-reconstruct"), "--cfg", "job"], tmp_path, env)
    assert job.returncode == 0 and "landmarks:" in job.stdout, job.stderr[-2000:]
    train = _run([str(bin_dir / "decalite-train"), "experiment=synthetic_cpu", "--cfg", "job"], tmp_path, env)
    assert train.returncode == 0, train.stderr[-2000:]
    assert "name: synthetic_cpu" in train.stdout and "embedded: ict" in train.stdout
    assert list(tmp_path.iterdir()) == [], "--cfg job writes nothing"


def test_installed_reconstruct_runs_a_photo(installed, tmp_path, head_cache):
    _, bin_dir, env = installed
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "astronaut.jpg")
    proc = _run([str(bin_dir / "decalite-reconstruct"), "input=astronaut.jpg", "output=out", "landmarks=dlib",
                 "fit_steps=0", "model=small", f"paths.cache_dir={head_cache}", "progress=false",
                 "save.dense=false", "save.vis=false"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["name"] for r in summary["reconstructed"]] == ["astronaut"]
    assert (tmp_path / "out" / "astronaut" / "astronaut.obj").exists()
