"""A linear albedo model in UV space (BFM-to-FLAME or decalite's generated basis) as a module."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from decalite.flame.model_data import AlbedoData
from decalite.precision import full_precision


class AlbedoModel(nn.Module):
    """tex code (B, n_tex) -> UV albedo (B, 3, U, U), RGB, row 0 at v = 1.

    As in DECA the output is not clamped (clamping would zero the gradient of every clamped texel during
    training); images are clamped for display. A larger basis is shrunk to U by nearest neighbour, as DECA
    samples the 512x512 BFM albedo down to 256; a smaller one (decalite's generated 128x128 basis) is enlarged
    bilinearly. Both are linear, so resampling the basis equals resampling each output.

    The basis lives in non-persistent buffers (the BFM-derived albedo is licensed).

    Args:
        data: mean (H, W, 3) and basis (H, W, 3, N).
        n_tex: components used (<= N).
        uv_size: output size U.
        clamp: clamp the output to [0, 1] (off by default, as in DECA).
    """

    def __init__(self, data: AlbedoData, n_tex: int = 50, uv_size: int = 256, clamp: bool = False) -> None:
        super().__init__()
        if n_tex > data.n_components:
            raise ValueError(f"n_tex={n_tex} but the albedo model {data.source!r} has {data.n_components} components")
        self.n_tex = n_tex
        self.uv_size = uv_size
        self.clamp = clamp
        mean = torch.from_numpy(np.ascontiguousarray(data.mean, dtype=np.float32)).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
        basis = torch.from_numpy(np.ascontiguousarray(data.basis[..., :n_tex], dtype=np.float32))
        basis = basis.permute(3, 2, 0, 1)  # (H, W, 3, N) -> (N, 3, H, W)
        if mean.shape[-1] > uv_size:
            mean = F.interpolate(mean[None], size=(uv_size, uv_size), mode="nearest")[0]
            basis = F.interpolate(basis, size=(uv_size, uv_size), mode="nearest")
        elif mean.shape[-1] < uv_size:
            mean = F.interpolate(mean[None], size=(uv_size, uv_size), mode="bilinear", align_corners=False)[0]
            basis = F.interpolate(basis, size=(uv_size, uv_size), mode="bilinear", align_corners=False)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("basis", basis.reshape(n_tex, -1), persistent=False)  # (N, 3, U, U) -> (N, 3*U*U)

    @full_precision
    def forward(self, tex: torch.Tensor) -> torch.Tensor:
        """(B, n_tex) -> (B, 3, U, U)."""
        flat = tex @ self.basis  # (B, N) x (N, 3*U*U) -> (B, 3*U*U)
        albedo = self.mean + flat.view(tex.shape[0], 3, self.uv_size, self.uv_size)
        return albedo.clamp(0.0, 1.0) if self.clamp else albedo
