"""Loss functions: zero at the target, positive elsewhere, and each normalised as DECA's release (pinned
against hand computations of DECA's formulas on tiny inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decalite.losses.landmark import (
    eye_closure_loss,
    landmark_loss,
    landmark_weights,
    lip_closure_loss,
    normalised_landmark_error,
)
from decalite.losses.photometric import photometric_loss
from decalite.losses.regularizers import l2_regularizer, white_light_regularizer


def test_landmark_losses():
    t = torch.rand(2, 68, 2)
    assert landmark_loss(t, t) == 0 and eye_closure_loss(t, t) == 0 and lip_closure_loss(t, t) == 0
    moved = t.clone()
    moved[:, 30, 0] += 0.1  # the nose tip weighs 3
    moved2 = t.clone()
    moved2[:, 0, 0] += 0.1  # a jaw point weighs 1
    assert torch.isclose(landmark_loss(moved, t), 3 * landmark_loss(moved2, t))
    assert landmark_weights().max() == 3
    closed = t.clone()
    closed[:, [37, 38, 43, 44]] = closed[:, [41, 40, 47, 46]]
    assert eye_closure_loss(closed, t) > 0 and landmark_loss(closed, t) > 0
    err = normalised_landmark_error(t + 0.01, t)
    assert err.shape == (2,) and (err > 0).all()


def test_landmark_loss_is_decas_normalisation():
    """DECA: sum over batch and points of w*c*(|dx|+|dy|) divided by 2*sum(w*c) + 1e-8; sum(w) = 94."""
    gen = np.random.default_rng(0)
    pred, target = gen.normal(size=(3, 68, 2)), gen.normal(size=(3, 68, 2))
    conf = gen.uniform(size=(3, 68))
    w = np.ones(68)
    w[5:7] = w[10:12] = 2
    w[27:36] = 1.5
    w[[30, 31, 35]] = 3
    w[48:68] = 1.5
    w[[48, 54]] = 3
    assert w.sum() == 94 == float(landmark_weights().sum())
    vis = w[None] * conf
    want = (np.abs(pred - target).sum(-1) * vis).sum() / (2 * vis.sum() + 1e-8)
    got = landmark_loss(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(conf))
    assert got.item() == pytest.approx(want, rel=1e-12)
    # With full confidence a single sample divides by 188.
    p1, t1 = torch.from_numpy(pred[:1]), torch.from_numpy(target[:1])
    want1 = (np.abs(pred[0] - target[0]).sum(-1) * w).sum() / 188.0
    assert landmark_loss(p1, t1).item() == pytest.approx(want1, rel=1e-9)


def test_closure_losses_compare_euclidean_distances():
    pred, target = torch.zeros(1, 68, 2, dtype=torch.float64), torch.zeros(1, 68, 2, dtype=torch.float64)
    pred[0, 37] = torch.tensor([0.3, 0.4])  # one eyelid pair 0.5 apart (a 3-4-5 offset), target closed
    assert eye_closure_loss(pred, target).item() == pytest.approx(0.5 / 4)
    # Same distance, other direction: DECA compares distances, not offsets.
    target[0, 37] = torch.tensor([0.0, -0.5])
    assert eye_closure_loss(pred, target).item() == pytest.approx(0.0, abs=1e-7)
    pred[0, 62] = torch.tensor([0.0, 0.2])
    assert lip_closure_loss(pred, target).item() == pytest.approx(0.2 / 3)
    with pytest.raises(ValueError, match="68"):
        eye_closure_loss(pred[:, :60], target[:, :60])


def test_photometric_is_decas_mean_over_all_pixels():
    gen = torch.Generator().manual_seed(0)
    img, rendered = torch.rand(2, 3, 4, 5, generator=gen), torch.rand(2, 3, 4, 5, generator=gen)
    skin = (torch.rand(2, 1, 4, 5, generator=gen) > 0.5).float()
    face = torch.rand(2, 1, 4, 5, generator=gen)
    want = sum(
        abs(skin[b, 0, y, x] * (rendered[b, c, y, x] * face[b, 0, y, x] - img[b, c, y, x]))
        for b in range(2) for c in range(3) for y in range(4) for x in range(5)
    ) / (2 * 3 * 4 * 5)
    assert photometric_loss(rendered, img, skin, face).item() == pytest.approx(float(want), rel=1e-6)
    other = img.clone()
    other[..., 2:] = 0
    half = torch.zeros(1, 1, 4, 5)
    half[..., :2] = 1
    assert photometric_loss(other[:1], img[:1], half) == 0  # differences only outside the skin mask
    with pytest.raises(ValueError, match="mask"):
        photometric_loss(rendered, img, skin[:, :, :2])


def test_regularisers_are_decas():
    code = torch.tensor([[1.0, 2.0], [3.0, 0.5]])
    assert l2_regularizer(code).item() == pytest.approx((1 + 4 + 9 + 0.25) / 2)  # batch sum / 2
    white = torch.ones(1, 9, 3)
    assert white_light_regularizer(white) == 0
    light = torch.zeros(1, 9, 3)
    light[0, 0] = torch.tensor([0.0, 3.0, 0.0])  # mean 1: squares 1, 4, 1 over 27 values
    assert white_light_regularizer(light).item() == pytest.approx(6 / 27)
    with pytest.raises(ValueError):
        l2_regularizer(torch.ones(3))


def test_robust_landmark_loss_hand_value_and_bounded_outlier_pull():
    from decalite.losses.landmark import robust_landmark_loss
    from decalite.losses.objective import objective

    target = torch.zeros(1, 68, 2)
    pred = torch.zeros(1, 68, 2)
    pred[0, 0] = torch.tensor([0.03, 0.04])  # d = 0.05
    pred[0, 30] = torch.tensor([0.01, 0.0])  # d = 0.01
    w = torch.ones(68)
    s = 0.02
    want = (s * 0.0025 / (0.0025 + s * s) + s * 0.0001 / (0.0001 + s * s)) / 68
    assert robust_landmark_loss(pred, target, weights=w, scale=s).item() == pytest.approx(want, rel=1e-5)
    # A point far off (a detector outlier) pulls hardly at all; under L1 it pulls as hard as any other point.
    far = torch.zeros(1, 68, 2)
    far[0, 5, 0] = 0.5
    far[0, 6, 0] = 0.01
    far.requires_grad_(True)
    robust_landmark_loss(far, target, weights=w).backward()
    assert far.grad[0, 5, 0].abs() < 0.02 * far.grad[0, 6, 0].abs()
    far.grad = None
    landmark_loss(far, target, weights=w).backward()
    assert far.grad[0, 5, 0].abs() == pytest.approx(far.grad[0, 6, 0].abs().item())
    # Registered under its name (a weight of 0 skips it).
    context = {"landmarks": pred, "target_landmarks": target, "landmark_confidence": None, "landmark_scale": None}
    assert objective({"landmark_robust": 1.0}, context).terms["landmark_robust"].item() > 0
    # Fits anneal the scale (graduated non-convexity): wide at the start, the final scale at the end.
    from decalite.losses.landmark import ROBUST_SCALE, ROBUST_SCALE_START, robust_scale_at

    assert robust_scale_at(0.0) == pytest.approx(ROBUST_SCALE_START) and robust_scale_at(1.0) == pytest.approx(ROBUST_SCALE)
    assert ROBUST_SCALE < robust_scale_at(0.5) < ROBUST_SCALE_START
