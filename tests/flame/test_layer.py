"""Tests of decalite.flame.layer.FlameLayer on the tiny in-memory model."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from decalite.flame.layer import FlameLayer
from decalite.types import FlameOutput

from .conftest import N_EXP_TOTAL, TinyFlame

N_SHAPE, N_EXP = 10, 8


@pytest.fixture(scope="module")
def layer64(tiny_flame: TinyFlame) -> FlameLayer:
    return FlameLayer(tiny_flame.model, tiny_flame.embedding, n_shape=N_SHAPE, n_exp=N_EXP).double()


def _codes(batch: int, seed: int = 0, scale: float = 0.3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, s: float = scale) -> torch.Tensor:
        return s * torch.randn(*shape, generator=gen, dtype=torch.float64)

    return {
        "shape": rnd(batch, N_SHAPE, s=1.0),
        "expression": rnd(batch, N_EXP, s=1.0),
        "global_pose": rnd(batch, 3),
        "neck_pose": rnd(batch, 3),
        "jaw_pose": rnd(batch, 3),
        "eye_pose": rnd(batch, 6),
    }


def _outputs(out: FlameOutput) -> tuple[torch.Tensor, ...]:
    return out.vertices, out.landmarks2d, out.landmarks3d, out.joints


def _bary_points(vertices: np.ndarray, faces: np.ndarray, lmk_faces: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """(V, 3) vertices -> (L, 3) points, written independently of the library."""
    return np.einsum("lk,lkc->lc", bary, vertices[faces[lmk_faces]])


def _reference_flame(model, codes: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Textbook FLAME for one sample in numpy: world transforms, then sum_j w_j G_j [I | -j_j] v."""
    sd = model.shapedirs
    v = model.v_template + sd[:, :, :N_SHAPE] @ codes["shape"] + sd[:, :, 300 : 300 + N_EXP] @ codes["expression"]
    joints = model.j_regressor @ v
    pose = np.concatenate([codes[k] for k in ("global_pose", "neck_pose", "jaw_pose", "eye_pose")]).reshape(5, 3)
    rots = Rotation.from_rotvec(pose).as_matrix()
    feat = (rots[1:] - np.eye(3)).reshape(-1)
    v = v + (model.posedirs.reshape(-1, feat.size) @ feat).reshape(-1, 3)
    world = []
    for j, parent in enumerate(model.parents):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0.0)
        world.append(local if parent < 0 else world[parent] @ local)
    rel = np.stack(world).copy()
    rel[:, :3, 3] -= np.einsum("jmn,jn->jm", rel[:, :3, :3], joints)
    per_vertex = np.einsum("vj,jmn->vmn", model.lbs_weights, rel)
    posed = np.einsum("vmn,vn->vm", per_vertex[:, :3, :3], v) + per_vertex[:, :3, 3]
    return posed, np.stack([g[:3, 3] for g in world])


def test_zero_inputs_give_exactly_the_template(tiny_flame: TinyFlame) -> None:
    model = tiny_flame.model
    for layer in (FlameLayer(model, tiny_flame.embedding), FlameLayer(model, tiny_flame.embedding).double()):
        out = layer()
        assert out.vertices.shape == (1, model.n_vertices, 3)
        assert torch.equal(out.vertices[0], layer.v_template)
        assert torch.equal(out.joints[0], layer.j_regressor @ layer.v_template)
        tol = 1e-7 if layer.v_template.dtype == torch.float32 else 1e-15
        np.testing.assert_allclose(out.joints[0].numpy(), model.j_regressor @ model.v_template, atol=tol)


def test_matches_numpy_reference(tiny_flame: TinyFlame, layer64: FlameLayer) -> None:
    codes = _codes(3, seed=1)
    out = layer64(**codes)
    for b in range(3):
        sample = {k: v[b].numpy() for k, v in codes.items()}
        verts, joints = _reference_flame(tiny_flame.model, sample)
        np.testing.assert_allclose(out.vertices[b].numpy(), verts, atol=1e-12)
        np.testing.assert_allclose(out.joints[b].numpy(), joints, atol=1e-12)


