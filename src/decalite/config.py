"""Typed configuration of the shared config groups (``conf/flame``, ``conf/renderer``, ``conf/model``,
``conf/paths``), declared once.

Plain dataclasses: library code takes them (or plain values), never an OmegaConf object. ``decalite.cli``
registers them as Hydra structured configs, so the YAML files are validated against these fields (a misspelt
key is rejected by name) and a command-line override is converted to the declared type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# Optional[...] rather than "X | None": OmegaConf evaluates these annotations to check values.


@dataclass
class FlameConfig:
    """Which FLAME-format head to load and how much of it to use (``conf/flame``).

    Attributes:
        dir: a folder holding the licensed FLAME 2020 files; None uses decalite's generated head.
        seed: the generated head's seed.
        n_shape: identity components used (<= 300).
        n_exp: expression components used (<= 100 in FLAME 2020).
        n_tex: albedo components used.
        contour_convention: yaw-bin layout of the dynamic contour: "deca" (landmark_embedding.npy) or "smplx".
    """

    dir: Optional[str] = None
    seed: int = 0
    n_shape: int = 100
    n_exp: int = 50
    n_tex: int = 50
    contour_convention: str = "deca"


@dataclass
class RendererConfig:
    """The differentiable renderer (``conf/renderer``).

    Attributes:
        backend: "auto" (nvdiffrast on CUDA when importable, else decalite's torch rasterizer), "torch" or
            "nvdiffrast".
        image_size: H = W of the rendered images (pixels).
        uv_size: U, side of the UV maps.
        cull_backfaces: "auto" (cull only on a closed mesh), "true" or "false".
        antialias: nvdiffrast's antialiasing (nvdiffrast only).
    """

    backend: str = "auto"
    image_size: int = 224
    uv_size: int = 256
    cull_backfaces: str = "auto"
    antialias: bool = False


@dataclass
class ModelConfig:
    """DECA's networks (``conf/model``).

    Attributes:
        backbone: encoder backbone ("resnet50" as DECA, "resnet18" for small CPU runs).
        n_shape, n_exp, n_tex: code sizes (the YAML ties them to the flame group's).
        n_detail: size of the detail code.
        checkpoint: an official ``deca_model.tar`` or a decalite checkpoint; None: untrained networks.
        fixed_displacement: DECA's ``fixed_displacement_256.npy``; None: the FLAME folder's file when present.
    """

    backbone: str = "resnet50"
    n_shape: int = 100
    n_exp: int = 50
    n_tex: int = 50
    n_detail: int = 128
    checkpoint: Optional[str] = None
    fixed_displacement: Optional[str] = None


@dataclass
class PathsConfig:
    """Machine paths (``conf/paths``); code never holds a path.

    Attributes:
        cache_dir: where generated assets (the generated head) are kept.
        data_dir: datasets.
        log_dir: training runs.
        output_dir: this run's folder (set by Hydra).
    """

    cache_dir: Optional[str] = None
    data_dir: Optional[str] = None
    log_dir: Optional[str] = None
    output_dir: Optional[str] = None
