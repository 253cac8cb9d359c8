"""Tests of decalite.geometry.camera (DECA's orthographic camera)."""

from __future__ import annotations

import torch

from decalite.geometry.camera import ndc_to_pixels, orthographic_project, pixels_to_ndc, to_clip


def test_orthographic_project_known_points() -> None:
    pts = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.2, 0.3], [-0.5, 0.5, -1.0]]])
    cam = torch.tensor([[2.0, 0.1, -0.1]])
    out = orthographic_project(pts, cam)
    expected = torch.tensor([[[0.2, -0.2, 0.0], [0.4, 0.2, 0.6], [-0.8, 0.8, -2.0]]])
    assert out.shape == (1, 3, 3)
    torch.testing.assert_close(out, expected)


def test_orthographic_project_batched_cameras() -> None:
    pts = torch.ones(2, 4, 3)
    cam = torch.tensor([[1.0, 0.0, 0.0], [3.0, 1.0, 2.0]])
    out = orthographic_project(pts, cam)
    torch.testing.assert_close(out[0], torch.ones(4, 3))
    torch.testing.assert_close(out[1], torch.tensor([6.0, 9.0, 3.0]).expand(4, 3))


def test_corners_and_centre() -> None:
    h, w = 48, 64
    ndc = torch.tensor([[-1.0, 1.0], [1.0, -1.0], [0.0, 0.0]])
    px = ndc_to_pixels(ndc, h, w)
    expected = torch.tensor([[0.0, 0.0], [float(w), float(h)], [w / 2, h / 2]])
    torch.testing.assert_close(px, expected)


def test_pixel_centre_convention() -> None:
    h, w = 4, 4
    # centre of the top-left pixel (0.5, 0.5) is up-left of the NDC origin
    ndc = pixels_to_ndc(torch.tensor([0.5, 0.5]), h, w)
    torch.testing.assert_close(ndc, torch.tensor([-0.75, 0.75]))


def test_ndc_pixels_round_trip() -> None:
    gen = torch.Generator().manual_seed(0)
    ndc = torch.rand(2, 10, 2, generator=gen, dtype=torch.float64) * 2 - 1
    px = ndc_to_pixels(ndc, 224, 160)
    assert px.shape == ndc.shape
    torch.testing.assert_close(pixels_to_ndc(px, 224, 160), ndc)
    torch.testing.assert_close(ndc_to_pixels(pixels_to_ndc(px, 224, 160), 224, 160), px)


def test_to_clip_depth_order() -> None:
    ndc = torch.tensor([[[0.1, 0.2, 0.5], [0.1, 0.2, -0.5]]])  # first is nearer
    clip = to_clip(ndc)
    assert clip.shape == (1, 2, 4)
    torch.testing.assert_close(clip[..., :2], ndc[..., :2])
    torch.testing.assert_close(clip[..., 3], torch.ones(1, 2))
    assert clip[0, 0, 2] < clip[0, 1, 2]
    torch.testing.assert_close(clip[..., 2], -0.1 * ndc[..., 2])


def test_camera_gradcheck() -> None:
    gen = torch.Generator().manual_seed(2)
    pts = torch.randn(2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    cam = torch.randn(2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, c: to_clip(orthographic_project(p, c)), (pts, cam))