def test_expression_uses_components_after_the_300_shape_components(tiny_flame: TinyFlame, layer64: FlameLayer) -> None:
    codes = _codes(1, seed=2)
    out = layer64(shape=codes["shape"], expression=codes["expression"])
    sd = tiny_flame.model.shapedirs
    want = tiny_flame.model.v_template + sd[:, :, :N_SHAPE] @ codes["shape"][0].numpy()
    want = want + sd[:, :, 300 : 300 + N_EXP] @ codes["expression"][0].numpy()
    np.testing.assert_allclose(out.vertices[0].numpy(), want, atol=1e-14)


@pytest.mark.parametrize("scale", [0.0, 0.3])
def test_gradcheck_whole_layer(tiny_flame: TinyFlame, scale: float) -> None:
    layer = FlameLayer(tiny_flame.model, tiny_flame.embedding, n_shape=3, n_exp=2).double()
    gen = torch.Generator().manual_seed(3)
    widths = {"shape": 3, "expression": 2, "global_pose": 3, "neck_pose": 3, "jaw_pose": 3, "eye_pose": 6}
    inputs = {}
    for name, width in widths.items():
        s = 1.0 if name in ("shape", "expression") else scale
        inputs[name] = (s * torch.randn(1, width, generator=gen, dtype=torch.float64)).requires_grad_(True)

    # The contour bin must not change under gradcheck's 1e-6 steps: keep the head's yaw off a bin edge.
    global_rot, neck_rot = (Rotation.from_rotvec(inputs[k][0].detach().numpy()) for k in ("global_pose", "neck_pose"))
    head = global_rot * neck_rot
    yaw_deg = math.degrees(math.asin(-head.as_matrix()[2, 0]))
    assert abs(abs(yaw_deg) % 1.0 - 0.5) > 0.01

    def run(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _outputs(layer(**dict(zip(widths, args))))

    def run_subset(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = layer(**dict(zip(widths, args)))
        return out.vertices[:, ::7], out.landmarks2d[:, ::5], out.landmarks3d[:, ::5], out.joints

    # Every output entry through random projections, then entry by entry on a subset (kept small for speed).
    assert torch.autograd.gradcheck(run, tuple(inputs.values()), fast_mode=True)
    assert torch.autograd.gradcheck(run_subset, tuple(inputs.values()))


@pytest.mark.parametrize("rotvec", [[0.4, 0.0, 0.0], [0.3, -0.2, 0.5]])
def test_global_rotation_is_rigid_about_the_root(layer64: FlameLayer, rotvec: list[float]) -> None:
    codes = _codes(2, seed=4)
    pitch_only = rotvec[1] == 0.0 and rotvec[2] == 0.0
    if pitch_only:
        # With no neck rotation a pure pitch (about x) keeps the head's yaw, hence the contour bin.
        codes["neck_pose"] = torch.zeros(2, 3, dtype=torch.float64)
    rest = layer64(**{**codes, "global_pose": torch.zeros(2, 3, dtype=torch.float64)})
    posed = layer64(**{**codes, "global_pose": torch.tensor([rotvec, rotvec], dtype=torch.float64)})
    rot = torch.from_numpy(Rotation.from_rotvec(rotvec).as_matrix())
    root = rest.joints[:, :1]  # (B, 1, 3)

    def rigid(points: torch.Tensor) -> torch.Tensor:
        return (points - root) @ rot.T + root

    torch.testing.assert_close(posed.vertices, rigid(rest.vertices), atol=1e-12, rtol=0)
    torch.testing.assert_close(posed.joints, rigid(rest.joints), atol=1e-12, rtol=0)
    torch.testing.assert_close(posed.landmarks3d, rigid(rest.landmarks3d), atol=1e-12, rtol=0)
    torch.testing.assert_close(posed.landmarks2d[:, 17:], rigid(rest.landmarks2d[:, 17:]), atol=1e-12, rtol=0)
    if pitch_only:
        torch.testing.assert_close(posed.landmarks2d, rigid(rest.landmarks2d), atol=1e-12, rtol=0)


def test_jaw_moves_only_jaw_weighted_vertices(tiny_flame: TinyFlame) -> None:
    # Pose correctives move every vertex, so switch them off to isolate skinning.
    model = dataclasses.replace(tiny_flame.model, posedirs=np.zeros_like(tiny_flame.model.posedirs))
    layer = FlameLayer(model, tiny_flame.embedding, n_shape=N_SHAPE, n_exp=N_EXP).double()
    codes = _codes(1, seed=5)
    rest = layer(**{**codes, "jaw_pose": torch.zeros(1, 3, dtype=torch.float64)})
    opened = layer(**{**codes, "jaw_pose": torch.tensor([[0.3, 0.0, 0.0]], dtype=torch.float64)})
    jaw_weight = torch.from_numpy(model.lbs_weights[:, 2])
    moved = (opened.vertices[0] - rest.vertices[0]).norm(dim=1)
    assert torch.equal(opened.vertices[0][jaw_weight == 0], rest.vertices[0][jaw_weight == 0])
    assert (moved[jaw_weight > 0] > 0).all()
    assert torch.equal(opened.joints[:, :2], rest.joints[:, :2])


def test_landmarks_are_barycentric_points(tiny_flame: TinyFlame, layer64: FlameLayer) -> None:
    emb = tiny_flame.embedding
    faces = tiny_flame.model.faces
    codes = _codes(2, seed=6)
    out = layer64(**codes)
    for b in range(2):
        verts = out.vertices[b].numpy()
        np.testing.assert_allclose(
            out.landmarks3d[b].numpy(), _bary_points(verts, faces, emb.full_faces, emb.full_bary), atol=1e-15
        )
        np.testing.assert_allclose(
            out.landmarks2d[b, 17:].numpy(), _bary_points(verts, faces, emb.static_faces, emb.static_bary), atol=1e-15
        )


@pytest.mark.parametrize(
    ("global_yaw_deg", "neck_yaw_deg", "expected_bin"),
    [(0.0, 0.0, 0), (-10.0, 0.0, 49), (10.0, 0.0, 10), (4.0, 6.0, 10), (-50.0, 0.0, 78), (50.0, 0.0, 39)],
)
def test_contour_follows_yaw(
    tiny_flame: TinyFlame, layer64: FlameLayer, global_yaw_deg: float, neck_yaw_deg: float, expected_bin: int
) -> None:
    emb = tiny_flame.embedding
    out = layer64(
        global_pose=torch.tensor([[0.0, math.radians(global_yaw_deg), 0.0]], dtype=torch.float64),
        neck_pose=torch.tensor([[0.0, math.radians(neck_yaw_deg), 0.0]], dtype=torch.float64),
    )
    want = _bary_points(
        out.vertices[0].numpy(),
        tiny_flame.model.faces,
        emb.dynamic_faces[expected_bin],
        emb.dynamic_bary[expected_bin],
    )
    np.testing.assert_allclose(out.landmarks2d[0, :17].numpy(), want, atol=1e-15)


def test_smplx_convention_mirrors_the_bins(tiny_flame: TinyFlame) -> None:
    layer = FlameLayer(tiny_flame.model, tiny_flame.embedding, n_shape=N_SHAPE, n_exp=N_EXP,
                       contour_convention="smplx").double()
    out = layer(global_pose=torch.tensor([[0.0, math.radians(10.0), 0.0]], dtype=torch.float64))
    emb = tiny_flame.embedding
    want = _bary_points(out.vertices[0].numpy(), tiny_flame.model.faces, emb.dynamic_faces[49], emb.dynamic_bary[49])
    np.testing.assert_allclose(out.landmarks2d[0, :17].numpy(), want, atol=1e-15)
    with pytest.raises(ValueError, match="contour_convention"):
        FlameLayer(tiny_flame.model, tiny_flame.embedding, n_shape=N_SHAPE, n_exp=N_EXP, contour_convention="flame")


def test_batch_equals_separate_calls(layer64: FlameLayer) -> None:
    codes = _codes(3, seed=7, scale=0.5)
    batched = layer64(**codes)
    for b in range(3):
        single = layer64(**{k: v[b : b + 1] for k, v in codes.items()})
        for got, want in zip(_outputs(batched), _outputs(single)):
            torch.testing.assert_close(got[b : b + 1], want, atol=1e-14, rtol=0)


def test_output_shapes_and_defaults(layer64: FlameLayer) -> None:
    out = layer64(batch_size=4)
    assert out.vertices.shape == (4, layer64.n_vertices, 3)
    assert out.landmarks2d.shape == (4, 68, 3) and out.landmarks3d.shape == (4, 68, 3)
    assert out.joints.shape == (4, 5, 3)
    assert layer64(jaw_pose=torch.zeros(2, 3, dtype=torch.float64)).vertices.shape[0] == 2
    assert layer64().vertices.shape[0] == 1
    assert (layer64.n_shape, layer64.n_exp) == (N_SHAPE, N_EXP)
    assert layer64.faces.dtype == torch.long and layer64.faces.shape[1] == 3


def test_bad_input_shapes_raise(layer64: FlameLayer) -> None:
    with pytest.raises(ValueError, match="shape"):
        layer64(shape=torch.zeros(1, N_SHAPE + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="eye_pose"):
        layer64(eye_pose=torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="jaw_pose"):
        layer64(shape=torch.zeros(2, N_SHAPE, dtype=torch.float64), jaw_pose=torch.zeros(3, 3, dtype=torch.float64))


def test_float32_and_float64(tiny_flame: TinyFlame) -> None:
    layer = FlameLayer(tiny_flame.model, tiny_flame.embedding, n_shape=N_SHAPE, n_exp=N_EXP)
    assert layer.v_template.dtype == torch.float32
    codes = _codes(2, seed=8)
    out32 = layer(**{k: v.float() for k, v in codes.items()})
    assert out32.vertices.dtype == torch.float32
    layer.double()
    for name, buf in layer.named_buffers():
        is_index = name in ("faces_idx", "parents") or name.endswith("lmk_faces")
        assert buf.dtype == (torch.long if is_index else torch.float64), name
    out64 = layer(**codes)
    assert out64.vertices.dtype == torch.float64
    torch.testing.assert_close(out32.vertices.double(), out64.vertices, atol=1e-6, rtol=0)


def test_buffers_not_in_state_dict(tiny_flame: TinyFlame) -> None:
    layer = FlameLayer(tiny_flame.model, tiny_flame.embedding)
    assert len(list(layer.buffers())) > 0
    assert len(layer.state_dict()) == 0


def test_component_limits(tiny_flame: TinyFlame) -> None:
    with pytest.raises(ValueError, match="300"):
        FlameLayer(tiny_flame.model, tiny_flame.embedding, n_shape=301)
    with pytest.raises(ValueError, match=str(N_EXP_TOTAL)):
        FlameLayer(tiny_flame.model, tiny_flame.embedding, n_exp=N_EXP_TOTAL + 1)
    layer = FlameLayer(tiny_flame.model, tiny_flame.embedding, n_shape=300, n_exp=N_EXP_TOTAL)
    assert layer.shapedirs.shape[2] == 300 + N_EXP_TOTAL


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(tiny_flame: TinyFlame) -> None:
    layer = FlameLayer(tiny_flame.model, tiny_flame.embedding, n_shape=N_SHAPE, n_exp=N_EXP)
    codes = {k: v.float() for k, v in _codes(3, seed=9).items()}
    cpu = layer(**codes)
    layer_gpu = layer.to("cuda")
    gpu = layer_gpu(**{k: v.cuda().requires_grad_(True) for k, v in codes.items()})
    for got, want in zip(_outputs(gpu), _outputs(cpu)):
        assert got.is_cuda
        torch.testing.assert_close(got.detach().cpu(), want, atol=1e-5, rtol=0)
    gpu.vertices.sum().backward()
