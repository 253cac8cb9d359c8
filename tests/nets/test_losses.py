"""Loss functions: zero at the target, positive elsewhere, weighted as documented."""

from __future__ import annotations

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


def test_photometric_and_regularisers():
    img = torch.rand(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1
    other = img.clone()
    other[..., 4:] = 0  # differences only outside the mask
    assert photometric_loss(other, img, mask) == 0
    assert torch.isclose(photometric_loss(img + 0.1, img, mask), torch.tensor(0.1))
    assert l2_regularizer(torch.ones(2, 5)) == 5
    white = torch.ones(1, 9, 3)
    assert white_light_regularizer(white) == 0 and white_light_regularizer(torch.rand(1, 9, 3)) > 0
