"""The composed DECA model on the generated head, with freshly initialised (untrained) networks."""

from __future__ import annotations

import pytest
import torch

from decalite.flame.albedo import AlbedoModel
from decalite.flame.generated import generate_head
from decalite.flame.layer import FlameLayer
from decalite.model.deca import DECA
from decalite.nets.codes import CodeSizes
from decalite.render.renderer import Renderer


@pytest.fixture(scope="module")
def head():
    return generate_head(0)


def _deca(head, albedo: bool) -> DECA:
    sizes = CodeSizes(n_shape=20, n_tex=10, n_exp=10)
    flame = FlameLayer(head.model, head.embedding, n_shape=20, n_exp=10)
    renderer = Renderer(head.uv, head.face_eye_mask, image_size=64, uv_size=256, backend="torch")
    alb = AlbedoModel(head.albedo, n_tex=10, uv_size=256) if albedo else None
    return DECA(flame, renderer, sizes, alb, backbone="resnet18").eval()


@pytest.mark.parametrize("albedo", [True, False])
def test_untrained_deca_encodes_and_decodes(head, albedo):
    deca = _deca(head, albedo)
    images = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        code = deca.encode(images)
        # Untrained encoders give arbitrary codes; place the head in view for the render check.
        code.cam = torch.tensor([[6.0, 0.0, 0.0]]).repeat(2, 1)
        code.pose = torch.zeros(2, 6)
        out = deca.decode(code, background=1.0)
    assert code.shape.shape == (2, 20) and code.detail.shape == (2, 128) and code.light.shape == (2, 9, 3)
    assert out.vertices.shape == (2, head.model.n_vertices, 3)
    assert out.landmarks2d.shape == (2, 68, 2) and out.displacement.shape == (2, 1, 256, 256)
    assert out.render.image.shape == (2, 3, 64, 64) and out.render.image_detail is not None
    assert (out.albedo is None) != albedo
    assert out.render.alpha.mean() > 0.1


def test_expression_changes_the_displacement(head):
    deca = _deca(head, False)
    with torch.no_grad():
        code = deca.encode(torch.rand(1, 3, 224, 224))
        d0 = deca.displacement(code)
        code.exp = code.exp + 1.0
        d1 = deca.displacement(code)
    assert (d1 - d0).abs().max() > 0


def test_mismatched_sizes_are_refused(head):
    flame = FlameLayer(head.model, head.embedding, n_shape=20, n_exp=10)
    renderer = Renderer(head.uv, None, image_size=32, uv_size=64, backend="torch")
    with pytest.raises(ValueError, match="n_shape"):
        DECA(flame, renderer, CodeSizes(), backbone="resnet18")
