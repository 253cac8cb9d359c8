"""Linear blend skinning and landmark helpers for FLAME-style models.

The model is linear blend skinning with shape and pose blend shapes as introduced for SMPL (Loper et al.,
"SMPL: A Skinned Multi-Person Linear Model", 2015) and used by FLAME (Li et al., "Learning a model of facial
shape and expression from 4D scans", 2017)::

    v_shaped = v_template + shapedirs . coeffs
    joints   = J_regressor . v_shaped
    v_posed  = v_shaped + posedirs . (R - I) of every non-root joint
    vertices = sum_j w_vj * T_j(pose, joints) . v_posed

Everything here is a pure, batched, differentiable torch function that works for float32 and float64 on any
device; the caller chooses dtype and device through its inputs. Shapes use ``B`` (batch), ``V`` (vertices),
``F`` (faces), ``J`` (joints), ``K`` (blend-shape components), ``P = 9 * (J - 1)`` (pose features) and ``L``
(landmarks).

Written from the published equations; no code was taken from the SMPL, FLAME or DECA releases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from decalite.precision import full_precision

#: Yaw bins of FLAME's dynamic (jaw-contour) landmark embedding cover -39..+39 whole degrees.
MAX_CONTOUR_YAW_DEG = 39
#: Layouts of the dynamic embedding's yaw bins (see :func:`yaw_to_contour_bin`).
CONTOUR_CONVENTIONS = ("deca", "smplx")
#: Index of the global (root) and neck joints in FLAME's joint order.
GLOBAL_JOINT = 0
NECK_JOINT = 1


def rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors to rotation matrices (Rodrigues' formula).

    Args:
        axis_angle: (N, 3) rotation axis scaled by the angle in radians (any leading dims ``(*, 3)`` work).

    Returns:
        (N, 3, 3) rotation matrices (``(*, 3, 3)``), acting on column vectors (right-hand rule).

    Uses kornia's ``axis_angle_to_rotation_matrix``: it matches scipy to float64 rounding and switches to a
    Taylor expansion near zero angle, so the gradient is finite and exact at and near the identity (checked
    with ``torch.autograd.gradcheck`` at 0, 1e-8 and around its 1e-3 branch point).
    """
    if axis_angle.shape[-1] != 3:
        raise ValueError(f"axis_angle must have shape (N, 3); got {tuple(axis_angle.shape)}")
    return axis_angle_to_rotation_matrix(axis_angle)


