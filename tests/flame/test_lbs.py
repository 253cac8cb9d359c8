"""Tests of the pure skinning functions in decalite.flame.lbs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from decalite.flame import lbs as L

from .conftest import TinyFlame


def _rotvecs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0.0, math.pi, n - 4), [0.0, 1e-9, 1e-4, 1.0001e-3]])
    return axes * angles[:, None]


def test_rodrigues_matches_scipy() -> None:
    vecs = _rotvecs(64)
    got = L.rodrigues(torch.from_numpy(vecs)).numpy()
    np.testing.assert_allclose(got, Rotation.from_rotvec(vecs).as_matrix(), atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rodrigues_orthonormal(dtype: torch.dtype) -> None:
    rot = L.rodrigues(torch.from_numpy(_rotvecs(64, seed=1)).to(dtype))
    assert rot.shape == (64, 3, 3) and rot.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    eye = torch.eye(3, dtype=dtype).expand(64, 3, 3)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), eye, atol=tol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(64, dtype=dtype), atol=tol, rtol=0)


def test_rodrigues_zero_is_exact_identity() -> None:
    assert torch.equal(L.rodrigues(torch.zeros(2, 3)), torch.eye(3).expand(2, 3, 3))


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-3, 0.7, 3.0])
def test_rodrigues_gradcheck(angle: float) -> None:
    direction = torch.tensor([[1.0, 0.0, 0.0], [0.3, -0.5, 0.8]], dtype=torch.float64)
    vec = (angle * direction / direction.norm(dim=1, keepdim=True)).requires_grad_(True)
    assert torch.autograd.gradcheck(L.rodrigues, (vec,))


def test_rodrigues_gradient_at_zero_is_the_skew_basis() -> None:
    # dR/dr_k at r = 0 is the cross-product matrix of e_k.
    vec = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(L.rodrigues, vec)[0, :, :, 0, :]  # (3, 3, 3)
    skew = torch.zeros(3, 3, 3, dtype=torch.float64)
    skew[2, 1, 0], skew[1, 2, 0] = 1.0, -1.0
    skew[0, 2, 1], skew[2, 0, 1] = 1.0, -1.0
    skew[1, 0, 2], skew[0, 1, 2] = 1.0, -1.0
    torch.testing.assert_close(jac, skew)


def test_blend_shapes_and_regress_joints_match_numpy() -> None:
    rng = np.random.default_rng(2)
    coeffs, dirs = rng.normal(size=(2, 4)), rng.normal(size=(7, 3, 4))
    want = np.stack([(dirs * c).sum(axis=2) for c in coeffs])
    np.testing.assert_allclose(L.blend_shapes(torch.from_numpy(coeffs), torch.from_numpy(dirs)).numpy(), want)
    reg, verts = rng.random((3, 7)), rng.normal(size=(2, 7, 3))
    got = L.regress_joints(torch.from_numpy(reg), torch.from_numpy(verts)).numpy()
    np.testing.assert_allclose(got, np.stack([reg @ v for v in verts]))


def test_pose_feature_layout_and_offsets() -> None:
    rng = np.random.default_rng(3)
    rots = Rotation.from_rotvec(rng.normal(size=(2 * 4, 3))).as_matrix().reshape(2, 4, 3, 3)
    feat = L.pose_feature(torch.from_numpy(rots)).numpy()
    assert feat.shape == (2, 27)
    for b in range(2):
        for j in range(1, 4):
            for r in range(3):
                for c in range(3):
                    assert feat[b, 9 * (j - 1) + 3 * r + c] == rots[b, j, r, c] - (r == c)
    posedirs = rng.normal(size=(5, 3, 27))
    got = L.pose_offsets(torch.from_numpy(feat), torch.from_numpy(posedirs)).numpy()
    want = (feat @ posedirs.reshape(5 * 3, 27).T).reshape(2, 5, 3)
    np.testing.assert_allclose(got, want, atol=1e-14)


def _naive_chain(rots: np.ndarray, joints: np.ndarray, parents: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """World transforms G_j = G_parent [R_j | j_j - j_parent]; relative A_j = G_j [I | -j_j] (one sample)."""
    world = []
    for j, parent in enumerate(parents):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0.0)
        world.append(local if parent < 0 else world[parent] @ local)
    rel = []
    for j, g in enumerate(world):
        shift = np.eye(4)
        shift[:3, 3] = -joints[j]
        rel.append(g @ shift)
    return np.stack([g[:3, 3] for g in world]), np.stack(rel)


def test_kinematic_chain_matches_world_transform_definition() -> None:
    rng = np.random.default_rng(4)
    parents = [-1, 0, 1, 1, 2, 0]
    rots = Rotation.from_rotvec(rng.normal(size=(2 * 6, 3))).as_matrix().reshape(2, 6, 3, 3)
    joints = rng.normal(size=(2, 6, 3))
    posed, rel = L.kinematic_chain(torch.from_numpy(rots), torch.from_numpy(joints), torch.tensor(parents))
    for b in range(2):
        want_posed, want_rel = _naive_chain(rots[b], joints[b], parents)
        np.testing.assert_allclose(posed[b].numpy(), want_posed, atol=1e-12)
        np.testing.assert_allclose(rel[b].numpy(), want_rel, atol=1e-12)


def test_kinematic_chain_rest_pose_is_exact_identity() -> None:
    joints = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    rots = torch.eye(3).expand(2, 5, 3, 3)
    posed, rel = L.kinematic_chain(rots, joints, [-1, 0, 1, 1, 1])
    assert torch.equal(posed, joints)
    assert torch.equal(rel, torch.eye(4).expand(2, 5, 4, 4))


@pytest.mark.parametrize("parents", [[0, 0, 1], [-1, 2, 1], [-1, 0]])
def test_kinematic_chain_rejects_bad_parents(parents: list[int]) -> None:
    with pytest.raises(ValueError):
        L.kinematic_chain(torch.eye(3).expand(1, 3, 3, 3), torch.zeros(1, 3, 3), parents)


def test_linear_blend_skinning_blends_transforms() -> None:
    rng = np.random.default_rng(5)
    transforms = np.tile(np.eye(4), (1, 2, 1, 1))
    transforms[0, :, :3, :3] = Rotation.from_rotvec(rng.normal(size=(2, 3))).as_matrix()
    transforms[0, :, :3, 3] = rng.normal(size=(2, 3))
    verts = rng.normal(size=(1, 4, 3))
    weights = np.array([[1.0, 0.0], [0.0, 1.0], [0.25, 0.75], [0.5, 0.5]])
    got = L.linear_blend_skinning(torch.from_numpy(verts), torch.from_numpy(weights), torch.from_numpy(transforms))
    blended = np.einsum("vj,jmn->vmn", weights, transforms[0])
    want = np.einsum("vmn,vn->vm", blended[:, :3, :3], verts[0]) + blended[:, :3, 3]
    np.testing.assert_allclose(got[0].numpy(), want, atol=1e-12)


def test_barycentric_landmarks_shared_and_per_sample() -> None:
    rng = np.random.default_rng(6)
    verts = rng.normal(size=(2, 6, 3))
    faces = np.array([[0, 1, 2], [2, 3, 4], [1, 4, 5]])
    lmk_faces = np.array([[2, 0], [1, 1]])
    bary = rng.random((2, 2, 3))
    got = L.barycentric_landmarks(
        torch.from_numpy(verts), torch.from_numpy(faces), torch.from_numpy(lmk_faces), torch.from_numpy(bary)
    ).numpy()
    for b in range(2):
        for i in range(2):
            want = bary[b, i] @ verts[b, faces[lmk_faces[b, i]]]
            np.testing.assert_allclose(got[b, i], want, atol=1e-14)
    shared = L.barycentric_landmarks(
        torch.from_numpy(verts), torch.from_numpy(faces), torch.from_numpy(lmk_faces[0]), torch.from_numpy(bary[0])
    ).numpy()
    np.testing.assert_allclose(shared[0], got[0], atol=1e-14)
    np.testing.assert_allclose(shared[1], [bary[0, i] @ verts[1, faces[lmk_faces[0, i]]] for i in range(2)])


def test_rotation_to_yaw_is_the_euler_y_angle() -> None:
    rng = np.random.default_rng(7)
    euler = rng.uniform(-1.2, 1.2, size=(16, 3))  # intrinsic z, y, x: R = Rz @ Ry @ Rx
    rots = Rotation.from_euler("ZYX", euler).as_matrix()
    np.testing.assert_allclose(L.rotation_to_yaw(torch.from_numpy(rots)).numpy(), euler[:, 1], atol=1e-12)
    about_y = Rotation.from_rotvec([[0.0, 0.3, 0.0], [0.0, -0.5, 0.0]]).as_matrix()
    np.testing.assert_allclose(L.rotation_to_yaw(torch.from_numpy(about_y)).numpy(), [0.3, -0.5], atol=1e-12)


def test_yaw_to_contour_bin() -> None:
    deg = torch.tensor([0.0, -10.0, 10.0, -39.0, 39.0, -45.0, 45.0, -90.0, 90.0, 1.0, -1.0, 0.4, -0.4, 38.6])
    # DECA's FLAME.py: yaw +b degrees -> bin b, yaw -k degrees -> bin 39 + k (no negation).
    want_deca = torch.tensor([0, 49, 10, 78, 39, 78, 39, 78, 39, 1, 40, 0, 0, 39])
    # smplx negates the yaw first.
    want_smplx = torch.tensor([0, 10, 49, 39, 78, 39, 78, 39, 78, 40, 1, 0, 0, 78])
    for dtype in (torch.float32, torch.float64):
        rad = torch.deg2rad(deg.to(dtype))
        got = L.yaw_to_contour_bin(rad)
        assert got.dtype == torch.long
        assert torch.equal(got, want_deca)
        assert torch.equal(L.yaw_to_contour_bin(rad, "deca"), want_deca)
        assert torch.equal(L.yaw_to_contour_bin(rad, "smplx"), want_smplx)
    with pytest.raises(ValueError, match="convention"):
        L.yaw_to_contour_bin(deg, "flame")
    # A non-finite yaw (a diverged network) gives a valid bin, so the loss turns NaN and the step is skipped,
    # instead of an index error in the middle of training.
    nan_bins = L.yaw_to_contour_bin(torch.tensor([float("nan"), float("inf"), -float("inf")]))
    assert ((nan_bins >= 0) & (nan_bins <= 78)).all()


def test_dynamic_contour_uses_global_times_neck() -> None:
    faces = torch.arange(79 * 17).reshape(79, 17)
    bary = torch.rand(79, 17, 3, generator=torch.Generator().manual_seed(0))

    def about_y(deg: list[float]) -> torch.Tensor:
        return L.rodrigues(torch.tensor([[0.0, math.radians(d), 0.0] for d in deg]))

    global_rot, neck_rot = about_y([-4.0, 6.0, 0.0]), about_y([-6.0, 4.0, 20.0])
    got_faces, got_bary = L.dynamic_contour_landmarks(global_rot, neck_rot, faces, bary)
    bins = torch.tensor([49, 10, 20])  # head yaw -10, +10, +20 degrees in DECA's layout
    assert torch.equal(got_faces, faces[bins])
    assert torch.equal(got_bary, bary[bins])


def test_lbs_composes_the_pieces(tiny_flame: TinyFlame) -> None:
    model = tiny_flame.model
    arrays = {
        name: torch.from_numpy(np.asarray(getattr(model, name)))
        for name in ("v_template", "shapedirs", "posedirs", "j_regressor", "parents", "lbs_weights")
    }
    gen = torch.Generator().manual_seed(8)
    coeffs = torch.randn(2, model.shapedirs.shape[2], generator=gen, dtype=torch.float64)
    pose = 0.3 * torch.randn(2, 15, generator=gen, dtype=torch.float64)
    verts, joints = L.lbs(coeffs, pose, **arrays)
    assert verts.shape == (2, model.n_vertices, 3) and joints.shape == (2, 5, 3)

    v_shaped = arrays["v_template"] + L.blend_shapes(coeffs, arrays["shapedirs"])
    rest_joints = L.regress_joints(arrays["j_regressor"], v_shaped)
    rots = L.rodrigues(pose.reshape(-1, 3)).reshape(2, 5, 3, 3)  # (B*J, 3, 3) -> (B, J, 3, 3)
    v_posed = v_shaped + L.pose_offsets(L.pose_feature(rots), arrays["posedirs"])
    want_joints, rel = L.kinematic_chain(rots, rest_joints, arrays["parents"])
    torch.testing.assert_close(verts, L.linear_blend_skinning(v_posed, arrays["lbs_weights"], rel))
    torch.testing.assert_close(joints, want_joints)

    with pytest.raises(ValueError, match="pose"):
        L.lbs(coeffs, pose[:, :12], **arrays)
