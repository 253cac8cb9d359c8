"""Pure UV-space geometry: normals of a position map and displacement-mapped detail normals (DECA's detail path).

UV maps are images ``(B, C, U, U)`` whose row 0 is the top of the UV square (v = 1), like the UV masks and
albedo textures; column index grows with u.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def position_map_normals(positions: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Normals of a position map from central differences on the UV grid.

    Args:
        positions: (B, 3, U, U) surface positions per texel.
        reference: (B, 3, U, U) normals whose side the result is turned to (e.g. the coarse normals), so the
            result does not depend on whether the UV chart is mirrored.

    Returns:
        (B, 3, U, U) unit normals.
    """
    padded = F.pad(positions, (1, 1, 1, 1), mode="replicate")  # (B, 3, U+2, U+2)
    d_col = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) * 0.5  # along u
    d_row = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) * 0.5  # along -v
    n = torch.cross(d_col, -d_row, dim=1)  # (dP/du) x (dP/dv)
    n = F.normalize(n, dim=1)
    flip = (n * reference).sum(1, keepdim=True) < 0
    return torch.where(flip, -n, n)


def displace(
    positions: torch.Tensor,
    normals: torch.Tensor,
    displacement: torch.Tensor,
    mask: torch.Tensor,
    fixed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Detailed positions: ``positions + (displacement * mask + fixed) * normals`` (DECA's displacement2normal).

    As in DECA, only the predicted displacement is masked; the fixed map (DECA's ``fixed_displacement_256.npy``)
    is added everywhere.

    Args:
        positions, normals: (B, 3, U, U) coarse position and unit-normal maps.
        displacement: (B, 1, U, U) signed offsets along the normal, in the mesh's units (metres).
        mask: (1 or B, 1, U, U) where details apply (DECA's uv_face_eye_mask).
        fixed: (1, 1, U, U) displacement added to every prediction, or None.
    """
    offset = displacement * mask
    if fixed is not None:
        offset = offset + fixed
    return positions + offset * normals


def detail_normals(
    positions: torch.Tensor,
    normals: torch.Tensor,
    displacement: torch.Tensor,
    mask: torch.Tensor,
    fixed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normals of the displaced surface inside ``mask``, the coarse normals outside it.

    Args:
        positions, normals: (B, 3, U, U) coarse position and unit-normal maps.
        displacement: (B, 1, U, U). mask: (1 or B, 1, U, U) in [0, 1]. fixed: (1, 1, U, U) or None.

    Returns:
        (B, 3, U, U) unit normals.
    """
    detailed = position_map_normals(displace(positions, normals, displacement, mask, fixed), normals)
    return F.normalize(mask * detailed + (1.0 - mask) * normals, dim=1)
