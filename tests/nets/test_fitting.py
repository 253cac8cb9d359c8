"""Analysis-by-synthesis fitting on faces rendered from known codes (generated head, untrained networks)."""

from __future__ import annotations

import torch

from decalite.deca import DECA
from decalite.fitting import FitConfig, fit, mean_face_code
from decalite.flame.albedo import AlbedoModel
from decalite.flame.layer import FlameLayer
from decalite.flame.synthetic import generate_head
from decalite.nets.codes import CodeSizes
from decalite.render.renderer import Renderer
from decalite.types import FaceCode


def _setup():
    head = generate_head(0)
    sizes = CodeSizes(n_shape=20, n_tex=10, n_exp=10)
    deca = DECA(FlameLayer(head.model, head.embedding, 20, 10),
                Renderer(head.uv, head.face_eye_mask, image_size=64, uv_size=64, backend="torch"),
                sizes, AlbedoModel(head.albedo, 10, uv_size=64), backbone="resnet18").eval()
    g = torch.Generator().manual_seed(3)
    truth = mean_face_code(deca, torch.zeros(2, 68, 2))
    truth.shape = torch.randn(2, 20, generator=g)
    truth.exp = torch.randn(2, 10, generator=g) * 0.8
    truth.pose = torch.tensor([[0.1, 0.3, 0.0, 0.15, 0.0, 0.0], [-0.1, -0.25, 0.05, 0.05, 0.0, 0.0]])
    truth.cam = torch.tensor([[6.0, 0.01, 0.02], [5.0, -0.02, 0.0]])
    return deca, truth


def test_fitting_landmarks_of_known_faces_from_the_mean_face():
    deca, truth = _setup()
    with torch.no_grad():
        target = deca.geometry(truth)[1]
    result = fit(deca, torch.zeros(2, 3, 64, 64), target, cfg=FitConfig(steps=150, lr=0.01))
    assert (result.error_before > 0.05).all()
    assert (result.error_after < 0.3 * result.error_before).all()
    assert result.error_after.max() < 0.03
    assert result.history[-1] < result.history[0]


def test_fitting_with_the_photometric_term_reduces_the_image_error():
    deca, truth = _setup()
    truth.tex = torch.randn(2, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = deca.decode(truth, detail=False)
    masks = target.render.alpha
    init = mean_face_code(deca, target.landmarks2d)
    cfg = FitConfig(steps=80, lr=0.02, photometric_after=0.3)
    result = fit(deca, target.render.image, target.landmarks2d, masks, init=init, cfg=cfg)
    with torch.no_grad():
        start = deca.decode(FaceCode(**{**init.__dict__}), detail=False).render.image
        end = deca.decode(result.code, detail=False).render.image
    err = lambda img: ((img - target.render.image).abs() * masks).sum() / masks.sum()  # noqa: E731
    assert err(end) < 0.6 * err(start)


def test_fit_defaults_equal_conf_loss_fit():
    """conf/loss/fit.yaml (the command line's weights) and DEFAULT_FIT_TERMS (the library's) must not drift."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from decalite.cli._hydra import CONF_DIR
    from decalite.fitting import DEFAULT_FIT_TERMS

    assert dict(OmegaConf.load(Path(CONF_DIR) / "loss" / "fit.yaml").terms) == DEFAULT_FIT_TERMS
