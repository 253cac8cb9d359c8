"""Tests of decalite.render.stages: interpolation, layouts, texturing, compositing, depth and drawing."""

from __future__ import annotations

import pytest
import torch

from decalite.geometry.camera import ndc_to_pixels
from decalite.render.raster_torch import rasterize
from decalite.render.stages import (
    composite,
    coverage,
    depth_map,
    draw_points,
    from_image_layout,
    interpolate,
    sample_texture,
    to_image_layout,
)

RGB = torch.eye(3, dtype=torch.float64)  # per-vertex colours red, green, blue


def _clip(xy: list[list[float]], z: float = 0.0) -> torch.Tensor:
    """(V, 2) NDC xy -> (1, V, 4) clip vertices with w = 1 (float64)."""
    pts = torch.tensor(xy, dtype=torch.float64)
    zw = torch.tensor([z, 1.0], dtype=torch.float64).expand(pts.shape[0], 2)
    return torch.cat([pts, zw], dim=-1)[None]


def _barycentric(tri: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Barycentric weights of 2D point p (2,) in triangle tri (3, 2), by solving the 2x2 system."""
    mat = torch.stack([tri[0] - tri[2], tri[1] - tri[2]], dim=1)  # (2, 2) columns
    w01 = torch.linalg.solve(mat, p - tri[2])
    return torch.cat([w01, 1.0 - w01.sum(0, keepdim=True)])


BIG = [[-0.9, -0.9], [0.9, -0.8], [0.1, 0.9]]
FACE = torch.tensor([[0, 1, 2]])


def test_interpolate_matches_hand_barycentrics() -> None:
    h, w = 16, 20
    rast = rasterize(_clip(BIG), FACE, (h, w))
    img = interpolate(RGB, rast, FACE)
    assert img.shape == (1, h, w, 3)
    tri = torch.tensor(BIG, dtype=torch.float64)
    checked = 0
    for row, col in [(3, 5), (8, 10), (12, 11), (2, 15)]:
        centre = torch.tensor([(col + 0.5) / w * 2 - 1, (row + 0.5) / h * 2 - 1], dtype=torch.float64)
        bary = _barycentric(tri, centre)
        assert (bary > 0).all(), "test pixel must be inside the triangle"
        torch.testing.assert_close(img[0, row, col], bary @ RGB)
        checked += 1
    assert checked == 4
    empty = rast[..., 3] == 0
    assert empty.any() and (empty.sum() < h * w)
    assert (img[empty] == 0).all()
    # Corners of the image lie outside the triangle.
    assert (img[0, 0, 0] == 0).all() and (img[0, -1, 0] == 0).all()


def test_interpolate_broadcast_and_batched_attr() -> None:
    verts = torch.cat([_clip(BIG), _clip([[0.9, 0.9], [-0.9, 0.8], [-0.1, -0.9]])], dim=0)  # (2, 3, 4)
    rast = rasterize(verts, FACE, (8, 8))
    shared = interpolate(RGB, rast, FACE)  # (V, C)
    per_batch = interpolate(RGB[None].expand(2, 3, 3), rast, FACE)  # (B, V, C)
    single = interpolate(RGB[None], rast, FACE)  # (1, V, C) broadcasts
    assert shared.shape == (2, 8, 8, 3)
    torch.testing.assert_close(shared, per_batch)
    torch.testing.assert_close(shared, single)
    covered = rast[..., 3] > 0
    torch.testing.assert_close(shared.sum(-1)[covered], torch.ones_like(shared[..., 0][covered]))


def test_interpolate_gradcheck() -> None:
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    verts = _clip([[-0.8, -0.7], [0.7, -0.9], [0.8, 0.8], [-0.9, 0.6]])
    rast = rasterize(verts, faces, (4, 4))
    assert (rast[..., 3] > 0).sum() >= 8
    attr = torch.rand(1, 4, 2, dtype=torch.float64, requires_grad=True)
    uv = rast[..., :2].clone().requires_grad_(True)
    rest = rast[..., 2:]

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return interpolate(a, torch.cat([b, rest], dim=-1), faces)

    assert torch.autograd.gradcheck(fn, (attr, uv))


def test_interpolate_gradient_reaches_vertices() -> None:
    verts = _clip(BIG).requires_grad_(True)
    img = interpolate(RGB, rasterize(verts, FACE, (8, 8)), FACE)
    img[..., 0].sum().backward()
    assert torch.isfinite(verts.grad).all() and verts.grad.abs().sum() > 0


def test_to_image_layout_flips_rows() -> None:
    h, w = 16, 16
    upper = [[-0.6, 0.2], [0.6, 0.2], [0.0, 0.9]]  # NDC y > 0: upper half of the picture
    rast = rasterize(_clip(upper), FACE, (h, w))
    raw_rows = torch.nonzero(rast[0, :, :, 3] > 0)[:, 0]
    assert (raw_rows >= h // 2).all()  # bottom-up rasterizer layout
    alpha = coverage(rast)
    assert alpha.shape == (1, 1, h, w)
    img_rows = torch.nonzero(alpha[0, 0] > 0)[:, 0]
    assert len(img_rows) > 0 and (img_rows < h // 2).all()  # top rows of the image
    # Agrees with the camera's NDC -> pixel convention.
    centroid = torch.tensor(upper, dtype=torch.float64).mean(0)
    col, row = ndc_to_pixels(centroid, h, w).floor().long().tolist()
    assert alpha[0, 0, row, col] == 1
    # Same result through interpolate + to_image_layout; the inverse undoes it.
    img = to_image_layout(interpolate(RGB, rast, FACE))
    assert img.shape == (1, 3, h, w)
    torch.testing.assert_close((img.sum(1, keepdim=True) > 0).to(alpha.dtype), alpha)
    x = torch.rand(2, 5, 7, 3)
    torch.testing.assert_close(from_image_layout(to_image_layout(x)), x)
    torch.testing.assert_close(to_image_layout(x)[:, :, 0], x[:, -1].permute(0, 2, 1))


def test_depth_map() -> None:
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    far = _clip([[-0.9, -0.9], [0.9, -0.9], [0.0, 0.9]], z=0.5)
    near = _clip([[-0.5, -0.9], [0.5, -0.9], [0.0, 0.0]], z=-0.2)
    rast = rasterize(torch.cat([far, near], dim=1), faces, (16, 16))
    depth = depth_map(rast)
    assert depth.shape == (1, 1, 16, 16)
    alpha = coverage(rast)
    assert (depth[alpha == 0] == 0).all()
    values = depth[alpha == 1]
    assert ((values - 0.5).abs() < 1e-9).logical_or((values + 0.2).abs() < 1e-9).all()
    # The nearer (smaller z) triangle covers the bottom centre of the image.
    assert depth[0, 0, 14, 8] == pytest.approx(-0.2)
    assert depth[0, 0, 3, 8] == pytest.approx(0.5)


def test_sample_texture_top_row_and_corners() -> None:
    tex = torch.zeros(1, 1, 8, 8)
    tex[:, :, 0] = 1.0
    eps = 1e-4
    uv = torch.tensor([[0.5, 1.0 - eps], [0.5, 0.5], [0.5, 0.0]]).reshape(1, 1, 3, 2)  # (3, 2) -> (1, 1, 3, 2)
    out = sample_texture(tex, uv)
    assert out.shape == (1, 1, 3, 1)
    assert out[0, 0, 0, 0] == pytest.approx(1.0, abs=1e-4)
    assert out[0, 0, 1, 0] == pytest.approx(0.0, abs=1e-6)
    assert out[0, 0, 2, 0] == pytest.approx(0.0, abs=1e-6)

    ht, wt = 4, 6
    ramp = torch.arange(ht * wt, dtype=torch.float64).reshape(1, 1, ht, wt)
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    got = sample_texture(ramp, corners.reshape(1, 1, 4, 2))[0, 0, :, 0]
    expected = torch.stack([ramp[0, 0, -1, 0], ramp[0, 0, -1, -1], ramp[0, 0, 0, 0], ramp[0, 0, 0, -1]])
    torch.testing.assert_close(got, expected)  # (0,0) bottom-left, (1,1) top-right
    # Texel centres are hit exactly: u = (j + 0.5) / Wt, v = 1 - (i + 0.5) / Ht.
    ii, jj = torch.meshgrid(torch.arange(ht), torch.arange(wt), indexing="ij")
    centres = torch.stack([(jj + 0.5) / wt, 1.0 - (ii + 0.5) / ht], dim=-1).double()[None]  # (1, Ht, Wt, 2)
    torch.testing.assert_close(sample_texture(ramp, centres)[..., 0], ramp[:, 0])


def test_sample_texture_gradients() -> None:
    tex = torch.rand(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    uv = (torch.rand(2, 3, 2, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: sample_texture(t, uv.detach()), (tex,))
    sample_texture(tex, uv).sum().backward()
    assert torch.isfinite(uv.grad).all() and uv.grad.abs().sum() > 0


def test_composite() -> None:
    fg = torch.full((1, 3, 2, 2), 0.8)
    bg = torch.full((1, 3, 2, 2), 0.2)
    alpha = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    out = composite(fg, alpha, bg)
    torch.testing.assert_close(out[0, :, 0, 0], torch.full((3,), 0.8))
    torch.testing.assert_close(out[0, :, 0, 1], torch.full((3,), 0.2))
    assert composite(fg, alpha, 1.0)[0, 0, 1, 0] == pytest.approx(1.0)
    assert composite(fg, alpha)[0, 0, 1, 0] == 0.0
    assert composite(fg, alpha)[0, 0, 1, 1] == pytest.approx(0.8)
    assert composite(fg, torch.full_like(alpha, 0.5), bg)[0, 1, 0, 0] == pytest.approx(0.5)


def test_draw_points() -> None:
    images = torch.zeros(2, 3, 8, 8)
    points = torch.tensor(
        [[[2.5, 5.2], [0.2, 0.7], [float("nan"), 1.0]], [[7.9, 7.9], [20.0, 3.0], [-5.0, -5.0]]]
    )
    out = draw_points(images, points, color=(1.0, 0.0, 0.0), radius=1)
    assert (images == 0).all()  # input untouched
    expected = torch.zeros(2, 8, 8, dtype=torch.bool)
    expected[0, 4:7, 1:4] = True  # around pixel (col 2, row 5)
    expected[0, 0:2, 0:2] = True  # clipped at the top-left corner
    expected[1, 6:8, 6:8] = True  # clipped at the bottom-right corner; off-image points skipped
    assert torch.equal(out[:, 0] == 1.0, expected)
    assert (out[:, 1:] == 0).all()
    single = draw_points(images[:1], torch.tensor([[[3.0, 6.99]]]), color=torch.tensor([0.0, 1.0, 0.5]), radius=0)
    assert torch.nonzero(single[0, 1]).tolist() == [[6, 3]]
    torch.testing.assert_close(single[0, :, 6, 3], torch.tensor([0.0, 1.0, 0.5]))


def test_wireframe_mask_marks_edges_not_interiors():
    from decalite.render.stages import wireframe_mask

    verts = torch.tensor([[[-0.9, -0.9, 0, 1], [0.9, -0.9, 0, 1], [0.9, 0.9, 0, 1], [-0.9, 0.9, 0, 1]]],
                         dtype=torch.float64)
    rast = rasterize(verts, torch.tensor([[0, 1, 2], [0, 2, 3]]), (64, 64))
    mask = wireframe_mask(rast, width=0.05)[0, 0]
    assert mask[32, 32] == 1  # on the diagonal shared edge
    assert mask[3, 32] == 1 and mask[32, 3] == 1  # near the outer edges
    assert mask[20, 20] == 0 and mask[44, 44] == 0  # triangle interiors (away from the diagonal)
    assert mask[0, 0] == 0  # outside the mesh
