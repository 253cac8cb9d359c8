"""FLAME as a torch module: shape, expression and pose codes in; vertices, landmarks and joints out.

FLAME: Li, Bolkart, Black, Li and Romero, "Learning a model of facial shape and expression from 4D scans",
SIGGRAPH Asia 2017. The skinning itself lives in :mod:`decalite.flame.lbs`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from decalite.config import CodeSizes
from decalite.flame.lbs import (
    CONTOUR_CONVENTIONS,
    GLOBAL_JOINT,
    NECK_JOINT,
    barycentric_landmarks,
    dynamic_contour_landmarks,
    lbs_with_rotations,
)
from decalite.flame.model_data import (
    JOINT_NAMES,
    N_CONTOUR,
    N_LANDMARKS,
    N_STATIC,
    N_YAW_BINS,
    FlameModelData,
    LandmarkEmbedding,
)
from decalite.precision import full_precision
from decalite.types import FlameOutput

#: Width of each pose input of :meth:`FlameLayer.forward` (axis-angle, radians).
_POSE_WIDTHS = {"global_pose": 3, "neck_pose": 3, "jaw_pose": 3, "eye_pose": 6}


def _dense(array: object) -> np.ndarray:
    """A numpy array from a dense or scipy-sparse array."""
    if hasattr(array, "toarray"):
        array = array.toarray()  # type: ignore[union-attr]
    return np.asarray(array)


def _float(array: object) -> torch.Tensor:
    return torch.as_tensor(_dense(array), dtype=torch.float32)


def _index(array: object) -> torch.Tensor:
    return torch.as_tensor(_dense(array).astype(np.int64))


def _check_embedding(embedding: LandmarkEmbedding, n_faces: int) -> None:
    expected = {
        "static_faces": (N_STATIC,),
        "static_bary": (N_STATIC, 3),
        "dynamic_faces": (N_YAW_BINS, N_CONTOUR),
        "dynamic_bary": (N_YAW_BINS, N_CONTOUR, 3),
        "full_faces": (N_LANDMARKS,),
        "full_bary": (N_LANDMARKS, 3),
    }
    for name, shape in expected.items():
        got = tuple(np.shape(getattr(embedding, name)))
        if got != shape:
            raise ValueError(f"landmark embedding {name} must have shape {shape}; got {got} ({embedding.source})")
    for name in ("static_faces", "dynamic_faces", "full_faces"):
        idx = np.asarray(getattr(embedding, name))
        if idx.size and (idx.min() < 0 or idx.max() >= n_faces):
            raise ValueError(f"landmark embedding {name} indexes outside the mesh's {n_faces} faces")


class FlameLayer(nn.Module):
    """The FLAME head model.

    All model arrays are non-persistent buffers: they follow ``.to()`` / ``.double()`` but never enter
    ``state_dict()`` (FLAME is licensed and must not end up in checkpoints). Float buffers start as float32.

    Args:
        model: FLAME model arrays.
        embedding: landmark embedding on ``model``'s faces.
        n_shape: number of identity shape components used (at most 300).
        n_exp: number of expression components used (at most ``model.n_exp_total``).
        contour_convention: yaw-bin layout of ``embedding``'s dynamic contour: ``"deca"`` for DECA's
            ``landmark_embedding.npy`` and decalite's generated head (bin ``b <= 39`` = yaw ``+b`` degrees),
            ``"smplx"`` for a file laid out as smplx's ``flame_dynamic_embedding.npy`` (negated yaw).
    """

    def __init__(
        self,
        model: FlameModelData,
        embedding: LandmarkEmbedding,
        n_shape: int = CodeSizes.n_shape,
        n_exp: int = CodeSizes.n_exp,
        contour_convention: str = "deca",
    ) -> None:
        super().__init__()
        if not 0 <= n_shape <= model.n_shape_total:
            raise ValueError(f"n_shape must be in [0, {model.n_shape_total}]; got {n_shape}")
        if not 0 <= n_exp <= model.n_exp_total:
            raise ValueError(f"n_exp must be in [0, {model.n_exp_total}] for this model; got {n_exp}")
        if model.n_joints != len(JOINT_NAMES):
            raise ValueError(f"FLAME has {len(JOINT_NAMES)} joints {JOINT_NAMES}; model has {model.n_joints}")
        _check_embedding(embedding, int(np.shape(model.faces)[0]))
        if contour_convention not in CONTOUR_CONVENTIONS:
            raise ValueError(f"contour_convention must be one of {CONTOUR_CONVENTIONS}; got {contour_convention!r}")
        self.contour_convention = contour_convention
        self._n_shape = int(n_shape)
        self._n_exp = int(n_exp)
        self._parents = tuple(int(p) for p in _dense(model.parents))

        shapedirs = _dense(model.shapedirs)
        first_exp = model.n_shape_total
        used_dirs = np.concatenate(
            [shapedirs[:, :, :n_shape], shapedirs[:, :, first_exp : first_exp + n_exp]], axis=2
        )  # (V, 3, n_shape + n_exp)

        buffers = {
            "v_template": _float(model.v_template),
            "faces_idx": _index(model.faces),
            "shapedirs": _float(used_dirs),
            "posedirs": _float(model.posedirs),
            "j_regressor": _float(model.j_regressor),
            "parents": _index(model.parents),
            "lbs_weights": _float(model.lbs_weights),
            "static_lmk_faces": _index(embedding.static_faces),
            "static_lmk_bary": _float(embedding.static_bary),
            "dynamic_lmk_faces": _index(embedding.dynamic_faces),
            "dynamic_lmk_bary": _float(embedding.dynamic_bary),
            "full_lmk_faces": _index(embedding.full_faces),
            "full_lmk_bary": _float(embedding.full_bary),
        }
        for name, tensor in buffers.items():
            self.register_buffer(name, tensor, persistent=False)

    @property
    def n_shape(self) -> int:
        return self._n_shape

    @property
    def n_exp(self) -> int:
        return self._n_exp

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def faces(self) -> torch.Tensor:
        """(F, 3) long triangle vertex indices."""
        return self.faces_idx

    def _coerce(self, name: str, value: torch.Tensor | None, width: int, batch: int) -> torch.Tensor:
        """An input as a (B, width) tensor of the buffers' dtype; zeros when None."""
        like = self.v_template
        if value is None:
            return like.new_zeros(batch, width)
        if tuple(value.shape) != (batch, width):
            raise ValueError(f"{name} must have shape ({batch}, {width}); got {tuple(value.shape)}")
        return value.to(dtype=like.dtype)

    @full_precision
    def forward(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        global_pose: torch.Tensor | None = None,
        neck_pose: torch.Tensor | None = None,
        jaw_pose: torch.Tensor | None = None,
        eye_pose: torch.Tensor | None = None,
        batch_size: int | None = None,
    ) -> FlameOutput:
        """Pose and shape the head.

        Args:
            shape: (B, n_shape) identity coefficients.
            expression: (B, n_exp) expression coefficients.
            global_pose: (B, 3) axis-angle rotation of the whole head about the root joint.
            neck_pose: (B, 3) axis-angle rotation of the neck joint.
            jaw_pose: (B, 3) axis-angle rotation of the jaw.
            eye_pose: (B, 6) axis-angle rotations of the left eye then the right eye.
            batch_size: B when no input is given (default 1); must agree with the inputs otherwise.

        Any input left as None is zeros. Inputs are cast to the layer's dtype and must be on its device.

        Returns:
            :class:`decalite.types.FlameOutput` with vertices (B, V, 3), landmarks2d (B, 68, 3),
            landmarks3d (B, 68, 3) and joints (B, 5, 3).
        """
        inputs = {
            "shape": (shape, self._n_shape),
            "expression": (expression, self._n_exp),
            "global_pose": (global_pose, _POSE_WIDTHS["global_pose"]),
            "neck_pose": (neck_pose, _POSE_WIDTHS["neck_pose"]),
            "jaw_pose": (jaw_pose, _POSE_WIDTHS["jaw_pose"]),
            "eye_pose": (eye_pose, _POSE_WIDTHS["eye_pose"]),
        }
        given = [value for value, _ in inputs.values() if value is not None]
        batch = batch_size if batch_size is not None else (int(given[0].shape[0]) if given else 1)
        coerced = {name: self._coerce(name, value, width, batch) for name, (value, width) in inputs.items()}

        coeffs = torch.cat([coerced["shape"], coerced["expression"]], dim=1)  # (B, n_shape + n_exp)
        full_pose = torch.cat(
            [coerced["global_pose"], coerced["neck_pose"], coerced["jaw_pose"], coerced["eye_pose"]], dim=1
        )  # (B, 15): global, neck, jaw, left eye, right eye
        vertices, joints, rot_mats = lbs_with_rotations(
            coeffs,
            full_pose,
            self.v_template,
            self.shapedirs,
            self.posedirs,
            self.j_regressor,
            self._parents,
            self.lbs_weights,
        )

        contour_faces, contour_bary = dynamic_contour_landmarks(
            rot_mats[:, GLOBAL_JOINT],
            rot_mats[:, NECK_JOINT],
            self.dynamic_lmk_faces,
            self.dynamic_lmk_bary,
            self.contour_convention,
        )
        contour = barycentric_landmarks(vertices, self.faces_idx, contour_faces, contour_bary)  # (B, 17, 3)
        static = barycentric_landmarks(vertices, self.faces_idx, self.static_lmk_faces, self.static_lmk_bary)
        full = barycentric_landmarks(vertices, self.faces_idx, self.full_lmk_faces, self.full_lmk_bary)
        return FlameOutput(
            vertices=vertices,
            landmarks2d=torch.cat([contour, static], dim=1),  # (B, 17 + 51, 3)
            landmarks3d=full,
            joints=joints,
        )
