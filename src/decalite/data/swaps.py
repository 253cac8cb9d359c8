"""Within-identity swaps for DECA's consistency losses.

The batch holds B identity groups of K images, flattened group by group to N = B*K. A swap permutation sends
every image to another image of the same identity, so the second half of a doubled batch renders each image with
the shape (coarse stage) or detail code (detail stage) of another photo of the same person. Unlike the official
code (``np.random.permutation`` per group, which may keep an image's own code), every image gets another's.
"""

from __future__ import annotations

import torch


def within_group_permutation(groups: int, k: int, generator: torch.Generator | None = None,
                             device: torch.device | None = None) -> torch.Tensor:
    """(B*K,) long indices: for image ``g*K + i`` the index ``g*K + (i + r_g) % K`` with a random r_g in 1..K-1.

    A rotation within each group by a non-zero offset is a derangement that never leaves its group. K = 1
    gives the identity (nothing to swap with).
    """
    base = torch.arange(groups * k).view(groups, k)  # (B, K)
    if k == 1:
        return base.flatten().to(device)
    shift = torch.randint(1, k, (groups, 1), generator=generator)  # (B, 1)
    within = (torch.arange(k)[None] + shift) % k  # (B, K)
    return (base[:, :1] + within).flatten().to(device)
