"""Random draws of the synthetic data, all from an explicit ``torch.Generator`` (no global random state).

Every identity draws from its own generator seeded by :func:`identity_seed`; the order of the draws below is
part of the output format (changing it changes every dataset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from decalite.geometry.lighting import SH_CONSTANTS
from decalite.synth.config import SyntheticConfig
from decalite.synth.details import DetailModel


def uniform(n: int, low: float, high: float, g: torch.Generator, shape: tuple[int, ...] = ()) -> torch.Tensor:
    """(n, *shape) uniform draws in [low, high)."""
    return low + (high - low) * torch.rand(n, *shape, generator=g)


def euler_to_axis_angle(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B,) angles in radians -> (B, 3) axis-angle of ``R = Ry(yaw) Rx(pitch) Rz(roll)``.

    Yaw turns about +y, pitch about +x (positive = looking down), roll about +z.
    """
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix, rotation_matrix_to_axis_angle

    def rot(axis: int, angle: torch.Tensor) -> torch.Tensor:
        aa = torch.zeros(angle.shape[0], 3)
        aa[:, axis] = angle
        return axis_angle_to_rotation_matrix(aa)

    matrix = rot(1, yaw) @ rot(0, pitch) @ rot(2, roll)
    return rotation_matrix_to_axis_angle(matrix)


def random_light(n: int, variation: float, g: torch.Generator) -> torch.Tensor:
    """(n, 9, 3) white-ish SH light: ambient with a slight tint, a random key direction, weak 2nd order."""
    ambient = uniform(n, 0.55, 0.8, g)[:, None] * (1.0 + 0.06 * variation * torch.randn(n, 3, generator=g))
    light = torch.zeros(n, 9, 3)
    light[:, 0] = ambient / SH_CONSTANTS[0]
    direction = torch.stack([
        0.25 * variation * torch.randn(n, generator=g),  # from +x (subject's left)
        0.15 + 0.15 * variation * torch.randn(n, generator=g),  # from above
        uniform(n, 0.25, 0.45, g),  # from the camera
    ], dim=1)  # (n, 3)
    tint = 1.0 + 0.05 * variation * torch.randn(n, 1, 3, generator=g)
    light[:, 1:4] = direction[:, :, None] * tint / torch.tensor(SH_CONSTANTS[1:4])[None, :, None]
    light[:, 4:] = 0.04 * variation * torch.randn(n, 5, 1, generator=g) / torch.tensor(SH_CONSTANTS[4:])[None, :, None]
    return light


def random_background(n: int, size: int, noise: float, g: torch.Generator) -> torch.Tensor:
    """(n, 3, size, size) backgrounds: a bilinear gradient between 4 random corner colours plus smooth noise."""
    corners = torch.rand(n, 3, 2, 2, generator=g)
    gradient = F.interpolate(corners, size=(size, size), mode="bilinear", align_corners=True)
    cells = torch.randn(n, 3, 8, 8, generator=g) * noise * uniform(n, 0.0, 2.0, g)[:, None, None, None]
    texture = F.interpolate(cells, size=(size, size), mode="bicubic", align_corners=False)
    return (gradient + texture).clamp(0.0, 1.0)


@dataclass
class Draws:
    """Per-image random inputs of one identity (K images)."""

    expression: torch.Tensor  # (K, n_exp)
    jaw: torch.Tensor  # (K,)
    global_pose: torch.Tensor  # (K, 3)
    light: torch.Tensor  # (K, 9, 3)
    fraction: torch.Tensor  # (K,)
    shift: torch.Tensor  # (K, 2)
    background: torch.Tensor  # (K, 3, R, R)
    lmk_noise: torch.Tensor  # (K, 68, 2), drawn even when the noise std is 0 so the other draws stay put


def identity_seed(seed: int, index: int) -> int:
    """The seed of identity ``index``'s generator, derived from the master seed."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def draw_identity(cfg: SyntheticConfig, n_tex: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """One identity's codes: shape (1, n_shape), tex (1, n_tex), detail (1, DETAIL_DIM)."""
    return {
        "shape": torch.randn(1, cfg.n_shape, generator=g) * cfg.shape_std,
        "tex": torch.randn(1, n_tex, generator=g) * cfg.tex_std,
        "detail": DetailModel.sample_code(1, g),
    }


def draw_images(cfg: SyntheticConfig, k: int, g: torch.Generator, blendshapes: bool = False) -> Draws:
    """The per-image draws of ``k`` images of one identity (after :func:`draw_identity`).

    ``blendshapes``: the head's expressions are blendshapes with weights in [0, 1] (see
    ``SyntheticConfig.exp_active``); the extra draw comes last, so PCA heads' datasets are unchanged.
    """
    yaw = uniform(k, -cfg.yaw, cfg.yaw, g)
    pitch = uniform(k, -cfg.pitch, cfg.pitch, g)
    roll = uniform(k, -cfg.roll, cfg.roll, g)
    z = torch.randn(k, cfg.n_exp, generator=g)
    draws = Draws(
        expression=z * cfg.exp_std,
        jaw=uniform(k, cfg.jaw[0], cfg.jaw[1], g),
        global_pose=euler_to_axis_angle(*(torch.deg2rad(a) for a in (yaw, pitch, roll))),
        light=random_light(k, cfg.light_variation, g),
        fraction=uniform(k, cfg.face_fraction[0], cfg.face_fraction[1], g),
        shift=uniform(k, -cfg.max_shift, cfg.max_shift, g, (2,)),
        background=random_background(k, cfg.render_size, cfg.background_noise, g),
        lmk_noise=torch.randn(k, 68, 2, generator=g) * cfg.landmark_noise,
    )
    if blendshapes:
        active = torch.rand(k, cfg.n_exp, generator=g) < cfg.exp_active
        draws.expression = (z.abs() * cfg.blendshape_std).clamp(max=1.0) * active
    return draws
