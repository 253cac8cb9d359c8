"""Video clips with ground truth for the tracking tests and ``bench_track.py``: the embedded ICT head rendered
frame by frame from known codes (one identity; the head still, or turning and talking), with camera noise.

The truth of each frame is its code and the 68 landmarks projected into the frame (pixel indices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from decalite.config import FlameConfig, ModelConfig, PathsConfig, RendererConfig
from decalite.model.factory import build_deca
from decalite.types import FaceCode


@dataclass
class Clip:
    """frames (T, H, W, 3) uint8; landmarks (T, 68, 2) pixel indices; code: the T true codes; fps."""

    frames: np.ndarray
    landmarks: np.ndarray
    code: FaceCode
    fps: float


def render_clip(motion: str, frames: int = 24, size: int = 256, seed: int = 0, noise: float = 4.0,
                fps: float = 24.0, cache_dir: str | None = None) -> Clip:
    """A clip of one random identity: ``motion`` "still" (the same code every frame) or "moving" (the head turns
    +-0.35 rad and nods, the jaw opens and closes, an expression comes and goes); gaussian pixel noise of
    ``noise`` grey levels, drawn anew for each frame (the sensor noise that makes per-frame fits jitter)."""
    if motion not in ("still", "moving"):
        raise ValueError(f"motion must be still or moving; got {motion!r}")
    deca, _ = build_deca(FlameConfig(dir=None), ModelConfig(backbone="resnet18"),
                         RendererConfig(image_size=size, uv_size=128, backend="torch"), PathsConfig(cache_dir=cache_dir))
    deca.eval()
    g = torch.Generator().manual_seed(seed)
    s = deca.sizes
    base = FaceCode(shape=0.8 * torch.randn(1, s.n_shape, generator=g), tex=0.5 * torch.randn(1, s.n_tex, generator=g),
                    exp=0.3 * torch.randn(1, s.n_exp, generator=g), pose=torch.zeros(1, 6),
                    cam=torch.tensor([[4.5, 0.0, 0.02]]), light=torch.zeros(1, 9, 3), detail=None)
    base.light[:, 0] = 2.6
    base.light[:, 3] = 0.6  # from the camera
    base.light[:, 2] = 0.4  # from above
    code = base.map(lambda t: t.expand(frames, *t.shape[1:]).clone())
    if motion == "moving":
        t = torch.arange(frames, dtype=torch.float32) / fps
        code.pose[:, 1] = 0.35 * torch.sin(2 * math.pi * 0.5 * t)  # yaw
        code.pose[:, 0] = 0.1 * torch.sin(2 * math.pi * 0.8 * t)  # pitch
        code.pose[:, 3] = 0.15 * (1 - torch.cos(2 * math.pi * 1.0 * t))  # jaw
        code.exp[:, 0] += 1.5 * torch.sin(2 * math.pi * 0.7 * t)
    background = torch.linspace(0.35, 0.65, size)[None, None, :, None].expand(1, 3, size, size)
    with torch.no_grad():
        out = deca.decode(code, detail=False, background=background.expand(frames, -1, -1, -1))
    images = out.render.image.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255.0
    images = images + noise * np.random.default_rng(seed).standard_normal(images.shape)
    landmarks = (out.landmarks2d.numpy() + 1.0) * (size / 2.0) - 0.5
    return Clip(np.clip(images + 0.5, 0, 255).astype(np.uint8), landmarks, code, fps)


def write_clip(clip: Clip, path) -> None:
    """The clip as an H.264 MP4 (near-lossless, so the noise survives)."""
    import imageio.v2 as imageio

    imageio.mimsave(str(path), list(clip.frames), fps=clip.fps, codec="libx264", quality=10, macro_block_size=16)
