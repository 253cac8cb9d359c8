"""Detail-stage regularisers on UV maps: soft symmetry, displacement magnitude, shading smoothness, and
decalite's low-frequency penalty on D.

All three are masked means: ``sum(mask * value) / sum(mask)`` over the batch and the masked texels, so their
size does not depend on the UV resolution or the batch size. The DECA paper writes L_sym and L_regD with the
entry-wise norm ``||.||_{1,1}`` (a sum); decalite normalises by the masked area instead, and the official
code is different again (noted per function). Weights come from conf/loss (DECA: 0.005 each).

Shapes: B batch, U UV size, C channels. Displacements are (B, 1, U, U); masks are (1, 1, U, U) (one UV mask
for all samples, e.g. ``uv_face_eye_mask``) or (B, 1, U, U) (per sample, e.g. a visibility mask), with
values in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d


def _check_maps(name: str, maps: torch.Tensor, channels: int | None = 1) -> None:
    if maps.ndim != 4 or (channels is not None and maps.shape[1] != channels):
        want = f"(B, {channels}, U, U)" if channels is not None else "(B, C, U, U)"
        raise ValueError(f"{name} must be {want}, got {tuple(maps.shape)}")


def _check_mask(mask: torch.Tensor, maps: torch.Tensor) -> None:
    ok = mask.ndim == 4 and mask.shape[1] == 1 and mask.shape[0] in (1, maps.shape[0])
    if not ok or mask.shape[2:] != maps.shape[2:]:
        raise ValueError(
            f"mask must be (1, 1, {maps.shape[2]}, {maps.shape[3]}) or ({maps.shape[0]}, 1, {maps.shape[2]}, "
            f"{maps.shape[3]}) to match maps {tuple(maps.shape)}, got {tuple(mask.shape)}"
        )


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(mask * values) / sum(mask) with the mask broadcast to ``values``; 0 when the mask is empty.

    values: (B, C, h, w); mask: (1 or B, 1, h, w).
    """
    total = (values * mask).sum()
    area = mask.expand_as(values).sum()  # (1|B, 1, h, w) -> (B, C, h, w): count every masked value once
    return total / area.clamp_min(torch.finfo(area.dtype).tiny)


def soft_symmetry_loss(
    displacement: torch.Tensor, mask: torch.Tensor, *, detach_mirror: bool = False
) -> torch.Tensor:
    """DECA's soft symmetry L_sym: masked mean of |D - flip(D)|, flipping the UV map left-right.

    FLAME's UV layout (and decalite's generated head) places the face symmetric about the vertical centre
    line of the UV square, so texel (i, j) mirrors texel (i, U - 1 - j): the flip is along the last axis.

    ``L_sym = sum_{b,i,j} m_{b,i,j} |D_{b,i,j} - D_{b,i,U-1-j}| / sum_{b,i,j} m_{b,i,j}``

    Paper: ``||V_uv * (D - flip(D))||_{1,1}`` with V_uv the face mask in UV space. The official code instead
    sums (not averages) over the *non-visible* texels (1 - eroded visibility mask, per sample) and detaches
    the mirrored map, so occluded texels copy their visible mirror. decalite follows the paper's form (pass
    the face-eye mask) as a mean; a per-sample visibility-derived mask and ``detach_mirror=True`` give the
    official behaviour up to the normalisation.

    Args:
        displacement: (B, 1, U, U) UV displacement map D.
        mask: (1, 1, U, U) or (B, 1, U, U) in [0, 1]; only masked texels count (the mask need not be symmetric).
        detach_mirror: stop gradients through flip(D) (the official code's choice).

    Returns:
        () the loss; 0 for a left-right symmetric map or an empty mask.
    """
    _check_maps("displacement", displacement)
    _check_mask(mask, displacement)
    mirrored = torch.flip(displacement, dims=[-1])  # (B, 1, U, U), column j <- column U-1-j
    if detach_mirror:
        mirrored = mirrored.detach()
    return _masked_mean((displacement - mirrored).abs(), mask)


