"""A small DECA on the generated head (untrained ResNet-18 networks) and faces rendered from known codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decalite.apps.reconstruct import Face
from decalite.cli.schema import compose_typed
from decalite.config import ReconstructConfig
from decalite.model.factory import build_deca


@pytest.fixture(scope="session")
def cfg_factory(head_cache):
    cache = head_cache

    def make(name: str = "reconstruct", *overrides: str) -> ReconstructConfig:
        return compose_typed(name, ["model=small", f"paths.cache_dir={cache}", "renderer.backend=torch",
                                    "progress=false", "device=cpu", *overrides], ReconstructConfig)
    return make


@pytest.fixture(scope="session")
def small_deca(cfg_factory):
    cfg = cfg_factory("reconstruct", "input=unused")
    deca, assets = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    deca.eval()
    return deca, assets


@pytest.fixture(scope="session")
def known_faces(small_deca):
    """Two faces rendered from known codes, as reconstruct's Face records (crop + pixel landmarks)."""
    deca, _ = small_deca
    from decalite.apps.fitting import mean_face_code

    code = mean_face_code(deca, torch.zeros(2, 68, 2))
    g = torch.Generator().manual_seed(7)
    code.shape = torch.randn(2, deca.sizes.n_shape, generator=g) * 0.8
    code.exp = torch.randn(2, deca.sizes.n_exp, generator=g) * 0.5
    code.tex = torch.randn(2, deca.sizes.n_tex, generator=g)
    code.pose = torch.tensor([[0.05, 0.25, 0.0, 0.1, 0.0, 0.0], [0.0, -0.2, 0.05, 0.05, 0.0, 0.0]])
    code.cam = torch.tensor([[8.0, 0.0, 0.02], [7.0, 0.01, 0.0]])
    with torch.no_grad():
        out = deca.decode(code, detail=False, background=0.5)
        lmk = (out.landmarks2d + 1.0) * 0.5 * deca.renderer.image_size - 0.5  # image-normalised -> pixel indices
    faces = []
    for b in range(2):
        crop = (out.render.image[b].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        faces.append(Face(f"face{b}", f"rendered:{b}", crop, lmk[b].numpy(), None, "ground-truth"))
    return faces, code
