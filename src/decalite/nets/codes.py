"""Splitting the coarse encoder's output vector into a FaceCode (DECA's order: shape, tex, exp, pose, cam, light)."""

from __future__ import annotations

import torch

from decalite.config import CodeSizes
from decalite.types import FaceCode

__all__ = ["CodeSizes", "split_code"]  # CodeSizes is declared with the other sizes, in decalite.config


def split_code(params: torch.Tensor, sizes: CodeSizes, detail: torch.Tensor | None = None) -> FaceCode:
    """(B, sizes.coarse) -> FaceCode; light becomes (B, 9, 3)."""
    if params.shape[-1] != sizes.coarse:
        raise ValueError(f"coarse code must have {sizes.coarse} values for {sizes}; got {params.shape[-1]}")
    parts = torch.split(params, [sizes.n_shape, sizes.n_tex, sizes.n_exp, sizes.n_pose, sizes.n_cam, sizes.n_light], -1)
    shape, tex, exp, pose, cam, light = parts
    return FaceCode(shape=shape, tex=tex, exp=exp, pose=pose, cam=cam, light=light.reshape(-1, 9, 3), detail=detail)


def join_code(code: FaceCode) -> torch.Tensor:
    """The inverse of :func:`split_code`: FaceCode -> (B, coarse)."""
    return torch.cat([code.shape, code.tex, code.exp, code.pose, code.cam, code.light.reshape(code.light.shape[0], -1)], -1)