def displacement_regularizer(displacement: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """DECA's L_regD: masked mean of |D|.

    ``L_regD = sum_{b,i,j} m_{b,i,j} |D_{b,i,j}| / sum_{b,i,j} m_{b,i,j}``

    Paper: ``||D||_{1,1}`` (a sum over the map). The official code takes ``mean(|D|)`` over the whole UV
    map, unmasked; pass an all-ones (1, 1, U, U) mask for that.

    Args:
        displacement: (B, 1, U, U). mask: (1, 1, U, U) or (B, 1, U, U) in [0, 1].

    Returns:
        () the loss.
    """
    _check_maps("displacement", displacement)
    _check_mask(mask, displacement)
    return _masked_mean(displacement.abs(), mask)


def low_frequency_displacement_loss(displacement: torch.Tensor, mask: torch.Tensor, *,
                                    sigma_fraction: float = 1.0 / 16.0) -> torch.Tensor:
    """Masked mean of |D blurred|: penalises the smooth part of D, which the coarse shape owns.

    Not in DECA (decalite's addition, off in the paper's configs). At the CPU demo's scale the detail stage learned a
    smooth ramp across the face (67% of D's variance, 94% low-frequency, the same for every person) that tilts the
    normals to re-light the face instead of adding details; |D| (L_regD) is too weak to stop it. The blur is a
    normalised convolution ``G * (m D) / G * m`` (texels outside the mask do not pull the blur to zero) with a
    Gaussian of ``sigma_fraction * U`` texels: wrinkles (a few texels wide) average out, ramps and bumps do not.

    Args:
        displacement: (B, 1, U, U). mask: (1, 1, U, U) or (B, 1, U, U) in [0, 1].
        sigma_fraction: the Gaussian's standard deviation as a fraction of the UV size U.

    Returns:
        () the loss; 0 for a map whose every blurred texel averages to 0 (e.g. a zero-mean fine pattern).
    """
    _check_maps("displacement", displacement)
    _check_mask(mask, displacement)
    sigma = max(sigma_fraction * displacement.shape[-1], 0.5)
    size = 2 * int(math.ceil(3.0 * sigma)) + 1  # +-3 sigma
    mask = mask.to(displacement.dtype)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return gaussian_blur2d(x, (size, size), (sigma, sigma), border_type="constant")

    weight = blur(mask).expand_as(displacement)  # (1|B, 1, U, U) -> (B, 1, U, U)
    smooth = blur(displacement * mask) / weight.clamp_min(1e-6)
    return _masked_mean(smooth.abs(), mask)


def shading_smoothness_loss(shading_uv: torch.Tensor, mask: torch.Tensor, *, squared: bool = False) -> torch.Tensor:
    """Smoothness of the detail shading (or normal) map in UV space: masked mean neighbour differences.

    ``L = mean_{pairs in mask} |S[i, j+1] - S[i, j]| + mean_{pairs in mask} |S[i+1, j] - S[i, j]|``

    a horizontal and a vertical mean, each over channels and over the neighbour pairs whose two texels are
    both in the mask (pair weight = product of the two mask values).

    This term is not in the DECA paper (its detail objective is L_phoD + L_mrf + L_sym + L_dc + L_regD); it
    comes from the official code (``z_diff``: ``lossfunc.shading_smooth_loss`` on the UV shading, weight
    ``reg_diff`` = 0.005, citing Lifting AutoEncoders, Sahasrabudhe et al. 2019), which uses *squared*
    differences over the whole UV map without a mask (``squared=True`` with an all-ones mask matches it up to
    the one-texel border it crops). decalite defaults to absolute differences inside the mask, so
    non-face UV regions (which carry no detail) do not pull on the term.

    Args:
        shading_uv: (B, C, U, U) shading (C = 3) or detail normals (C = 3) or any UV map.
        mask: (1, 1, U, U) or (B, 1, U, U) in [0, 1].
        squared: use squared instead of absolute differences.

    Returns:
        () the loss; 0 for a map that is constant inside the mask.
    """
    _check_maps("shading_uv", shading_uv, channels=None)
    _check_mask(mask, shading_uv)
    dx = shading_uv[..., :, 1:] - shading_uv[..., :, :-1]  # (B, C, U, U-1)
    dy = shading_uv[..., 1:, :] - shading_uv[..., :-1, :]  # (B, C, U-1, U)
    mx = mask[..., :, 1:] * mask[..., :, :-1]  # (1|B, 1, U, U-1): both texels of the pair in the mask
    my = mask[..., 1:, :] * mask[..., :-1, :]  # (1|B, 1, U-1, U)
    if squared:
        dx, dy = dx.square(), dy.square()
    else:
        dx, dy = dx.abs(), dy.abs()
    return _masked_mean(dx, mx) + _masked_mean(dy, my)


def resize_to_mask(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, C, U', U') maps resampled (bilinear) to the mask's (1, 1, U, U) size when they differ."""
    if maps.shape[-2:] == mask.shape[-2:]:
        return maps
    return F.interpolate(maps, size=mask.shape[-2:], mode="bilinear", align_corners=False)


def displacement_error(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) mean |pred - true| inside the mask, in the maps' unit (a metric on synthetic data, not a loss).

    pred: (N, 1, U, U); true: (N, 1, U', U'), resampled to U when it differs; mask: (1, 1, U, U).
    """
    return ((pred - resize_to_mask(true, mask)).abs() * mask).sum((1, 2, 3)) / mask.sum().clamp_min(1.0)
