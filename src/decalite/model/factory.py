"""Builders: modules from the config groups (flame, renderer, model, paths). The one place that builds them.

Builders build and return modules on the CPU in their constructors' default mode; callers place them
(``.to(device)``) and choose ``.eval()`` or ``.train()``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from decalite.config import FlameConfig, ModelConfig, PathsConfig, RendererConfig
from decalite.flame.albedo import AlbedoModel
from decalite.flame.assets import FLAME_FILES, FlameAssets, load_fixed_displacement, load_flame_assets
from decalite.flame.default import resolve_flame_dir
from decalite.flame.layer import FlameLayer
from decalite.model.deca import DECA
from decalite.nets.checkpoints import OFFICIAL_FORMAT, load_weights
from decalite.nets.codes import CodeSizes
from decalite.render.renderer import Renderer

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_assets(flame: FlameConfig, cache_dir: str | Path | None = None, **kwargs) -> FlameAssets:
    """The FLAME-format assets the flame group names: ``flame.dir``, or the embedded head ``flame.embedded``
    names (written once into ``cache_dir``). ``kwargs`` go to :func:`decalite.flame.assets.load_flame_assets` (albedo, n_tex, ...)."""
    root = resolve_flame_dir(flame.dir, cache_dir=cache_dir, seed=int(flame.seed), embedded=str(flame.embedded))
    return load_flame_assets(root, **kwargs)


def build_flame(flame: FlameConfig, assets: FlameAssets) -> FlameLayer:
    """The FLAME layer of ``assets`` with the flame group's sizes and contour convention."""
    return FlameLayer(assets.model, assets.embedding, n_shape=int(flame.n_shape), n_exp=int(flame.n_exp),
                      contour_convention=str(flame.contour_convention))


def _cull_backfaces(value: bool | str) -> bool | str:
    """The renderer group's ``cull_backfaces`` ("auto", or a boolean as the config's string) for Renderer."""
    text = str(value).strip().lower()
    return {"true": True, "false": False}.get(text, text)


def build_renderer(renderer: RendererConfig, assets: FlameAssets,
                   fixed_displacement: np.ndarray | None = None) -> Renderer:
    """The renderer for ``assets``' UV layout and face-eye mask, configured by the renderer group.

    Args:
        renderer: the renderer group. assets: the FLAME-format assets.
        fixed_displacement: (256, 256) DECA's fixed displacement map added to every detail prediction, or None
            (see :func:`fixed_displacement`).
    """
    return Renderer(assets.uv, assets.face_eye_mask, image_size=int(renderer.image_size),
                    uv_size=int(renderer.uv_size), backend=str(renderer.backend),
                    cull_backfaces=_cull_backfaces(renderer.cull_backfaces), antialias=bool(renderer.antialias),
                    fixed_displacement=fixed_displacement)


def load_flame_layer(flame: FlameConfig | None = None, cache_dir: str | Path | None = None) -> FlameLayer:
    """The FLAME layer alone (default: the embedded ICT head with 100 shape and 44 expression components)."""
    flame = flame or FlameConfig(dir=None)
    return build_flame(flame, load_assets(flame, cache_dir, albedo=False))


def fixed_displacement(model: ModelConfig, assets: FlameAssets) -> np.ndarray | None:
    """DECA's fixed displacement map: ``model.fixed_displacement`` when set, else the FLAME folder's file, else None."""
    if model.fixed_displacement:
        return load_fixed_displacement(model.fixed_displacement)
    return assets.fixed_displacement


def build_deca(flame: FlameConfig, model: ModelConfig, renderer: RendererConfig,
               paths: PathsConfig) -> tuple[DECA, FlameAssets]:
    """The DECA model and its FLAME assets, from config groups. Loads ``model.checkpoint`` when set.

    The model is returned on the CPU in training mode; callers place it and call ``.eval()`` for inference.
    """
    if (int(model.n_shape), int(model.n_exp)) != (int(flame.n_shape), int(flame.n_exp)):
        raise ValueError(f"model.n_shape / n_exp ({model.n_shape}, {model.n_exp}) must equal flame.n_shape / n_exp "
                         f"({flame.n_shape}, {flame.n_exp}): the encoder predicts the FLAME layer's codes")
    assets = load_assets(flame, paths.cache_dir)
    sizes = CodeSizes(n_shape=int(model.n_shape), n_tex=int(model.n_tex), n_exp=int(model.n_exp),
                      n_detail=int(model.n_detail))
    fixed = fixed_displacement(model, assets)
    albedo = None
    if assets.albedo is None:
        log.warning("No albedo model in %s: rendering a uniform grey albedo", assets.root)
    elif assets.albedo.n_components < sizes.n_tex:
        log.warning("The albedo model in %s has %d components, fewer than n_tex=%d: rendering a grey albedo",
                    assets.root, assets.albedo.n_components, sizes.n_tex)
    else:
        albedo = AlbedoModel(assets.albedo, n_tex=sizes.n_tex, uv_size=int(renderer.uv_size))
    deca = DECA(build_flame(flame, assets), build_renderer(renderer, assets, fixed), sizes, albedo,
                backbone=model.backbone, detail_size=int(model.detail_size))
    if model.checkpoint:
        report = load_weights(model.checkpoint, deca.networks())
        if report.format == OFFICIAL_FORMAT and fixed is None:
            # The official decoder was trained with the map added to every prediction: require it (the error
            # names the file and where it comes from).
            load_fixed_displacement(Path(assets.root) / FLAME_FILES["fixed_displacement"])
    return deca, assets
