"""Building a DECA model from Hydra config groups (flame, model, renderer, paths)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from decalite.deca import DECA
from decalite.flame.albedo import AlbedoModel
from decalite.flame.assets import load_flame_assets
from decalite.flame.default import resolve_flame_dir
from decalite.flame.layer import FlameLayer
from decalite.nets.checkpoints import load_weights
from decalite.nets.codes import CodeSizes
from decalite.render.renderer import Renderer

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_deca(flame, model, renderer, paths, device: str | torch.device = "cpu") -> tuple[DECA, object]:
    """The DECA model and its FLAME assets, from config groups. Loads ``model.checkpoint`` when set."""
    root = resolve_flame_dir(flame.dir, cache_dir=paths.cache_dir, seed=int(flame.seed))
    assets = load_flame_assets(root)
    sizes = CodeSizes(n_shape=int(model.n_shape), n_tex=int(model.n_tex), n_exp=int(model.n_exp),
                      n_detail=int(model.n_detail))
    layer = FlameLayer(assets.model, assets.embedding, n_shape=sizes.n_shape, n_exp=sizes.n_exp,
                       contour_convention=str(flame.get("contour_convention", "deca")))
    rend = Renderer(assets.uv, assets.face_eye_mask, image_size=int(renderer.image_size),
                    uv_size=int(renderer.uv_size), backend=renderer.backend,
                    cull_backfaces=bool(renderer.cull_backfaces), antialias=bool(renderer.antialias))
    albedo = None
    if assets.albedo is None:
        log.warning("No albedo model in %s: rendering a uniform grey albedo", root)
    elif assets.albedo.n_components < sizes.n_tex:
        log.warning("The albedo model in %s has %d components, fewer than n_tex=%d: rendering a grey albedo",
                    root, assets.albedo.n_components, sizes.n_tex)
    else:
        albedo = AlbedoModel(assets.albedo, n_tex=sizes.n_tex, uv_size=int(renderer.uv_size))
    fixed = None
    if model.get("fixed_displacement"):
        fixed = torch.from_numpy(np.load(Path(model.fixed_displacement), allow_pickle=False)).float()
    deca = DECA(layer, rend, sizes, albedo, backbone=model.backbone, fixed_displacement=fixed)
    if model.get("checkpoint"):
        load_weights(model.checkpoint, {"coarse_encoder": deca.coarse_encoder, "detail_encoder": deca.detail_encoder,
                                        "detail_decoder": deca.detail_decoder})
    return deca.to(resolve_device(str(device))).eval(), assets
