"""Animation and expression transfer: new codes from a reconstruction, rendered frame by frame.

The detail displacement is decoded per frame from (jaw pose, expression, detail code), so with a trained
detail decoder wrinkles follow the expression. Frames are written as GIF and MP4 with imageio.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from decalite.model.deca import DECA
from decalite.types import FaceCode


def _repeat(code: FaceCode, n: int) -> FaceCode:
    """A batch of n copies of a single-face code."""
    return code.map(lambda t: t[:1].expand(n, *t.shape[1:]).clone())


def sweep_codes(code: FaceCode, frames: int = 48, n_components: int = 3, exp_amplitude: float = 2.0,
                jaw_max: float = 0.35, yaw_max: float = 0.5) -> FaceCode:
    """(frames,) codes: in turn, each of the first expression components swings up and down, then the jaw opens
    and closes, then the head turns left and right. The identity, albedo, light and detail code stay fixed."""
    out = _repeat(code, frames)
    phases = n_components + 2
    for t in range(frames):
        part, local = divmod(t * phases / frames, 1.0)
        wave = math.sin(2 * math.pi * local)
        if part < n_components:
            out.exp[t, int(part)] = out.exp[t, int(part)] + exp_amplitude * wave
        elif part < n_components + 1:
            out.pose[t, 3] = jaw_max * math.sin(math.pi * local)
        else:
            out.pose[t, 1] = out.pose[t, 1] + yaw_max * wave
    return out


def transfer_codes(source: FaceCode, driver: FaceCode) -> FaceCode:
    """The source's identity, albedo, light, camera, head pose and detail code with each driver frame's
    expression and jaw. source: one face; driver: (T,) frames."""
    out = _repeat(source, driver.exp.shape[0])
    out.exp = driver.exp.detach().clone()
    out.pose = torch.cat([out.pose[:, :3], driver.pose[:, 3:].detach()], 1)
    return out


def render_frames(deca: DECA, codes: FaceCode, trained_detail: bool, background: float = 1.0,
                  batch: int = 8) -> np.ndarray:
    """(T, H, 2W, 3) uint8 frames: the textured render beside the (detailed, when trained) shape render."""
    frames = []
    n = codes.exp.shape[0]
    for start in range(0, n, batch):
        part = codes.map(lambda t: t[start : start + batch])
        with torch.no_grad():
            out = deca.decode(part, detail=trained_detail and part.detail is not None, background=background)
            disp = out.displacement if trained_detail else None
            shape = deca.renderer.render_shape(out.vertices, part.cam, displacement=disp, background=background,
                                               fragments=out.render.fragments).best
        image = out.render.image_detail if disp is not None and out.render.image_detail is not None else out.render.image
        pair = torch.cat([image.clamp(0, 1), shape], dim=3)  # (B, 3, H, W) x 2 -> (B, 3, H, 2W)
        frames.append((pair.permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8))
    return np.concatenate(frames)


def write_animation(frames: np.ndarray, stem: Path, fps: float = 24, gif: bool = True) -> list[Path]:
    """Write ``<stem>.mp4`` and (``gif``) ``<stem>.gif``. frames: (T, H, W, 3) uint8."""
    import imageio.v2 as imageio

    stem.parent.mkdir(parents=True, exist_ok=True)
    files = []
    if gif:
        files.append(stem.with_suffix(".gif"))
        imageio.mimsave(files[-1], list(frames), duration=1000 / fps, loop=0)
    h, w = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (0, (16 - h % 16) % 16), (0, (16 - w % 16) % 16), (0, 0)), mode="edge")
    files.append(stem.with_suffix(".mp4"))
    imageio.mimsave(files[-1], list(padded), fps=fps, codec="libx264", quality=7, macro_block_size=16)
    return files
