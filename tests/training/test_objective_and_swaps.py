"""The loss objective (registry, zero-weight skip, typos) and the within-identity swap permutation."""

from __future__ import annotations

import pytest
import torch

from decalite.data.swaps import within_group_permutation
from decalite.losses.landmark import landmark_loss
from decalite.losses.objective import REGISTRY, check_weights, objective


def test_objective_weights_and_skips():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 68, 2, generator=gen), torch.rand(2, 68, 2, generator=gen)
    shape = torch.rand(2, 5, generator=gen)
    context = {"landmarks": pred, "target_landmarks": target, "landmark_confidence": None, "shape": shape}
    # photometric has weight 0: its inputs are absent and it must not be computed.
    result = objective({"landmark": 2.0, "reg_shape": 0.5, "photometric": 0.0}, context)
    assert set(result.terms) == {"landmark", "reg_shape"}
    torch.testing.assert_close(result.terms["landmark"], landmark_loss(pred, target))
    torch.testing.assert_close(result.total, 2.0 * landmark_loss(pred, target) + 0.5 * (shape**2).sum() / 2)
    with pytest.raises(ValueError, match="photometric"):
        objective({"photometric": 1.0}, context)
    with pytest.raises(KeyError, match="landmrk"):
        check_weights({"landmrk": 1.0})
    assert objective({"landmark": 0.0}, context).total == 0


def test_every_coarse_and_detail_term_is_registered():
    for name in ("landmark", "eye_closure", "lip_closure", "photometric", "identity", "reg_shape", "reg_exp",
                 "reg_tex", "reg_light", "photometric_detail", "mrf", "reg_displacement", "symmetry",
                 "shading_smoothness"):
        assert name in REGISTRY


@pytest.mark.parametrize("groups,k", [(3, 4), (2, 2), (5, 3)])
def test_swaps_stay_within_identity_and_move_every_image(groups, k):
    for seed in range(5):
        perm = within_group_permutation(groups, k, torch.Generator().manual_seed(seed))
        assert sorted(perm.tolist()) == list(range(groups * k))  # a permutation
        own = torch.arange(groups * k)
        assert (perm // k == own // k).all()  # same identity group
        assert (perm != own).all()  # never an image's own code


def test_single_image_groups_keep_their_codes():
    assert torch.equal(within_group_permutation(4, 1), torch.arange(4))
