"""Detail-stage regularisers against hand computations on tiny UV maps."""

from __future__ import annotations

import pytest
import torch

from decalite.losses.detail import (
    displacement_regularizer,
    low_frequency_displacement_loss,
    shading_smoothness_loss,
    soft_symmetry_loss,
)

# A 4x4 displacement map (one sample) and a mask over the two middle rows minus one texel.
D = torch.tensor(
    [
        [0.0, 1.0, 2.0, 3.0],
        [1.0, 2.0, 2.0, 1.0],
        [4.0, 0.0, 1.0, 1.0],
        [9.0, 9.0, 9.0, 9.0],
    ]
).view(1, 1, 4, 4)
MASK = torch.tensor(
    [
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
).view(1, 1, 4, 4)


def test_soft_symmetry_hand_computation():
    # Row 1 mirrors itself exactly: |1-1|, |2-2|, |2-2|, |1-1| = 0.
    # Row 2, columns 0..2 (column 3 is outside the mask): |4-1|, |0-1|, |1-0| = 3 + 1 + 1.
    expected = (0 + 0 + 0 + 0 + 3 + 1 + 1) / 7
    assert soft_symmetry_loss(D, MASK).item() == pytest.approx(expected)
    # Soft mask values weight texels: halve the mask on row 2 -> (0.5 * 5) / (4 + 0.5 * 3).
    soft = MASK.clone()
    soft[..., 2, :] *= 0.5
    assert soft_symmetry_loss(D, soft).item() == pytest.approx(2.5 / 5.5)


def test_soft_symmetry_zero_for_symmetric_maps_and_empty_mask():
    torch.manual_seed(0)
    half = torch.randn(3, 1, 8, 4)
    symmetric = torch.cat([half, half.flip(-1)], dim=-1)  # (3, 1, 8, 8), column j == column 7 - j
    assert soft_symmetry_loss(symmetric, torch.ones(1, 1, 8, 8)).item() == 0.0
    assert soft_symmetry_loss(torch.randn(3, 1, 8, 8), torch.zeros(1, 1, 8, 8)).item() == 0.0
    assert soft_symmetry_loss(torch.randn(3, 1, 8, 8), torch.ones(1, 1, 8, 8)).item() > 0


def test_soft_symmetry_per_sample_mask_and_detached_mirror():
    d = torch.cat([D, torch.full_like(D, 5.0)]).requires_grad_(True)  # sample 1 is constant (symmetric)
    masks = torch.cat([MASK, torch.ones_like(MASK)])  # (2, 1, 4, 4)
    # Sample 0 contributes 5 over 7 texels, sample 1 nothing over 16.
    assert soft_symmetry_loss(d, masks).item() == pytest.approx(5 / 23)
    # With a symmetric mask, flip(D) carries half of the gradient: detaching it halves the gradient.
    x = torch.randn(1, 1, 4, 4, requires_grad=True)
    ones = torch.ones(1, 1, 4, 4)
    (g_full,) = torch.autograd.grad(soft_symmetry_loss(x, ones), x)
    (g_detached,) = torch.autograd.grad(soft_symmetry_loss(x, ones, detach_mirror=True), x)
    torch.testing.assert_close(g_full, 2 * g_detached)
    value = soft_symmetry_loss(x, ones).item()
    assert soft_symmetry_loss(x, ones, detach_mirror=True).item() == pytest.approx(value)


def test_displacement_regularizer_hand_computation():
    d = D - 2.0  # row 1: -1 0 0 -1 -> |.| 1 0 0 1 ; row 2 (cols 0..2): 2 -2 -1 -> 2 2 1
    expected = (1 + 0 + 0 + 1 + 2 + 2 + 1) / 7
    assert displacement_regularizer(d, MASK).item() == pytest.approx(expected)
    assert displacement_regularizer(torch.zeros(2, 1, 4, 4), MASK).item() == 0.0
    # An all-ones mask is the official code's unmasked mean |D|.
    torch.manual_seed(1)
    x = torch.randn(2, 1, 6, 6)
    assert displacement_regularizer(x, torch.ones(1, 1, 6, 6)).item() == pytest.approx(x.abs().mean().item())


def test_shading_smoothness_hand_computation():
    # Horizontal pairs with both texels in the mask: row 1 (3 pairs), row 2 (cols 0-1, 1-2: 2 pairs).
    #   row 1: |2-1|, |2-2|, |1-2| = 1, 0, 1 ; row 2: |0-4|, |1-0| = 4, 1  -> 7 / 5
    # Vertical pairs: rows 1-2 in columns 0..2 (column 3 has row 2 outside): |4-1|, |0-2|, |1-2| = 3, 2, 1 -> 6 / 3
    assert shading_smoothness_loss(D, MASK).item() == pytest.approx(7 / 5 + 6 / 3)
    squared = (1 + 0 + 1 + 16 + 1) / 5 + (9 + 4 + 1) / 3
    assert shading_smoothness_loss(D, MASK, squared=True).item() == pytest.approx(squared)
    # Several channels: each channel's differences average in.
    two = torch.cat([D, 2 * D], dim=1)  # (1, 2, 4, 4)
    assert shading_smoothness_loss(two, MASK).item() == pytest.approx(1.5 * (7 / 5 + 6 / 3))


def test_shading_smoothness_zero_inside_constant_region():
    s = torch.full((2, 3, 6, 6), 0.7)
    s[..., 0, :] = 5.0  # a jump outside the mask
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., 1:, :] = 1
    assert shading_smoothness_loss(s, mask).item() == 0.0
    mask[..., 0, 2] = 1  # one masked texel on the jump row: its vertical pair now counts
    assert shading_smoothness_loss(s, mask).item() > 0


