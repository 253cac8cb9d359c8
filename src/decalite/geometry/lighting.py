"""Second-order spherical-harmonics (SH) shading as used by DECA.

The nine real SH basis functions are evaluated on unit normals and scaled by
the constants of DECA's irradiance model (the Lambertian convolution factors
already folded in), so that ``shading = sum_k light[k] * basis_k(N)``.
"""

from __future__ import annotations

import math

import torch

from decalite.precision import full_precision

__all__ = ["SH_CONSTANTS", "sh_basis", "sh_shading", "white_light"]

_PI = math.pi

#: The 9 scaling constants of DECA's SH shading, in basis order.
SH_CONSTANTS: tuple[float, ...] = (
    1.0 / math.sqrt(4.0 * _PI),
    (2.0 * _PI / 3.0) * math.sqrt(3.0 / (4.0 * _PI)),
    (2.0 * _PI / 3.0) * math.sqrt(3.0 / (4.0 * _PI)),
    (2.0 * _PI / 3.0) * math.sqrt(3.0 / (4.0 * _PI)),
    (_PI / 4.0) * 3.0 * math.sqrt(5.0 / (12.0 * _PI)),
    (_PI / 4.0) * 3.0 * math.sqrt(5.0 / (12.0 * _PI)),
    (_PI / 4.0) * 3.0 * math.sqrt(5.0 / (12.0 * _PI)),
    (_PI / 4.0) * (3.0 / 2.0) * math.sqrt(5.0 / (12.0 * _PI)),
    (_PI / 4.0) * (1.0 / 2.0) * math.sqrt(5.0 / (4.0 * _PI)),
)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """Scaled SH basis of unit normals.

    Args:
        normals: unit normals, shape ``(..., 3)``.

    Returns:
        ``(..., 9)``: ``[1, Nx, Ny, Nz, NxNy, NxNz, NyNz, Nx^2-Ny^2, 3Nz^2-1]``
        multiplied elementwise by :data:`SH_CONSTANTS`.
    """
    nx, ny, nz = normals.unbind(dim=-1)
    basis = torch.stack(
        [
            torch.ones_like(nx),
            nx,
            ny,
            nz,
            nx * ny,
            nx * nz,
            ny * nz,
            nx * nx - ny * ny,
            3.0 * nz * nz - 1.0,
        ],
        dim=-1,
    )
    consts = torch.tensor(SH_CONSTANTS, dtype=normals.dtype, device=normals.device)
    return basis * consts


@full_precision
def sh_shading(normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Per-point RGB shading from SH lighting.

    Args:
        normals: unit normals, shape ``(B, ..., 3)`` (e.g. ``(B, N, 3)`` or
            ``(B, H, W, 3)``).
        light: SH coefficients, shape ``(B, 9, 3)`` (coefficient, channel).

    Returns:
        ``(B, ..., 3)``: ``shading[..., c] = sum_k light[b, k, c] * basis_k(N)``.
    """
    if light.shape[-2:] != (9, 3):
        raise ValueError(f"light must have shape (B, 9, 3), got {tuple(light.shape)}")
    batch = normals.shape[0]
    basis = sh_basis(normals)  # (B, ..., 9)
    flat = basis.reshape(batch, -1, 9)  # (B, M, 9)
    shading = torch.bmm(flat, light.to(flat.dtype))  # (B, M, 3)
    return shading.reshape(*normals.shape[:-1], 3)


def white_light(
    batch: int,
    intensity: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Constant white light giving uniform shading equal to ``intensity``.

    Returns:
        ``(B, 9, 3)`` with only the DC coefficient set to
        ``intensity / SH_CONSTANTS[0]``.
    """
    light = torch.zeros(batch, 9, 3, dtype=dtype, device=device)
    light[:, 0, :] = intensity / SH_CONSTANTS[0]
    return light
