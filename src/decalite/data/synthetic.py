"""Synthetic training data with full ground truth: FLAME heads rendered with identity-specific details.

Every identity gets a random shape, albedo and detail code; each of its images a random expression, jaw
opening, head pose, SH light, camera and background. Images are rendered with the detail path of
:class:`decalite.render.renderer.Renderer` (``image_detail``) and cropped exactly like prepared real data
(:func:`decalite.data.crop.square_crop` at :data:`decalite.data.shards.CONTEXT_SCALE`), then written as
identity-grouped shards (:mod:`decalite.data.shards`) with the ground truth in ``gt.npz``/``verts.npy``/
``disp.npy``.

Ground-truth camera convention
------------------------------
``gt["cam"]`` (N, 3) is the orthographic camera ``(s, tx, ty)`` of the **stored crop**: with the FLAME
output of the stored codes (``shape``, ``exp``, ``pose`` = global 3 + jaw 3, zero neck and eye poses),
``orthographic_project(landmarks2d, cam)`` gives NDC points of the crop (+y up) and
``ndc_to_pixels(ndc[..., :2], size, size) - 0.5`` the stored ``lmk.npy`` landmarks (pixel-index
coordinates; exact up to float rounding when ``landmark_noise`` is 0). Equivalently,
``ndc_to_image_normalized`` of the same NDC points gives the landmarks in the crop's image-normalised [-1, 1]
frame (+y down). ``gt["lmk3d"]`` holds those (N, 68, 3) 3D landmarks (model space). The camera the image was
rendered with (in the ``render_size`` frame) and the 2x3 render->crop pixel matrix are kept in the meta as
``render_cams`` and ``crop_matrices``; :func:`crop_camera` converts one into the other.

Determinism: every identity draws from its own ``torch.Generator`` seeded from ``(seed, identity index)``; no
global random state is used, so the same configuration writes byte-identical shards (with the same torch
build, device and thread count; rasterization and reductions are not promised bit-stable across those).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from decalite.data import shards
from decalite.data.crop import square_crop, transform_points, warp
from decalite.geometry.camera import ndc_to_pixels
from decalite.geometry.lighting import SH_CONSTANTS

log = logging.getLogger(__name__)

#: Bumped whenever the generator's output for a given configuration changes.
SYNTH_VERSION = 1
GENERATOR_NAME = f"decalite.data.synthetic v{SYNTH_VERSION}"
SHARD_PATTERN = "synth-{:06d}.tar"

# --------------------------------------------------------------------------------------------------------
# Detail model

#: Layout of a detail code: name -> (start, stop). Every entry is drawn N(0, 1) or U(0, 1) (see
#: :meth:`DetailModel.sample_code`); the model maps them to physical sizes.
DETAIL_LAYOUT: dict[str, tuple[int, int]] = {
    "noise": (0, 16),  # N(0,1) weights of the 16 fixed smooth-noise fields (pores, fine bumps)
    "mole_x": (16, 20),  # U(0,1) horizontal position of 4 moles across the face
    "mole_y": (20, 24),  # U(0,1) vertical position of 4 moles (chin to forehead)
    "mole_height": (24, 28),  # U(0,1) height of each mole (0 = none, 1 = MOLE_HEIGHT)
    "forehead": (28, 32),  # U(0,1): depth, line spacing, phase, resting depth of forehead lines
    "crows": (32, 35),  # U(0,1): depth, line count, phase of crow's feet
    "nasolabial": (35, 38),  # U(0,1): depth, width, resting depth of nasolabial folds
}
#: D, the size of a detail code.
DETAIL_DIM = 38
N_NOISE_FIELDS = DETAIL_LAYOUT["noise"][1] - DETAIL_LAYOUT["noise"][0]
N_MOLES = 4
NOISE_AMPLITUDE = 1e-4  # metres, std of the static noise
MOLE_HEIGHT = 3e-4  # metres
MOLE_SIGMA = 1.5e-3  # metres
WRINKLE_DEPTH = 1e-3  # metres, deepest wrinkle at full activation

# 68-landmark indices (iBUG convention) used to place the wrinkle regions on the neutral template.
_BROWS = slice(17, 27)
_EYE_OUTER = (36, 45)  # subject's right (-x), left (+x)
_NOSE_WING = (31, 35)
_MOUTH_CORNER = (48, 54)
_CHIN = 8


def _smooth_noise(count: int, size: int, generator: torch.Generator,
                  scales: Sequence[int] = (8, 24, 64, 128)) -> torch.Tensor:
    """(count, size, size) zero-mean, unit-std smooth noise fields: octaves of upsampled random grids."""
    total = torch.zeros(count, 1, size, size)
    for k, cells in enumerate(scales):
        cells = min(cells, size)
        grid = torch.randn(count, 1, cells, cells, generator=generator)
        total += F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False) * 0.7**k
    total = total - total.mean(dim=(2, 3), keepdim=True)
    return (total / total.std(dim=(2, 3), keepdim=True))[:, 0]


def _segment_distance(
    x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance of points (x, y) to the segment a-b and their position t in [0, 1] along it. a, b: (2,)."""
    d = b - a
    t = (((x - a[0]) * d[0] + (y - a[1]) * d[1]) / d.dot(d)).clamp(0.0, 1.0)
    return torch.hypot(x - a[0] - t * d[0], y - a[1] - t * d[1]), t


