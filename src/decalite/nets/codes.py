"""Splitting the coarse encoder's output vector into a FaceCode (DECA's order: shape, tex, exp, pose, cam, light)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decalite.types import FaceCode


@dataclass(frozen=True)
class CodeSizes:
    """Sizes of the coarse code's parts (DECA: 100, 50, 50, 6, 3, 27 = 236) and of the detail code (128)."""

    n_shape: int = 100
    n_tex: int = 50
    n_exp: int = 50
    n_pose: int = 6
    n_cam: int = 3
    n_light: int = 27
    n_detail: int = 128

    @property
    def coarse(self) -> int:
        """Length of the coarse encoder's output."""
        return self.n_shape + self.n_tex + self.n_exp + self.n_pose + self.n_cam + self.n_light

    @property
    def detail_latent(self) -> int:
        """Input size of the detail decoder: jaw pose (3) + expression + detail code."""
        return 3 + self.n_exp + self.n_detail


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