def test_shading_smoothness_gradient():
    x = torch.rand(1, 3, 5, 5, requires_grad=True)
    shading_smoothness_loss(x, torch.ones(1, 1, 5, 5)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", [soft_symmetry_loss, displacement_regularizer, low_frequency_displacement_loss])
def test_displacement_shape_errors(loss):
    ok_mask = torch.ones(1, 1, 4, 4)
    with pytest.raises(ValueError):
        loss(torch.zeros(1, 4, 4), ok_mask)  # no channel axis
    with pytest.raises(ValueError):
        loss(torch.zeros(1, 2, 4, 4), ok_mask)  # displacement has one channel
    with pytest.raises(ValueError):
        loss(torch.zeros(2, 1, 4, 4), torch.ones(1, 1, 8, 8))  # mask of another size
    with pytest.raises(ValueError):
        loss(torch.zeros(2, 1, 4, 4), torch.ones(3, 1, 4, 4))  # batch neither 1 nor B
    with pytest.raises(ValueError):
        loss(torch.zeros(2, 1, 4, 4), torch.ones(1, 3, 4, 4))  # mask has one channel
    with pytest.raises(ValueError):
        loss(torch.zeros(2, 1, 4, 4), torch.ones(4, 4))  # mask without batch/channel axes


def test_shading_smoothness_shape_errors():
    with pytest.raises(ValueError):
        shading_smoothness_loss(torch.zeros(3, 4, 4), torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError):
        shading_smoothness_loss(torch.zeros(1, 3, 4, 4), torch.ones(1, 1, 4, 5))


def test_low_frequency_displacement_by_hand():
    """The normalised blur keeps a constant (|c| everywhere, also at the mask's edge), turns a ramp into about its
    mean |value|, and averages a one-texel checkerboard away; texels outside the mask do not count."""
    u = 64
    mask = torch.zeros(1, 1, u, u)
    mask[..., 8:56, 12:52] = 1.0
    const = torch.full((2, 1, u, u), -0.003)
    assert torch.allclose(low_frequency_displacement_loss(const, mask), torch.tensor(0.003), rtol=1e-4)
    rows = torch.arange(u, dtype=torch.float32)
    checker = 0.002 * (-1.0) ** (rows[:, None] + rows[None, :])  # (U, U), +-2 mm alternating
    assert low_frequency_displacement_loss(checker.view(1, 1, u, u), mask) < 0.02 * 0.002
    ramp = (0.001 * (rows - 31.5) / 23.5)[:, None].expand(u, u).reshape(1, 1, u, u)  # -1..1 mm over the mask's rows
    value = low_frequency_displacement_loss(ramp, mask)
    assert torch.allclose(value, displacement_regularizer(ramp, mask), rtol=0.1)
    outside = ramp + 0.01 * (1.0 - mask)  # a large offset where the mask is 0 changes nothing
    assert torch.allclose(low_frequency_displacement_loss(outside, mask), value, atol=1e-9)


def test_low_frequency_displacement_gradient_and_zero_weight_skip():
    from decalite.losses.objective import objective

    x = (0.001 * torch.randn(2, 1, 32, 32)).requires_grad_(True)
    mask = torch.ones(1, 1, 32, 32)
    low_frequency_displacement_loss(x, mask).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    result = objective({"low_frequency_displacement": 0.0, "reg_displacement": 1.0},
                       {"displacement": x.detach(), "uv_face_mask": mask})
    assert set(result.terms) == {"reg_displacement"}
