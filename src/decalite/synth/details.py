"""The synthetic detail model: identity-specific static details and expression-dependent wrinkles in UV space.

A detail code (``DETAIL_DIM`` numbers, laid out as :data:`DETAIL_LAYOUT`) sets the static details (smooth
noise, moles) and the depth and shape of the wrinkles; the expression and the jaw opening activate them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

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
#: The detail model's activations on a head with ARKit-named blendshapes (the ICT head): the mean of these
#: shapes' weights, times BLENDSHAPE_FULL (a blendshape at 1 is full activation, as a coefficient of 2 is here).
BLENDSHAPE_ALIASES: dict[str, tuple[str, ...]] = {
    "smile_left": ("mouthSmile_L",),
    "smile_right": ("mouthSmile_R",),
    "brow_raise_left": ("browInnerUp_L", "browOuterUp_L"),
    "brow_raise_right": ("browInnerUp_R", "browOuterUp_R"),
}
BLENDSHAPE_FULL = 2.0

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
        expression_names: names of the expression components (the generated head's EXPRESSION_NAMES, or the ICT
            head's ARKit names, see BLENDSHAPE_ALIASES); empty for a PCA expression space, in which case only
            the jaw drives wrinkles.
        noise_seed: seed of the fixed noise fields (part of the model, not of an identity).
        width: multiplier of every feature's width (mole size, fold width, line spacing; the noise fields'
            cells grow with it): 1 is the model as described, skin-scale; 3 makes features of about a centimetre,
            which small crops and UV maps resolve (the CPU demo's detail world).
        noise: multiplier of the static noise's amplitude (0 removes it).
    """

    def __init__(
        self,
        positions: torch.Tensor,
        landmarks: torch.Tensor,
        face_eye_mask: torch.Tensor,
        expression_names: Sequence[str] = (),
        noise_seed: int = 0,
        width: float = 1.0,
        noise: float = 1.0,
    ) -> None:
        super().__init__()
        if width <= 0 or noise < 0:
            raise ValueError(f"detail width must be > 0 and noise >= 0; got width={width}, noise={noise}")
        size = int(positions.shape[-1])
        self.uv_size = size
        self.width, self.noise_amplitude = float(width), NOISE_AMPLITUDE * float(noise)
        self.expression_names = tuple(expression_names)
        gen = torch.Generator().manual_seed(noise_seed)
        cells = tuple(max(2, round(c / self.width)) for c in (8, 24, 64, 128))
        self.register_buffer("noise", _smooth_noise(N_NOISE_FIELDS, size, gen, cells), persistent=False)  # (16, U, U)
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
    def _component(self, expression: torch.Tensor, name: str) -> torch.Tensor | None:
        """(B, 1, 1) coefficient of a named expression component, or None when this head has none."""
        if name not in self.expression_names or self.expression_names.index(name) >= expression.shape[1]:
            return None
        return expression[:, self.expression_names.index(name), None, None]

    def _exp(self, expression: torch.Tensor, name: str) -> torch.Tensor:
        """(B, 1, 1) activation of a named expression: its component, else its blendshape aliases
        (:data:`BLENDSHAPE_ALIASES`), else 0."""
        own = self._component(expression, name)
        if own is not None:
            return own
        found = [c for c in (self._component(expression, a) for a in BLENDSHAPE_ALIASES.get(name, ())) if c is not None]
        if not found:
            return expression.new_zeros(expression.shape[0], 1, 1)
        return BLENDSHAPE_FULL * torch.stack(found).mean(0)

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
        noise = torch.einsum("bk,kuv->buv", weights, self.noise) * self.noise_amplitude
        mx = (self._part(code, "mole_x") * 2.0 - 1.0) * self._face_x * 0.85
        my = self._chin + 0.01 + self._part(code, "mole_y") * (self._brow_top + 0.03 - self._chin - 0.01)
        h = self._part(code, "mole_height")
        height = MOLE_HEIGHT * h * (h > 0.3)  # about a third of the potential moles are absent
        d2 = (self.x - mx) ** 2 + (self.y - my) ** 2  # (B, 4, U, U)
        moles = (height * torch.exp(-0.5 * d2 / (MOLE_SIGMA * self.width) ** 2)).sum(1)
        return noise + moles

    def forehead(self, code: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(B, U, U) forehead lines (negative = grooves)."""
        depth, spacing, phase, rest = self._part(code, "forehead").unbind(1)  # each (B, 1, 1)
        act = self._sided(expression, "brow_raise", "brow_raise_left", "brow_raise_right")
        rise = self.y - self._brow_top - 0.25 * self.x**2 / 0.05  # arched lines
        period = (0.006 + 0.004 * spacing) * self.width
        groove = (0.5 + 0.5 * torch.cos(2 * math.pi * rise / period + 2 * math.pi * phase)) ** 6
        amplitude = WRINKLE_DEPTH * ((0.4 + 0.6 * depth) * act + 0.1 * rest)
        return -amplitude * groove * self.forehead_window

    def crows_feet(self, code: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(B, U, U) radial grooves at both outer eye corners."""
        depth, count, phase = self._part(code, "crows").unbind(1)
        act = self._sided(expression, "smile", "smile_left", "smile_right")
        lines = (3.0 + 3.0 * count)[:, None] / self.width  # grooves per pi radians, (B, 1, 1, 1)
        groove = (0.5 + 0.5 * torch.cos(2 * math.pi * (lines * self.crow_angle / math.pi + phase[:, None]))) ** 6
        total = (groove * self.crow_window).sum(1)  # (B, 2, U, U) -> (B, U, U)
        return -WRINKLE_DEPTH * (0.4 + 0.6 * depth) * act * total

    def nasolabial(self, code: torch.Tensor, expression: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        """(B, U, U) nasolabial folds; ``jaw`` (B,) jaw opening in radians."""
        depth, width, rest = self._part(code, "nasolabial").unbind(1)
        smile = self._sided(expression, "smile", "smile_left", "smile_right")
        act = (smile + (jaw.clamp(min=0) / 0.4)[:, None, None]).clamp(0.0, 1.0)
        sigma = (0.0015 + 0.0015 * width)[:, None] * self.width  # (B, 1, 1, 1)
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

