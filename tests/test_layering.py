"""The package's layering (pyproject.toml, [tool.importlinter]) holds: no module imports a layer above its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import decalite

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]["contracts"]


def test_lint_imports_passes() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def _layered(container: str) -> set[str]:
    (contract,) = [c for c in _contracts() if c["type"] == "layers" and c["containers"] == [container]]
    return {name.strip().strip("()") for layer in contract["layers"] for name in layer.replace(":", "|").split("|")}


def _modules(package: Path) -> set[str]:
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    return modules | {p.parent.name for p in package.glob("*/__init__.py")}


@pytest.mark.parametrize("container", ["decalite", "decalite.apps", "decalite.model"])
def test_every_module_is_in_a_layer(container: str) -> None:
    """Every module of decalite, and of the packages with their own layers (apps, model), sits in a layer."""
    package = Path(decalite.__file__).parent.joinpath(*container.split(".")[1:])
    missing = _modules(package) - _layered(container)
    assert not missing, f"modules of {container} outside every layer: {sorted(missing)}"
