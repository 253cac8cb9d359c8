"""DECA's detail decoder F_d: cat(jaw pose, expression, detail code) -> a UV displacement map.

Layout (facts of the DECA paper and release): Linear to 128 x 8 x 8, BatchNorm, then five stages of bilinear
x2 upsampling, 3x3 convolution, BatchNorm with eps 0.8, LeakyReLU 0.2 (channels 128, 64, 64, 32, 16), a final
3x3 convolution to one channel and tanh scaled by 0.01: a 256 x 256 map in [-0.01, 0.01].

``out_size`` keeps the first log2(out_size / 8) stages (decalite's option for small UV maps: 64 -> three stages,
128 -> four); DECA's 256 (all five) is the default and the only size an official checkpoint fits.
"""

from __future__ import annotations

import torch
from torch import nn

STAGE_CHANNELS = (128, 64, 64, 32, 16)
#: The sizes F_d can decode: 8 x 2^n for 1 to len(STAGE_CHANNELS) stages.
OUTPUT_SIZES = tuple(8 * 2**n for n in range(1, len(STAGE_CHANNELS) + 1))  # (16, 32, 64, 128, 256)


def stage_count(out_size: int) -> int:
    """Number of upsampling stages for an ``out_size`` x ``out_size`` map; ValueError for a size F_d cannot make."""
    if out_size not in OUTPUT_SIZES:
        raise ValueError(f"model.detail_size={out_size}: the detail decoder makes one of {list(OUTPUT_SIZES)} "
                         "(8 x 8 doubled per stage; DECA: 256)")
    return OUTPUT_SIZES.index(out_size) + 1


class UpStage(nn.Module):
    """Bilinear x2 upsampling, 3x3 convolution, BatchNorm (eps 0.8), LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.8)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.up(x))))


class DetailDecoder(nn.Module):
    """(B, latent_dim) -> (B, 1, out_size, out_size) displacement in [-out_scale, out_scale].

    Args:
        latent_dim: 3 (jaw pose) + n_exp + n_detail (181 in DECA).
        out_scale: scale of the tanh output (0.01).
        out_size: side of the map, one of :data:`OUTPUT_SIZES` (DECA: 256).
    """

    def __init__(self, latent_dim: int = 181, out_scale: float = 0.01, out_size: int = 256) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.out_scale = out_scale
        self.out_size = out_size
        channels = (128, *STAGE_CHANNELS[: stage_count(out_size)])
        self.fc = nn.Linear(latent_dim, 128 * 8 * 8)
        self.bn_in = nn.BatchNorm2d(128)
        self.stages = nn.ModuleList(UpStage(channels[i], channels[i + 1]) for i in range(len(channels) - 1))
        self.out_conv = nn.Conv2d(channels[-1], 1, 3, padding=1)
        # Start from a flat surface: with PyTorch's default init the untrained map is a smooth field of about
        # +-1 mm whose offset no loss sees (a constant displacement leaves the normals unchanged) and only |D|
        # pulls back, slowly. The last layer scaled down (x 0.01, bias 0) starts D near 0 with every gradient path
        # open. (DECA uses the default init; a trained or loaded decoder is unaffected.)
        with torch.no_grad():
            self.out_conv.weight.mul_(0.01)
            self.out_conv.bias.zero_()

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = self.fc(latent).view(latent.shape[0], 128, 8, 8)  # (B, 8192) -> (B, 128, 8, 8)
        x = self.bn_in(x)
        for stage in self.stages:
            x = stage(x)
        return torch.tanh(self.out_conv(x)) * self.out_scale


def detail_latent(jaw_pose: torch.Tensor, expression: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
    """F_d's input: cat(jaw pose (B, 3), expression (B, E), detail code (B, D)) -> (B, 3 + E + D)."""
    return torch.cat([jaw_pose, expression, detail], dim=1)
