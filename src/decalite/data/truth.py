"""The true codes of synthetic batches: what an oracle gives a stage in place of an encoder.

Synthetic shards store each image's ground-truth codes (:mod:`decalite.synth.generator`); the dataset carries
the camera through its crop (``image_cam``, :mod:`decalite.data.datamodule`). An oracle run (the issue-18
"oracle-coarse" detail stage: the true coarse codes given, only the details learned) checks that a world is
learnable before the self-supervised pipeline is blamed.
"""

from __future__ import annotations

import torch

from decalite.types import FaceCode

#: The flattened batch's keys a true code is made of.
TRUE_CODE_KEYS = ("shape", "tex", "exp", "pose", "image_cam", "light")


def _fit(values: torch.Tensor, n: int) -> torch.Tensor:
    """(N, m) -> (N, n): the first n columns, zero-padded when the data stored fewer (unused components)."""
    if values.shape[1] >= n:
        return values[:, :n]
    return torch.cat([values, values.new_zeros(values.shape[0], n - values.shape[1])], 1)


def true_code(flat: dict[str, torch.Tensor], n_shape: int, n_exp: int, n_tex: int) -> FaceCode:
    """The ground-truth coarse code of each image of a flattened synthetic batch (no detail code: the synthetic
    detail model's code is not DECA's).

    Args:
        flat: (N, ...) tensors of a flattened identity-group batch with synthetic ground truth: ``shape``,
            ``tex``, ``exp`` (N, stored sizes), ``pose`` (N, 6), ``image_cam`` (N, 3), ``light`` (N, 9, 3).
        n_shape, n_exp, n_tex: the model's code sizes.

    Raises:
        KeyError: naming the missing keys (real data, or a rotated crop that has no ``image_cam``).
    """
    missing = [k for k in TRUE_CODE_KEYS if k not in flat]
    if missing:
        raise KeyError(f"the batch has no ground truth {missing}: true codes need synthetic data "
                       "(data: synthetic) and unrotated crops")
    return FaceCode(shape=_fit(flat["shape"], n_shape), tex=_fit(flat["tex"], n_tex), exp=_fit(flat["exp"], n_exp),
                    pose=flat["pose"], cam=flat["image_cam"], light=flat["light"].reshape(-1, 9, 3))
