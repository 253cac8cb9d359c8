"""The Renderer on the generated head (torch backend on CPU)."""

from __future__ import annotations

import pytest
import torch

from decalite.flame.generated import generate_head
from decalite.flame.layer import FlameLayer
from decalite.geometry.camera import ndc_to_image_normalized, orthographic_project
from decalite.geometry.lighting import SH_CONSTANTS, white_light
from decalite.render.renderer import Renderer

SIZE = 96


@pytest.fixture(scope="module")
def setup():
    head = generate_head(0)
    layer = FlameLayer(head.model, head.embedding, n_shape=10, n_exp=10)
    renderer = Renderer(head.uv, head.face_eye_mask, image_size=SIZE, uv_size=128, backend="torch")
    albedo = torch.from_numpy(head.albedo.mean).permute(2, 0, 1)[None]  # (H, W, 3) -> (1, 3, H, W)
    return head, layer, renderer, albedo


def _cam(b: int = 1) -> torch.Tensor:
    return torch.tensor([[6.5, 0.0, 0.01]]).repeat(b, 1)


def test_uniform_albedo_under_white_light_renders_the_albedo(setup):
    head, layer, renderer, _ = setup
    out = layer(batch_size=2)
    albedo = torch.full((2, 3, 64, 64), 0.4)
    r = renderer(out.vertices, _cam(2), albedo, white_light(2), background=1.0)
    assert r.image.shape == (2, 3, SIZE, SIZE) and r.alpha.shape == (2, 1, SIZE, SIZE)
    inside = r.alpha[:, 0] > 0
    assert 0.2 < inside.float().mean() < 0.9
    torch.testing.assert_close(r.image.permute(0, 2, 3, 1)[inside], torch.full((int(inside.sum()), 3), 0.4))
    assert (r.image.permute(0, 2, 3, 1)[~inside] == 1.0).all()  # background


def test_image_is_upright_and_landmarks_land_on_their_features(setup):
    head, layer, renderer, albedo = setup
    out = layer()
    r = renderer(out.vertices, _cam(), albedo)
    rows = torch.nonzero(r.alpha[0, 0].sum(1) > 0).squeeze(1)
    lmk = ndc_to_image_normalized(orthographic_project(out.landmarks3d, _cam())[..., :2])[0]  # +y down
    assert lmk[8, 1] > lmk[30, 1] > lmk[27, 1]  # chin below nose tip below nose root
    # The crown (max y in the model) is in the top rows; the chin landmark lies inside the silhouette.
    assert rows.min() < SIZE * 0.15
    col, row = ((lmk[30] + 1) * 0.5 * SIZE).long()
    assert r.alpha[0, 0, row, col] == 1
    assert r.depth[0, 0, row, col] > r.depth[0, 0, row, col - 12]  # the nose tip is nearer than the cheek


def test_gradients_reach_light_albedo_and_vertices(setup):
    head, layer, renderer, albedo = setup
    out = layer()
    verts = out.vertices.detach().requires_grad_(True)
    light = (white_light(1) * 0.8).requires_grad_(True)
    alb = albedo.clone().requires_grad_(True)
    r = renderer(verts, _cam(), alb, light)
    target = torch.rand_like(r.image, generator=torch.Generator().manual_seed(0))
    ((r.image - target) ** 2).mean().backward()
    for t in (verts, light, alb):
        assert t.grad is not None and t.grad.abs().sum() > 0


def test_detail_path_zero_displacement_matches_coarse_and_bumps_change_shading(setup):
    head, layer, renderer, albedo = setup
    out = layer()
    zero = torch.zeros(1, 1, 128, 128)
    light = white_light(1) * 0.6
    light[:, 3] = 0.5 / SH_CONSTANTS[3]
    r0 = renderer(out.vertices, _cam(), albedo, light, displacement=zero)
    face = (r0.alpha[0, 0] > 0) & (r0.normals[0, 2] > 0.5)
    diff = (r0.detail_shading - r0.shading).abs().amax(1)[0][face]
    assert diff.median() < 0.02
    bumps = torch.randn(1, 1, 128, 128, generator=torch.Generator().manual_seed(0)) * 1e-3
    r1 = renderer(out.vertices, _cam(), albedo, light, displacement=bumps)
    assert (r1.detail_shading - r0.detail_shading).abs().amax(1)[0][face].mean() > 0.02
    assert r1.uv_detail_normals.shape == (1, 3, 128, 128)


def test_shape_render_and_float64(setup):
    head, layer, renderer, _ = setup
    out = layer.double()(batch_size=1)
    img = renderer.render_shape(out.vertices, _cam().double()).coarse
    assert img.dtype == torch.float64 and img.shape == (1, 3, SIZE, SIZE)
    assert img.max() <= 1.0 and img[0, 0][img[0, 0] > 0].std() > 0.02  # shaded, not flat
    layer.float()


def test_one_rasterisation_serves_every_render_of_a_mesh(setup):
    """Renders that reuse a rasterisation (out.fragments) equal those that rasterise again, and do not rasterise."""
    head, layer, renderer, _ = setup
    out = layer(batch_size=1)
    cam = _cam()
    u = renderer.face_eye_mask.shape[-1]
    disp = 1e-3 * torch.sin(torch.linspace(0, 20, u))[None, None, :, None].expand(1, 1, -1, u)
    first = renderer(out.vertices, cam, displacement=disp)
    calls = []
    rasterize = renderer.rasterizer.rasterize
    renderer.rasterizer.rasterize = lambda *a, **k: calls.append(1) or rasterize(*a, **k)
    try:
        again = renderer.render_shape(out.vertices, cam, displacement=disp)
        reused = renderer.render_shape(out.vertices, cam, displacement=disp, fragments=first.fragments)
    finally:
        renderer.rasterizer.rasterize = rasterize
    assert len(calls) == 1  # only the render without fragments rasterised
    torch.testing.assert_close(reused.coarse, again.coarse, rtol=0, atol=0)
    torch.testing.assert_close(reused.detailed, again.detailed, rtol=0, atol=0)
    assert (reused.detailed - reused.coarse).abs().max() > 0.01 and reused.best is reused.detailed
    with pytest.raises(ValueError, match="fragments"):
        renderer.render_shape(out.vertices[:, :-1], cam, fragments=first.fragments)
