"""Building a DECA model from Hydra config groups (flame, model, renderer, paths)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from decalite.deca import DECA
from decalite.flame.albedo import AlbedoModel
from decalite.flame.assets import FLAME_FILES, load_fixed_displacement, load_flame_assets
from decalite.flame.default import resolve_flame_dir
from decalite.flame.layer import FlameLayer
from decalite.nets.checkpoints import OFFICIAL_FORMAT, load_weights
from decalite.nets.codes import CodeSizes
from decalite.render.renderer import Renderer

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fixed_displacement(model, assets) -> np.ndarray | None:
    """DECA's fixed displacement map: ``model.fixed_displacement`` when set, else the FLAME folder's file, else None."""
    if model.get("fixed_displacement"):
        return load_fixed_displacement(model.fixed_displacement)
    return assets.fixed_displacement


def build_deca(flame, model, renderer, paths, device: str | torch.device = "cpu") -> tuple[DECA, object]:
    """The DECA model and its FLAME assets, from config groups. Loads ``model.checkpoint`` when set."""
    root = resolve_flame_dir(flame.dir, cache_dir=paths.cache_dir, seed=int(flame.seed))
    assets = load_flame_assets(root)
    sizes = CodeSizes(n_shape=int(model.n_shape), n_tex=int(model.n_tex), n_exp=int(model.n_exp),
                      n_detail=int(model.n_detail))
    layer = FlameLayer(assets.model, assets.embedding, n_shape=sizes.n_shape, n_exp=sizes.n_exp,
                       contour_convention=str(flame.get("contour_convention", "deca")))
    fixed = fixed_displacement(model, assets)
    rend = Renderer(assets.uv, assets.face_eye_mask, image_size=int(renderer.image_size),
                    uv_size=int(renderer.uv_size), backend=renderer.backend,
                    cull_backfaces=renderer.cull_backfaces, antialias=bool(renderer.antialias),
                    fixed_displacement=fixed)
    albedo = None
    if assets.albedo is None:
        log.warning("No albedo model in %s: rendering a uniform grey albedo", root)
    elif assets.albedo.n_components < sizes.n_tex:
        log.warning("The albedo model in %s has %d components, fewer than n_tex=%d: rendering a grey albedo",
                    root, assets.albedo.n_components, sizes.n_tex)
    else:
        albedo = AlbedoModel(assets.albedo, n_tex=sizes.n_tex, uv_size=int(renderer.uv_size))
    deca = DECA(layer, rend, sizes, albedo, backbone=model.backbone)
    if model.get("checkpoint"):
        report = load_weights(model.checkpoint, {"coarse_encoder": deca.coarse_encoder,
                                                 "detail_encoder": deca.detail_encoder,
                                                 "detail_decoder": deca.detail_decoder})
        if report.format == OFFICIAL_FORMAT and fixed is None:
            # The official decoder was trained with the map added to every prediction: require it (the error
            # names the file and where it comes from).
            load_fixed_displacement(Path(assets.root) / FLAME_FILES["fixed_displacement"])
    return deca.to(resolve_device(str(device))).eval(), assets