def blend_shapes(coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Linear blend-shape offsets.

    Args:
        coeffs: (B, K) coefficients.
        dirs: (V, 3, K) blend-shape directions.

    Returns:
        (B, V, 3) offsets ``offset[b, v, c] = sum_k coeffs[b, k] * dirs[v, c, k]``.
    """
    return torch.einsum("bk,vck->bvc", coeffs, dirs)


def regress_joints(j_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint locations as fixed linear combinations of vertices.

    Args:
        j_regressor: (J, V) regressor weights.
        vertices: (B, V, 3).

    Returns:
        (B, J, 3) joint locations.
    """
    return torch.einsum("jv,bvc->bjc", j_regressor, vertices)


def pose_feature(rot_mats: torch.Tensor) -> torch.Tensor:
    """Pose-corrective features: ``R - I`` of every joint but the root, flattened row-major.

    Args:
        rot_mats: (B, J, 3, 3) per-joint local rotations.

    Returns:
        (B, 9 * (J - 1)) features; joint ``j``'s entry ``(r, c)`` is at ``9 * (j - 1) + 3 * r + c``, the
        layout of FLAME's ``posedirs`` (V, 3, 9 * (J - 1)).
    """
    batch = rot_mats.shape[0]
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    delta = rot_mats[:, 1:] - eye  # (B, J-1, 3, 3)
    return delta.reshape(batch, -1)  # (B, J-1, 3, 3) -> (B, 9*(J-1))


def pose_offsets(features: torch.Tensor, posedirs: torch.Tensor) -> torch.Tensor:
    """Pose-corrective vertex offsets.

    Args:
        features: (B, P) output of :func:`pose_feature`.
        posedirs: (V, 3, P) pose blend shapes.

    Returns:
        (B, V, 3) offsets ``offset[b, v, c] = sum_p features[b, p] * posedirs[v, c, p]``.
    """
    return torch.einsum("bp,vcp->bvc", features, posedirs)


def _parent_list(parents: torch.Tensor | Sequence[int], n_joints: int) -> list[int]:
    """Parents as python ints, validated: root first (-1), every other parent precedes its child."""
    plist = [int(p) for p in (parents.tolist() if isinstance(parents, torch.Tensor) else parents)]
    if len(plist) != n_joints:
        raise ValueError(f"parents has {len(plist)} entries for {n_joints} joints")
    if n_joints and plist[0] != -1:
        raise ValueError(f"parents[0] must be -1 (the root); got {plist[0]}")
    for j, p in enumerate(plist[1:], start=1):
        if not 0 <= p < j:
            raise ValueError(f"parents must be topologically ordered (0 <= parents[j] < j); parents[{j}] = {p}")
    return plist


def _affine(rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Homogeneous transforms from rotations (*, 3, 3) and translations (*, 3) -> (*, 4, 4)."""
    top = torch.cat([rot, trans.unsqueeze(-1)], dim=-1)  # (*, 3, 3) + (*, 3, 1) -> (*, 3, 4)
    bottom = torch.zeros_like(top[..., :1, :])  # (*, 1, 4)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)  # (*, 4, 4)


def kinematic_chain(
    rot_mats: torch.Tensor, joints: torch.Tensor, parents: torch.Tensor | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose a kinematic tree.

    The world transform of joint ``j`` is ``G_j = G_parent @ [R_j | j_j - j_parent]`` (root: ``[R_0 | j_0]``)
    and its relative transform ``A_j = G_j @ [I | -j_j]`` maps rest-pose points to posed points. This is
    computed in the equivalent form ``A_j = A_parent @ [R_j | j_j - R_j j_j]`` (a rotation about the rest
    joint), which yields exactly the identity for a zero pose instead of identity plus rounding error.

    Args:
        rot_mats: (B, J, 3, 3) local joint rotations.
        joints: (B, J, 3) rest-pose joint locations.
        parents: (J,) parent indices, ``parents[0] == -1``, ``parents[j] < j`` (tensor or ints).

    Returns:
        posed_joints: (B, J, 3) posed joint locations.
        rel_transforms: (B, J, 4, 4) rest-to-posed transforms of every joint.
    """
    n_joints = rot_mats.shape[1]
    plist = _parent_list(parents, n_joints)
    rotated = (rot_mats @ joints.unsqueeze(-1)).squeeze(-1)  # (B, J, 3, 3) @ (B, J, 3, 1) -> (B, J, 3)
    local = _affine(rot_mats, joints - rotated)  # (B, J, 4, 4)
    chain = [local[:, 0]]
    for j in range(1, n_joints):
        chain.append(chain[plist[j]] @ local[:, j])
    rel_transforms = torch.stack(chain, dim=1)  # J x (B, 4, 4) -> (B, J, 4, 4)
    posed_joints = (rel_transforms[..., :3, :3] @ joints.unsqueeze(-1)).squeeze(-1)  # (B, J, 3, 1) -> (B, J, 3)
    posed_joints = posed_joints + rel_transforms[..., :3, 3]
    return posed_joints, rel_transforms


def linear_blend_skinning(vertices: torch.Tensor, weights: torch.Tensor, rel_transforms: torch.Tensor) -> torch.Tensor:
    """Skin vertices with per-vertex blends of the joints' relative transforms.

    Computed as ``v + sum_j w_vj (A_j - I) v``, which equals the usual ``sum_j w_vj A_j v`` when every row
    of ``weights`` sums to 1, and leaves vertices exactly in place where the blended transform is the
    identity (zero pose, or zero weight on every moved joint).

    Args:
        vertices: (B, V, 3) rest-pose (shaped and pose-corrected) vertices.
        weights: (V, J) skinning weights, rows summing to 1.
        rel_transforms: (B, J, 4, 4) from :func:`kinematic_chain`.

    Returns:
        (B, V, 3) posed vertices.
    """
    eye = torch.eye(3, 4, dtype=rel_transforms.dtype, device=rel_transforms.device)
    delta = rel_transforms[..., :3, :] - eye  # (B, J, 3, 4)
    blended = torch.einsum("vj,bjmn->bvmn", weights, delta)  # (B, V, 3, 4)
    moved = (blended[..., :3] @ vertices.unsqueeze(-1)).squeeze(-1)  # (B, V, 3, 3) @ (B, V, 3, 1) -> (B, V, 3)
    return vertices + moved + blended[..., 3]


def lbs_with_rotations(
    coeffs: torch.Tensor,
    pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    j_regressor: torch.Tensor,
    parents: torch.Tensor | Sequence[int],
    lbs_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`lbs` that also returns the per-joint rotation matrices.

    Returns:
        vertices: (B, V, 3); joints: (B, J, 3) posed; rot_mats: (B, J, 3, 3) local joint rotations.
    """
    batch = coeffs.shape[0]
    n_joints = j_regressor.shape[0]
    if pose.shape != (batch, 3 * n_joints):
        raise ValueError(f"pose must have shape ({batch}, {3 * n_joints}); got {tuple(pose.shape)}")
    v_shaped = v_template + blend_shapes(coeffs, shapedirs)  # (B, V, 3)
    rest_joints = regress_joints(j_regressor, v_shaped)  # (B, J, 3)
    rot_mats = rodrigues(pose.reshape(-1, 3))  # (B, J*3) -> (B*J, 3) -> (B*J, 3, 3)
    rot_mats = rot_mats.reshape(batch, n_joints, 3, 3)  # (B*J, 3, 3) -> (B, J, 3, 3)
    v_posed = v_shaped + pose_offsets(pose_feature(rot_mats), posedirs)  # (B, V, 3)
    posed_joints, rel_transforms = kinematic_chain(rot_mats, rest_joints, parents)
    vertices = linear_blend_skinning(v_posed, lbs_weights, rel_transforms)
    return vertices, posed_joints, rot_mats


def lbs(
    coeffs: torch.Tensor,
    pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    j_regressor: torch.Tensor,
    parents: torch.Tensor | Sequence[int],
    lbs_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape blend shapes, pose correctives and linear blend skinning (SMPL / FLAME).

    Args:
        coeffs: (B, K) shape (and expression) coefficients.
        pose: (B, J * 3) axis-angle rotation of every joint, in joint order.
        v_template: (V, 3) template vertices.
        shapedirs: (V, 3, K) shape (and expression) blend shapes.
        posedirs: (V, 3, 9 * (J - 1)) pose blend shapes.
        j_regressor: (J, V) joint regressor.
        parents: (J,) kinematic parents, ``parents[0] == -1``.
        lbs_weights: (V, J) skinning weights.

    Returns:
        vertices: (B, V, 3) posed vertices; joints: (B, J, 3) posed joint locations.
    """
    vertices, joints, _ = lbs_with_rotations(
        coeffs, pose, v_template, shapedirs, posedirs, j_regressor, parents, lbs_weights
    )
    return vertices, joints


@full_precision
def barycentric_landmarks(
    vertices: torch.Tensor, faces: torch.Tensor, lmk_faces: torch.Tensor, lmk_bary: torch.Tensor
) -> torch.Tensor:
    """Points given by barycentric coordinates in mesh triangles.

    Args:
        vertices: (B, V, 3).
        faces: (F, 3) long vertex indices.
        lmk_faces: (B, L) or (L,) long face index per landmark.
        lmk_bary: (B, L, 3) or (L, 3) barycentric weights of the face's three corners.

    Returns:
        (B, L, 3) landmark positions.
    """
    batch = vertices.shape[0]
    if lmk_faces.dim() == 1:
        lmk_faces = lmk_faces.unsqueeze(0).expand(batch, -1)  # (L,) -> (B, L)
    if lmk_bary.dim() == 2:
        lmk_bary = lmk_bary.unsqueeze(0).expand(batch, -1, -1)  # (L, 3) -> (B, L, 3)
    corner_idx = faces[lmk_faces]  # (B, L, 3) vertex indices
    batch_idx = torch.arange(batch, device=vertices.device).view(batch, 1, 1)  # (B,) -> (B, 1, 1)
    corners = vertices[batch_idx, corner_idx]  # (B, L, 3 corners, 3 coords)
    return torch.einsum("blk,blkc->blc", lmk_bary.to(vertices.dtype), corners)


def rotation_to_yaw(rot: torch.Tensor) -> torch.Tensor:
    """Yaw (rotation about +y) of rotation matrices, in the Euler decomposition FLAME / DECA use.

    Args:
        rot: (B, 3, 3) rotation matrices.

    Returns:
        (B,) yaw in radians, ``atan2(-R[2, 0], sqrt(R[0, 0]^2 + R[1, 0]^2))``, in [-pi/2, pi/2].
    """
    cos_yaw = torch.sqrt(rot[:, 0, 0] ** 2 + rot[:, 1, 0] ** 2)
    return torch.atan2(-rot[:, 2, 0], cos_yaw)


def yaw_to_contour_bin(yaw: torch.Tensor, convention: str = "deca") -> torch.Tensor:
    """Bin of FLAME's dynamic landmark embedding for a head yaw.

    Yaw is rounded to whole degrees and clamped to +-39 degrees. Two file layouts exist:

    - ``"deca"`` (DECA's ``landmark_embedding.npy``, as read by DECA's ``FLAME.py``): bin ``b <= 39`` holds
      yaw ``+b`` degrees and bin ``39 + k`` holds yaw ``-k`` degrees.
    - ``"smplx"`` (smplx's ``flame_dynamic_embedding.npy``): the yaw is negated first, so bin ``b <= 39``
      holds yaw ``-b`` degrees.

    Args:
        yaw: (B,) yaw in radians (rotation about +y; positive turns the face towards +x).
        convention: ``"deca"`` or ``"smplx"``.

    Returns:
        (B,) long bin indices in [0, 78].
    """
    if convention not in CONTOUR_CONVENTIONS:
        raise ValueError(f"contour convention must be one of {CONTOUR_CONVENTIONS}; got {convention!r}")
    sign = 1.0 if convention == "deca" else -1.0
    yaw = torch.nan_to_num(yaw, nan=0.0)  # a non-finite pose selects the frontal bin instead of an invalid index
    deg = torch.round(torch.clamp(sign * yaw * (180.0 / math.pi), min=-MAX_CONTOUR_YAW_DEG, max=MAX_CONTOUR_YAW_DEG))
    bins = torch.where(deg >= 0, deg, MAX_CONTOUR_YAW_DEG - deg)
    return bins.long()


def dynamic_contour_landmarks(
    global_rot: torch.Tensor,
    neck_rot: torch.Tensor,
    dynamic_faces: torch.Tensor,
    dynamic_bary: torch.Tensor,
    convention: str = "deca",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select each batch element's jaw-contour embedding from the yaw of its head.

    The yaw is that of ``R_global @ R_neck`` (the rotation of the head relative to the model frame); the
    selection is discrete, so no gradient flows through it.

    Args:
        global_rot: (B, 3, 3) rotation of the global (root) joint.
        neck_rot: (B, 3, 3) local rotation of the neck joint.
        dynamic_faces: (79, 17) long face indices per yaw bin.
        dynamic_bary: (79, 17, 3) barycentric coordinates per yaw bin.
        convention: the bin layout of the embedding file, see :func:`yaw_to_contour_bin`.

    Returns:
        faces: (B, 17) long face indices; bary: (B, 17, 3) barycentric coordinates.
    """
    head_rot = (global_rot @ neck_rot).detach()  # (B, 3, 3)
    bins = yaw_to_contour_bin(rotation_to_yaw(head_rot), convention).to(dynamic_faces.device)  # (B,)
    return dynamic_faces[bins], dynamic_bary[bins]
