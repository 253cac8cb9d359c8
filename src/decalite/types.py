"""Typed containers passed between decalite's modules.

Keep this module free of heavy logic: plain dataclasses of tensors, each field documented with its shape.
``B`` is the batch size, ``V`` the number of mesh vertices and ``J`` the number of joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FlameOutput:
    """The result of one :class:`decalite.flame.layer.FlameLayer` forward pass (metres, model space).

    Attributes:
        vertices: (B, V, 3) posed mesh vertices.
        landmarks2d: (B, 68, 3) the landmark set used for 2D fitting: the 17 jaw-contour points chosen by the
            head's yaw (dynamic embedding) followed by the 51 static inner-face points.
        landmarks3d: (B, 68, 3) the full 68 3D landmarks of the fixed (full) embedding.
        joints: (B, J, 3) posed joint locations, in the order of ``decalite.flame.model_data.JOINT_NAMES``.
    """

    vertices: torch.Tensor
    landmarks2d: torch.Tensor
    landmarks3d: torch.Tensor
    joints: torch.Tensor