class DetailModel(nn.Module):
    """Identity-specific static details plus expression-dependent wrinkles, as a UV displacement map.

    Regions are placed with the NEUTRAL template: its UV position map (x, y of the surface under each texel)
    and its 68 landmarks (brows, outer eye corners, nose wings, mouth corners), so the model works for the
    generated head and for FLAME alike.

    * static: ``NOISE_AMPLITUDE`` x a mix of 16 fixed smooth-noise fields weighted by the code, plus up to 4
      moles (gaussians of height up to ``MOLE_HEIGHT``) at code-given positions;
    * forehead lines: horizontal (slightly arched) grooves above the brows, deepening with ``brow_raise``
      (and ``brow_raise_left`` / ``_right`` on their side);
    * crow's feet: radial grooves at the outer eye corners, with ``smile`` (and the one-sided smiles);
    * nasolabial folds: grooves from the nose wings to beyond the mouth corners, with smiles and jaw opening.

    Wrinkle depth is ``WRINKLE_DEPTH`` x code depth (0.4..1) x activation (clamped to [0, 1]; an expression
    coefficient of 2 or a jaw opening of 0.4 rad is full activation), plus a small identity-specific resting
    depth. The result is multiplied by the face-eye mask. Everything is batched pure torch.

    Args:
        positions: (3, U, U) UV position map of the neutral template (metres; row 0 = v = 1).
        landmarks: (68, 3) landmarks of the neutral template.
        face_eye_mask: (U, U) mask in [0, 1] where details apply.
        expression_names: names of the expression components (the generated head's EXPRESSION_NAMES);
            empty for a PCA expression space, in which case only the jaw drives wrinkles.
        noise_seed: seed of the fixed noise fields (part of the model, not of an identity).
    """

    def __init__(
        self,
        positions: torch.Tensor,
        landmarks: torch.Tensor,
        face_eye_mask: torch.Tensor,
        expression_names: Sequence[str] = (),
        noise_seed: int = 0,
    ) -> None:
        super().__init__()
        size = int(positions.shape[-1])
        self.uv_size = size
        self.expression_names = tuple(expression_names)
        gen = torch.Generator().manual_seed(noise_seed)
        self.register_buffer("noise", _smooth_noise(N_NOISE_FIELDS, size, gen), persistent=False)  # (16, U, U)
        self.register_buffer("x", positions[0].float().clone(), persistent=False)
        self.register_buffer("y", positions[1].float().clone(), persistent=False)
        self.register_buffer("mask", face_eye_mask.float().clone(), persistent=False)
        lmk = landmarks[:, :2].float()
        self.register_buffer("lmk", lmk.clone(), persistent=False)
        brow_top = float(lmk[_BROWS, 1].max())
        self._brow_top = brow_top
        self._brow_half = float(lmk[_BROWS, 0].abs().max())
        self._face_x = float(lmk[:, 0].abs().max())  # half face width at the landmarks
        self._chin = float(lmk[_CHIN, 1])
        # Fixed per-texel geometry of the wrinkle regions, (U, U) or (2, U, U) for (right, left) sides.
        crows = [self._crow_geometry(side) for side in (0, 1)]
        folds = [self._fold_geometry(side) for side in (0, 1)]
        fixed = {
            "to_left": torch.sigmoid(self.x / 0.01),  # subject's left is +x
            "forehead_window": self._forehead_window(),
            "crow_window": torch.stack([c[0] for c in crows]),
            "crow_angle": torch.stack([c[1] for c in crows]),
            "fold_dist": torch.stack([f[0] for f in folds]),
            "fold_along": torch.stack([f[1] for f in folds]),
        }
        for name, tensor in fixed.items():
            self.register_buffer(name, tensor, persistent=False)

    @property
    def regions(self) -> dict[str, torch.Tensor]:
        """(U, U) soft masks of the wrinkle regions (forehead, crows, nasolabial; both sides), within the mask."""
        return {
            "forehead": self.forehead_window * self.mask,
            "crows": self.crow_window.sum(0) * self.mask,
            "nasolabial": (torch.exp(-((self.fold_dist / 0.006) ** 2)) * self.fold_along).sum(0) * self.mask,
        }

    def _forehead_window(self) -> torch.Tensor:
        """(U, U) the forehead above the brows, as wide as the brows."""
        rise = self.y - self._brow_top
        vertical = torch.sigmoid((rise - 0.006) / 0.002) * torch.sigmoid((0.045 - rise) / 0.004)
        horizontal = torch.sigmoid((self._brow_half + 0.004 - self.x.abs()) / 0.004)
        return vertical * horizontal

    def _crow_geometry(self, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Window around outer eye corner ``side`` (0 = subject's right, 1 = left) and the polar angle there."""
        corner = self.lmk[_EYE_OUTER[side]]
        sign = -1.0 if side == 0 else 1.0
        dx, dy = (self.x - corner[0]) * sign, self.y - corner[1]  # dx > 0 points away from the eye
        r = torch.hypot(dx, dy)
        angle = torch.atan2(dy, dx)
        window = torch.sigmoid((r - 0.004) / 0.001) * torch.sigmoid((0.022 - r) / 0.003)
        return window * torch.sigmoid((1.1 - angle.abs()) / 0.12), angle

    def _fold_geometry(self, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance (metres) to the nasolabial line of ``side`` and a window between nose wing and chin."""
        sign = -1.0 if side == 0 else 1.0
        start = self.lmk[_NOSE_WING[side]] + torch.tensor([sign * 0.006, 0.002])
        corner = self.lmk[_MOUTH_CORNER[side]]
        end = corner + torch.tensor([sign * 0.008, -0.014])
        dist, _ = _segment_distance(self.x, self.y, start, end)
        top, bottom = self.lmk[_NOSE_WING[side], 1], corner[1] - 0.02
        along = torch.sigmoid((top - self.y) / 0.003) * torch.sigmoid((self.y - bottom) / 0.003)
        return dist, along

    # ----- codes -----
    @staticmethod
    def sample_code(batch: int, generator: torch.Generator) -> torch.Tensor:
        """(B, DETAIL_DIM) random detail codes (noise weights N(0, 1), everything else U(0, 1))."""
        code = torch.rand(batch, DETAIL_DIM, generator=generator)
        a, b = DETAIL_LAYOUT["noise"]
        code[:, a:b] = torch.randn(batch, b - a, generator=generator)
        return code

    @staticmethod
    def _part(code: torch.Tensor, name: str) -> torch.Tensor:
        """(B, k) slice of a code, shaped (B, k, 1, 1) to broadcast over UV maps."""
        a, b = DETAIL_LAYOUT[name]
        return code[:, a:b, None, None]

    # ----- activations -----
    def _exp(self, expression: torch.Tensor, name: str) -> torch.Tensor:
        """(B, 1, 1) coefficient of a named expression component (0 when this head has no such name)."""
        if name not in self.expression_names or self.expression_names.index(name) >= expression.shape[1]:
            return expression.new_zeros(expression.shape[0], 1, 1)
        return expression[:, self.expression_names.index(name), None, None]

    def _sided(self, expression: torch.Tensor, both: str, left: str, right: str) -> torch.Tensor:
        """(B, U, U) activation in [0, 1] of a symmetric component plus its one-sided versions."""
        to_left = self.to_left[None]
        act = (self._exp(expression, both).clamp(min=0) + self._exp(expression, left).clamp(min=0) * to_left
               + self._exp(expression, right).clamp(min=0) * (1.0 - to_left))
        return (act / 2.0).clamp(0.0, 1.0)

    # ----- parts -----
    def static(self, code: torch.Tensor) -> torch.Tensor:
        """(B, U, U) identity-specific static displacement (noise + moles), metres, unmasked."""
        weights = code[:, slice(*DETAIL_LAYOUT["noise"])] / math.sqrt(N_NOISE_FIELDS)
        noise = torch.einsum("bk,kuv->buv", weights, self.noise) * NOISE_AMPLITUDE
        mx = (self._part(code, "mole_x") * 2.0 - 1.0) * self._face_x * 0.85
        my = self._chin + 0.01 + self._part(code, "mole_y") * (self._brow_top + 0.03 - self._chin - 0.01)
        h = self._part(code, "mole_height")
        height = MOLE_HEIGHT * h * (h > 0.3)  # about a third of the potential moles are absent
        d2 = (self.x - mx) ** 2 + (self.y - my) ** 2  # (B, 4, U, U)
        moles = (height * torch.exp(-0.5 * d2 / MOLE_SIGMA**2)).sum(1)
        return noise + moles

    def forehead(self, code: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(B, U, U) forehead lines (negative = grooves)."""
        depth, spacing, phase, rest = self._part(code, "forehead").unbind(1)  # each (B, 1, 1)
        act = self._sided(expression, "brow_raise", "brow_raise_left", "brow_raise_right")
        rise = self.y - self._brow_top - 0.25 * self.x**2 / 0.05  # arched lines
        period = 0.006 + 0.004 * spacing
        groove = (0.5 + 0.5 * torch.cos(2 * math.pi * rise / period + 2 * math.pi * phase)) ** 6
        amplitude = WRINKLE_DEPTH * ((0.4 + 0.6 * depth) * act + 0.1 * rest)
        return -amplitude * groove * self.forehead_window

    def crows_feet(self, code: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(B, U, U) radial grooves at both outer eye corners."""
        depth, count, phase = self._part(code, "crows").unbind(1)
        act = self._sided(expression, "smile", "smile_left", "smile_right")
        lines = (3.0 + 3.0 * count)[:, None]  # grooves per pi radians, (B, 1, 1, 1)
        groove = (0.5 + 0.5 * torch.cos(2 * math.pi * (lines * self.crow_angle / math.pi + phase[:, None]))) ** 6
        total = (groove * self.crow_window).sum(1)  # (B, 2, U, U) -> (B, U, U)
        return -WRINKLE_DEPTH * (0.4 + 0.6 * depth) * act * total

    def nasolabial(self, code: torch.Tensor, expression: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        """(B, U, U) nasolabial folds; ``jaw`` (B,) jaw opening in radians."""
        depth, width, rest = self._part(code, "nasolabial").unbind(1)
        smile = self._sided(expression, "smile", "smile_left", "smile_right")
        act = (smile + (jaw.clamp(min=0) / 0.4)[:, None, None]).clamp(0.0, 1.0)
        sigma = (0.0015 + 0.0015 * width)[:, None]  # (B, 1, 1, 1)
        total = (torch.exp(-0.5 * (self.fold_dist / sigma) ** 2) * self.fold_along).sum(1)
        amplitude = WRINKLE_DEPTH * ((0.4 + 0.6 * depth) * act + 0.15 * rest)
        return -amplitude * total

    def forward(self, code: torch.Tensor, expression: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        """Displacement maps.

        Args:
            code: (B, DETAIL_DIM) detail codes.
            expression: (B, E) expression coefficients.
            jaw: (B,) jaw opening (rotation about +x of the jaw pose, radians).

        Returns:
            (B, 1, U, U) displacement along the normal in metres (row 0 = v = 1), zero outside the mask.
        """
        disp = (self.static(code) + self.forehead(code, expression) + self.crows_feet(code, expression)
                + self.nasolabial(code, expression, jaw))
        return (disp * self.mask)[:, None]


# --------------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class SyntheticConfig:
    """What to generate. Angles in degrees (config-friendly), jaw in radians, sizes in pixels.

    Attributes:
        identities: number of identities.
        images_per_identity: K, images per identity.
        size: side of the stored crops (shards' ``size``).
        render_size: side of the rendered images (the crop is warped out of them).
        uv_size: side of the UV maps (displacement, detail normals).
        backend: rasterizer backend ("auto", "torch", "nvdiffrast").
        seed: master seed.
        n_shape, n_exp, n_tex: numbers of shape, expression and albedo components used.
        shape_std, exp_std, tex_std: std of the random codes.
        yaw, pitch, roll: head pose ranges (+-, degrees), uniform.
        jaw: (min, max) jaw opening in radians, uniform.
        light_variation: 0 = plain white frontal light; 1 = the default random directional terms and tints.
        face_fraction: (min, max) landmark box side / render side, uniform (the crop covers twice that).
        max_shift: largest offset of the face centre from the render centre (NDC units).
        background_noise: std of the smooth noise added to the colour-gradient backgrounds.
        landmark_noise: std of gaussian noise added to the stored landmarks (crop pixels).
        detail_scale: multiplier of the displacement maps (0 disables details).
        device: torch device to render on.
    """

    identities: int = 10
    images_per_identity: int = 4
    size: int = shards.DEFAULT_SIZE
    render_size: int = 224
    uv_size: int = 256
    backend: str = "auto"
    seed: int = 0
    n_shape: int = 100
    n_exp: int = 50
    n_tex: int = 50
    shape_std: float = 1.0
    exp_std: float = 0.6
    tex_std: float = 1.0
    yaw: float = 40.0
    pitch: float = 20.0
    roll: float = 10.0
    jaw: tuple[float, float] = (0.0, 0.4)
    light_variation: float = 1.0
    face_fraction: tuple[float, float] = (0.38, 0.5)
    max_shift: float = 0.05
    background_noise: float = 0.08
    landmark_noise: float = 0.0
    detail_scale: float = 1.0
    device: str = "cpu"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists), as stored in the manifest."""
        return json.loads(json.dumps(asdict(self)))


# --------------------------------------------------------------------------------------------------------
# Random draws (all from an explicit generator)


def _uniform(n: int, low: float, high: float, g: torch.Generator, shape: tuple[int, ...] = ()) -> torch.Tensor:
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
    ambient = _uniform(n, 0.55, 0.8, g)[:, None] * (1.0 + 0.06 * variation * torch.randn(n, 3, generator=g))
    light = torch.zeros(n, 9, 3)
    light[:, 0] = ambient / SH_CONSTANTS[0]
    direction = torch.stack([
        0.25 * variation * torch.randn(n, generator=g),  # from +x (subject's left)
        0.15 + 0.15 * variation * torch.randn(n, generator=g),  # from above
        _uniform(n, 0.25, 0.45, g),  # from the camera
    ], dim=1)  # (n, 3)
    tint = 1.0 + 0.05 * variation * torch.randn(n, 1, 3, generator=g)
    light[:, 1:4] = direction[:, :, None] * tint / torch.tensor(SH_CONSTANTS[1:4])[None, :, None]
    light[:, 4:] = 0.04 * variation * torch.randn(n, 5, 1, generator=g) / torch.tensor(SH_CONSTANTS[4:])[None, :, None]
    return light


def random_background(n: int, size: int, noise: float, g: torch.Generator) -> torch.Tensor:
    """(n, 3, size, size) backgrounds: a bilinear gradient between 4 random corner colours plus smooth noise."""
    corners = torch.rand(n, 3, 2, 2, generator=g)
    gradient = F.interpolate(corners, size=(size, size), mode="bilinear", align_corners=True)
    cells = torch.randn(n, 3, 8, 8, generator=g) * noise * _uniform(n, 0.0, 2.0, g)[:, None, None, None]
    texture = F.interpolate(cells, size=(size, size), mode="bicubic", align_corners=False)
    return (gradient + texture).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------------------
# Cameras


def face_camera(landmarks: torch.Tensor, fraction: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(B, 3) camera (s, tx, ty) making the landmarks' bounding square ``fraction`` of the render side.

    Args:
        landmarks: (B, 68, 3) model-space landmarks. fraction: (B,). shift: (B, 2) NDC offset of the face centre.
    """
    xy = landmarks[..., :2]
    lo, hi = xy.min(1).values, xy.max(1).values  # (B, 2)
    side = (hi - lo).max(1).values
    s = 2.0 * fraction / side
    trans = -(lo + hi) / 2.0 + shift / s[:, None]
    return torch.cat([s[:, None], trans], dim=1)


def crop_camera(cam: np.ndarray, matrix: np.ndarray, render_size: int, size: int) -> np.ndarray:
    """The camera of a crop: (3,) render camera (s, tx, ty) and (2, 3) render->crop pixel-index matrix.

    With ``a`` the matrix's scale and ``b`` its translation, a point of render NDC x' maps to render pixel index
    ``(x' + 1) R / 2 - 0.5``, then to crop pixel index ``a (...) + b``, then to crop NDC; the composition is
    again ``s' (x + tx')`` with ``s' = a s R / S`` (likewise for y, whose NDC axis points up).
    """
    a = float(matrix[0, 0])
    s, tx, ty = (float(v) for v in cam)
    s_crop = a * s * render_size / size
    offset = a * (render_size / 2.0 - 0.5) + 0.5
    cx = (offset + matrix[0, 2]) * 2.0 / size - 1.0
    cy = 1.0 - (offset + matrix[1, 2]) * 2.0 / size
    return np.array([s_crop, tx + cx / s_crop, ty + cy / s_crop])


# --------------------------------------------------------------------------------------------------------
# Generator


@dataclass
class _Draws:
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


class SyntheticGenerator:
    """Renders synthetic identities with ground truth.

    Args:
        cfg: what to generate.
        assets_dir: a FLAME-format asset folder (licensed FLAME or a written generated head); None generates
            decalite's head (seed 0) in memory.
        expression_names: names of the expression components; "auto" uses the generated head's
            EXPRESSION_NAMES when the assets are the generated head, none otherwise.
    """

    def __init__(self, cfg: SyntheticConfig, assets_dir: str | Path | None = None,
                 expression_names: Sequence[str] | str = "auto") -> None:
        from decalite.flame.layer import FlameLayer
        from decalite.flame.synthetic import EXPRESSION_NAMES
        from decalite.render.renderer import Renderer

        self.cfg = cfg
        self.device = torch.device(cfg.device)
        assets, generated = _load_assets(assets_dir, cfg.n_tex)
        if expression_names == "auto":
            expression_names = EXPRESSION_NAMES if generated else ()
        self.assets_source = "generated" if generated else str(assets_dir)
        self.flame = FlameLayer(assets.model, assets.embedding, n_shape=cfg.n_shape, n_exp=cfg.n_exp).to(self.device)
        self.renderer = Renderer(assets.uv, assets.face_eye_mask, image_size=cfg.render_size, uv_size=cfg.uv_size,
                                 backend=cfg.backend).to(self.device)
        if assets.albedo is None:
            raise ValueError(f"the FLAME folder {assets_dir} has no albedo model; synthetic data needs one")
        n_tex = min(cfg.n_tex, assets.albedo.n_components)
        self.n_tex = n_tex
        self.albedo_mean = torch.from_numpy(np.ascontiguousarray(assets.albedo.mean)).permute(2, 0, 1).float()
        self.albedo_basis = torch.from_numpy(np.ascontiguousarray(assets.albedo.basis[..., :n_tex])).float()
        self.face_mask = torch.as_tensor(np.asarray(assets.face_mask), dtype=torch.float32)[None, None]
        with torch.no_grad():
            neutral = self.flame(batch_size=1)
            positions = self.renderer.uv.world2uv(neutral.vertices)[0]  # (3, U, U)
        self.detail = DetailModel(positions.cpu(), neutral.landmarks3d[0].cpu(),
                                  self.renderer.face_eye_mask[0, 0].cpu(), expression_names).to(self.device)

    # ----- draws -----
    def _draw_identity(self, g: torch.Generator) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        return {
            "shape": torch.randn(1, cfg.n_shape, generator=g) * cfg.shape_std,
            "tex": torch.randn(1, self.n_tex, generator=g) * cfg.tex_std,
            "detail": DetailModel.sample_code(1, g),
        }

    def _draw_images(self, k: int, g: torch.Generator) -> _Draws:
        cfg = self.cfg
        yaw = _uniform(k, -cfg.yaw, cfg.yaw, g)
        pitch = _uniform(k, -cfg.pitch, cfg.pitch, g)
        roll = _uniform(k, -cfg.roll, cfg.roll, g)
        return _Draws(
            expression=torch.randn(k, cfg.n_exp, generator=g) * cfg.exp_std,
            jaw=_uniform(k, cfg.jaw[0], cfg.jaw[1], g),
            global_pose=euler_to_axis_angle(*(torch.deg2rad(a) for a in (yaw, pitch, roll))),
            light=random_light(k, cfg.light_variation, g),
            fraction=_uniform(k, cfg.face_fraction[0], cfg.face_fraction[1], g),
            shift=_uniform(k, -cfg.max_shift, cfg.max_shift, g, (2,)),
            background=random_background(k, cfg.render_size, cfg.background_noise, g),
            lmk_noise=torch.randn(k, 68, 2, generator=g) * cfg.landmark_noise,
        )

    def albedo(self, tex: torch.Tensor) -> torch.Tensor:
        """(B, n_tex) albedo codes -> (B, 3, A, A) UV albedo in [0, 1]."""
        maps = self.albedo_mean[None] + torch.einsum("hwcn,bn->bchw", self.albedo_basis, tex)
        return maps.clamp(0.0, 1.0)

    # ----- rendering -----
    def skin_mask(self, vertices_ndc: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in {0, 1}: covered pixels whose surface point lies in the UV face mask."""
        from decalite.render.stages import sample_texture, to_image_layout

        rast = self.renderer.rasterize(vertices_ndc)
        covered = (rast[..., 3:4] > 0).float()
        inside = sample_texture(self.face_mask.to(rast.device).expand(rast.shape[0], -1, -1, -1),
                                self.renderer.uv.pixel_uvs(rast))
        return to_image_layout((inside > 0.5).float() * covered)

    def _render(self, ident: dict[str, torch.Tensor], d: _Draws, jaw_pose: torch.Tensor):
        """Pose, detail and render K images of one identity: (FlameOutput, render cams (K, 3), disp, RenderOutput)."""
        k, dev = d.expression.shape[0], self.device
        flame = self.flame(shape=ident["shape"].expand(k, -1).to(dev), expression=d.expression.to(dev),
                           global_pose=d.global_pose.to(dev), jaw_pose=jaw_pose.to(dev))
        cam = face_camera(flame.landmarks2d.cpu(), d.fraction, d.shift)
        disp = self.detail(ident["detail"].expand(k, -1).to(dev), d.expression.to(dev), d.jaw.to(dev))
        disp = disp * self.cfg.detail_scale
        albedo = self.albedo(ident["tex"]).to(dev).expand(k, -1, -1, -1)
        out = self.renderer(flame.vertices, cam.to(dev), albedo, d.light.to(dev), d.background.to(dev),
                            landmarks=flame.landmarks2d, displacement=disp)
        return flame, cam, disp, out

    @torch.no_grad()
    def generate_identity(self, index: int) -> shards.IdentitySample:
        """Render identity ``index`` (K images) with its ground truth; deterministic in (cfg, index)."""
        cfg, k = self.cfg, self.cfg.images_per_identity
        g = torch.Generator().manual_seed(identity_seed(cfg.seed, index))
        ident = self._draw_identity(g)
        d = self._draw_images(k, g)
        jaw_pose = torch.zeros(k, 3)
        jaw_pose[:, 0] = d.jaw
        flame, cam, disp, out = self._render(ident, d, jaw_pose)
        lmk_px = ndc_to_pixels(out.landmarks3d_ndc[..., :2], cfg.render_size, cfg.render_size) - 0.5
        images = (out.image_detail.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        masks = (self.skin_mask(out.vertices_ndc)[:, 0] * 255.0).to(torch.uint8).cpu().numpy()
        crops = self._crop_all(images, masks, lmk_px.cpu().numpy().astype(np.float64), cam.numpy().astype(np.float64))
        name = f"synth{index:06d}"
        gt = {
            "shape": ident["shape"].expand(k, -1).numpy(), "tex": ident["tex"].expand(k, -1).numpy(),
            "exp": d.expression.numpy(), "pose": torch.cat([d.global_pose, jaw_pose], 1).numpy(),
            "cam": crops["cams"], "light": d.light.numpy(), "detail": ident["detail"].expand(k, -1).numpy(),
            "lmk3d": flame.landmarks2d.cpu().numpy(), "verts": flame.vertices.cpu().numpy(),
            "disp": disp.cpu().numpy(),
        }
        landmarks = crops["landmarks"] + d.lmk_noise.numpy().astype(np.float64)
        return shards.IdentitySample(identity=name, images=crops["images"], landmarks=landmarks.astype(np.float32),
                                     masks=crops["masks"], meta=self._meta(name, index, crops, cam.numpy()), gt=gt)

    def _crop_all(self, images: np.ndarray, masks: np.ndarray, lmk_px: np.ndarray, cams: np.ndarray) -> dict[str, Any]:
        """Crop every render like prepared real data; landmarks and cameras follow into the crop frame."""
        cfg = self.cfg
        out: dict[str, list] = {"images": [], "masks": [], "landmarks": [], "boxes": [], "matrices": [], "cams": []}
        for i in range(len(images)):
            crop = square_crop(lmk_px[i], shards.CONTEXT_SCALE, cfg.size)
            out["images"].append(warp(images[i], crop))
            out["masks"].append(np.where(warp(masks[i], crop) >= 128, 255, 0).astype(np.uint8))
            out["landmarks"].append(transform_points(lmk_px[i], crop.matrix))
            out["boxes"].append(crop.box)
            out["matrices"].append(crop.matrix)
            out["cams"].append(crop_camera(cams[i], crop.matrix, cfg.render_size, cfg.size))
        return {k: np.stack(v) for k, v in out.items()}

    def _meta(self, name: str, index: int, crops: dict[str, Any], render_cams: np.ndarray) -> dict[str, Any]:
        cfg = self.cfg
        k = cfg.images_per_identity
        return {
            "detector": "synthetic", "landmarker": "ground-truth", "mask_source": "render",
            "sources": [f"synthetic:{cfg.seed}:{name}"] * k,
            "crop_boxes": np.round(crops["boxes"], 4).tolist(),
            "crop_matrices": np.round(crops["matrices"], 8).tolist(),
            "render_cams": np.round(render_cams.astype(np.float64), 8).tolist(),
            "render_size": cfg.render_size, "generator": GENERATOR_NAME, "head": self.assets_source,
            "index": index,
            "gt_keys": {
                "shape": "(N, S) FLAME shape code (same row for every image)", "tex": "(N, T) albedo code",
                "exp": "(N, E) FLAME expression code", "pose": "(N, 6) global axis-angle 3 + jaw axis-angle 3",
                "cam": "(N, 3) orthographic (s, tx, ty) of the stored crop", "light": "(N, 9, 3) SH light",
                "detail": f"(N, {DETAIL_DIM}) detail code (decalite.data.synthetic.DETAIL_LAYOUT)",
                "lmk3d": "(N, 68, 3) model-space 3D points of the stored 2D landmarks",
                "verts": "(N, V, 3) posed vertices", "disp": "(N, 1, U, U) UV displacement (metres)",
            },
        }


def _load_assets(assets_dir: str | Path | None, n_tex: int):
    """(assets, is_generated_head): the folder's assets, or the generated head built in memory."""
    from decalite.flame.assets import FlameAssets, load_flame_assets

    if assets_dir is None:
        from decalite.flame.synthetic import generate_head

        head = generate_head(0)
        assets = FlameAssets(model=head.model, embedding=head.embedding, uv=head.uv, face_mask=head.face_mask,
                             face_eye_mask=head.face_eye_mask, albedo=head.albedo, root="<generated>")
        return assets, True
    readme = Path(assets_dir) / "README.txt"
    generated = readme.is_file() and "decalite generated" in readme.read_text(errors="ignore")
    return load_flame_assets(assets_dir, n_tex=n_tex, require_albedo=True), generated


def generate_identity(cfg: SyntheticConfig, index: int, assets_dir: str | Path | None = None) -> shards.IdentitySample:
    """Identity ``index`` of the dataset ``cfg`` describes (builds a generator; reuse one for many)."""
    return SyntheticGenerator(cfg, assets_dir).generate_identity(index)


# --------------------------------------------------------------------------------------------------------
# Dataset writer


def _reusable(out: Path, name: str, previous: dict[str, dict[str, Any]]) -> shards.ShardInfo | None:
    """The manifest's ShardInfo of an existing shard whose checksum still matches, else None."""
    entry = previous.get(name)
    path = out / name
    if entry is None or not path.is_file() or shards.sha256_file(path) != entry["sha256"]:
        return None
    return shards.ShardInfo(**entry)


def write_synthetic_dataset(
    cfg: SyntheticConfig,
    out_dir: str | Path,
    identities_per_shard: int = 50,
    assets_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    generator: SyntheticGenerator | None = None,
    on_skip: Callable[[int], None] | None = None,
) -> Path:
    """Write ``synth-000000.tar``, ... and ``manifest.json``. Returns the manifest's path.

    Resumable: a shard already present with the checksum the manifest records (for the same configuration)
    is kept as is; the manifest is rewritten after every shard.

    Args:
        cfg: what to generate. out_dir: the folder. identities_per_shard: identities per tar.
        assets_dir: FLAME-format asset folder (None: the generated head).
        progress: called with the number of identities done after each identity (or skipped shard).
        generator: a ready generator for ``cfg`` (built lazily otherwise, only when a shard must be written).
        on_skip: called with the number of identities of each skipped shard.
    """
    if identities_per_shard < 1:
        raise ValueError(f"identities_per_shard must be >= 1; got {identities_per_shard}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = {"generator": GENERATOR_NAME, "config": cfg.to_json(), "identities_per_shard": identities_per_shard}
    old = shards.read_manifest(out)
    same_config = all(old.get(key) == value for key, value in extra.items())
    previous = {s["name"]: s for s in old.get("shards", [])} if same_config else {}
    infos: list[shards.ShardInfo] = []
    names = [SHARD_PATTERN.format(i) for i in range(math.ceil(cfg.identities / identities_per_shard))]
    for i, name in enumerate(names):
        indices = range(i * identities_per_shard, min(cfg.identities, (i + 1) * identities_per_shard))
        info = _reusable(out, name, previous)
        if info is not None:
            log.info("%s already written (checksum matches): skipped", name)
            for callback in (progress, on_skip):
                if callback:
                    callback(len(indices))
        else:
            generator = generator or SyntheticGenerator(cfg, assets_dir)
            info = shards.write_shard(out / name, _samples(generator, indices, progress))
        infos.append(info)
        # Shards still to visit keep their old entries, so an interrupted run loses no finished work.
        pending = [shards.ShardInfo(**previous[n]) for n in names[i + 1:] if n in previous]
        shards.write_manifest(out, infos + pending, extra=extra)
    return shards.write_manifest(out, infos, extra=extra)


def _samples(generator: SyntheticGenerator, indices: Iterable[int],
             progress: Callable[[int], None] | None) -> Iterable[shards.IdentitySample]:
    for index in indices:
        sample = generator.generate_identity(index)
        if progress:
            progress(1)
        yield sample
