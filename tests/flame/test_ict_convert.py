"""The ICT converter on a tiny ICT-format folder made here (from decalite's mannequin), so it is tested without
ICT's 420 MB: OBJs in centimetres sharing one vertex order, identityK.obj = neutral + mode K, ARKit-named
expressions (jawOpen a jaw rotation of the mannequin, eyeLookUp_L moving no eyeball, as ICT's), a layout naming the
parts, landmarks and jawlines. Every check compares with those OBJs, not with decalite's own output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from decalite.flame.assets import load_flame_assets
from decalite.flame.generated import EXPRESSION_NAMES, generate_head
from decalite.flame.generated.geometry import build_template
from decalite.flame.ict.convert import convert_ict_folder
from decalite.flame.ict.pack import ICT_MARKER, load_pack, save_pack, write_ict_folder
from decalite.flame.ict.source import IctLayout, read_obj_vertices
from decalite.flame.layer import FlameLayer
from decalite.flame.model_data import N_SHAPE_TOTAL

JAW = 0.25  # radians: the tiny folder's jawOpen


def _write_obj(path: Path, vertices_m: np.ndarray, faces: np.ndarray | None = None, uvs=None, faces_uvs=None) -> None:
    lines = [f"v {x * 100:.6f} {y * 100:.6f} {z * 100:.6f}" for x, y, z in vertices_m]
    if faces is not None:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs]
        lines += ["usemtl M_Face"]
        lines += [f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}" for (a, b, c), (ta, tb, tc) in
                  zip(faces, faces_uvs)]
    path.write_text("\n".join(lines) + "\n")


def _nearest(vertices: np.ndarray, points: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(vertices[allowed][None] - points[:, None], axis=-1)
    return allowed[d.argmin(1)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(folder, layout) of a tiny ICT-format model: the mannequin's template, 2 identity modes, 3 expressions."""
    root = tmp_path_factory.mktemp("FaceXModel")
    head = generate_head(0)
    t = build_template()
    m = head.model
    v = m.v_template
    layer = FlameLayer(m, head.embedding, n_shape=2, n_exp=len(EXPRESSION_NAMES)).double()
    with torch.no_grad():
        rest = layer()
        opened = layer(jaw_pose=torch.tensor([[JAW, 0.0, 0.0]], dtype=torch.float64)).vertices[0].numpy()
    _write_obj(root / "generic_neutral_mesh.obj", v, head.uv.faces, head.uv.verts_uvs, head.uv.faces_uvs)
    for k in range(2):
        _write_obj(root / f"identity{k:03d}.obj", v + m.shapedirs[:, :, k])
    smile = m.shapedirs[:, :, N_SHAPE_TOTAL + EXPRESSION_NAMES.index("smile_left")]
    _write_obj(root / "jawOpen.obj", opened)
    _write_obj(root / "eyeLookUp_L.obj", v)
    _write_obj(root / "mouthSmile_L.obj", v + smile)
    (root / "vertex_indices.json").write_text(json.dumps({"expressions": ["eyeLookUp_L", "jawOpen", "mouthSmile_L"]}))

    skin = np.where(t.part == 0)[0]
    lmk_pos = rest.landmarks3d[0].numpy()
    landmarks = _nearest(v, lmk_pos, skin)
    contour = lmk_pos[:17]
    front = skin[v[skin, 2] > contour[:, 2].min() - 0.01]

    def along(points: np.ndarray, n: int) -> np.ndarray:  # n positions evenly along a polyline
        seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
        s = np.concatenate([[0], np.cumsum(seg)])
        at = np.linspace(0, s[-1], n)
        return np.stack([np.interp(at, s, points[:, i]) for i in range(3)], 1)

    layout = IctLayout(
        parts={"face": front, "head_neck": np.setdiff1d(skin, front),
               "eyeball_left": np.where(t.part == 1)[0], "eyeball_right": np.where(t.part == 2)[0]},
        narrow_face=front, landmarks68=landmarks, jawline_right=landmarks[0:8], jawline_left=landmarks[9:17],
        jawline_right_extended=_nearest(v, along(contour[0:9], 17), front),
        jawline_left_extended=_nearest(v, along(contour[8:17], 17), front),
    )
    return root, layout


@pytest.fixture(scope="module")
def converted(tiny):
    root, layout = tiny
    return convert_ict_folder(root, target_vertices=None, layout=layout)


def test_tiny_folder_eyeballs_are_where_the_layout_says(tiny):
    _, layout = tiny
    v = read_obj_vertices(tiny[0] / "generic_neutral_mesh.obj")
    assert v[layout.parts["eyeball_left"], 0].mean() > 0 > v[layout.parts["eyeball_right"], 0].mean()


def test_identity_and_expression_slots_equal_the_objs(tiny, converted):
    root, _ = tiny
    neutral = read_obj_vertices(root / "generic_neutral_mesh.obj") * 0.01
    m = converted.model
    assert m.expression_names == ("mouthSmile_L",)  # jawOpen -> the jaw joint, eyeLook* -> the eye joints
    for k in range(2):
        want = read_obj_vertices(root / f"identity{k:03d}.obj")[converted.kept] * 0.01 - neutral[converted.kept]
        np.testing.assert_allclose(m.shapedirs[:, :, k], want, atol=1e-5)  # 0.01 mm
    assert np.abs(m.shapedirs[:, :, 2:N_SHAPE_TOTAL]).max() == 0.0
    want = read_obj_vertices(root / "mouthSmile_L.obj")[converted.kept] * 0.01 - neutral[converted.kept]
    np.testing.assert_allclose(m.shapedirs[:, :, N_SHAPE_TOTAL], want, atol=1e-5)
    cavity_dropped = converted.kept.size < neutral.shape[0]
    assert cavity_dropped


def test_jaw_joint_reproduces_jaw_open(tiny, converted):
    root, _ = tiny
    m = converted.model
    # The hinge's angle trades off against its weights (one target shape): only its range is pinned.
    assert 0.5 * JAW < m.jaw_open_angle < 2.0 * JAW
    layer = FlameLayer(m, converted.embedding, n_shape=2, n_exp=1).double()
    with torch.no_grad():
        out = layer(jaw_pose=torch.tensor([[m.jaw_open_angle, 0.0, 0.0]], dtype=torch.float64)).vertices[0].numpy()
    want = read_obj_vertices(root / "jawOpen.obj")[converted.kept] * 0.01
    err = np.linalg.norm(out - want, axis=1)
    assert err.max() < 1e-4, err.max()  # hinge + pose correctives: exact up to float rounding
    # The hinge alone (no correctives) is close too: the mannequin's jaw is a hinge.
    assert converted.report["jaw_hinge_residual_mean_mm"] < 1.0


def test_eye_joints_turn_the_eyeballs_rigidly(tiny, converted):
    _, layout = tiny
    m = converted.model
    layer = FlameLayer(m, converted.embedding, n_shape=2, n_exp=1).double()
    eye = np.where(np.isin(converted.kept, layout.parts["eyeball_left"]))[0]
    with torch.no_grad():
        rest = layer().vertices[0].numpy()[eye]
        turned = layer(eye_pose=torch.tensor([[0.0, 0.3, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)).vertices[0]
    turned = turned.numpy()[eye]
    d0 = np.linalg.norm(rest[:, None] - rest[None], axis=-1)
    d1 = np.linalg.norm(turned[:, None] - turned[None], axis=-1)
    np.testing.assert_allclose(d1, d0, atol=1e-9)  # rigid
    assert np.abs(turned - rest).max() > 1e-3  # and it did turn
    front = rest[:, 2].argmax()
    assert turned[front, 0] > rest[front, 0]  # +y rotation turns the gaze towards +x


def test_landmarks_lie_on_the_listed_vertices(tiny, converted):
    _, layout = tiny
    root = tiny[0]
    neutral = read_obj_vertices(root / "generic_neutral_mesh.obj") * 0.01
    layer = FlameLayer(converted.model, converted.embedding, n_shape=2, n_exp=1).double()
    with torch.no_grad():
        lmk = layer().landmarks3d[0].numpy()
    np.testing.assert_allclose(lmk, neutral[layout.landmarks68], atol=1e-9)


def test_decimation_keeps_a_vertex_subset_with_exact_values(tiny):
    root, layout = tiny
    full = convert_ict_folder(root, target_vertices=None, layout=layout)
    target = int(0.8 * full.kept.size)
    small = convert_ict_folder(root, target_vertices=target, layout=layout)
    assert small.kept.size <= target + 0.02 * full.kept.size
    assert set(small.kept) <= set(full.kept) and set(layout.landmarks68) <= set(small.kept)
    pos = np.searchsorted(full.kept, small.kept)
    np.testing.assert_array_equal(small.model.v_template, full.model.v_template[pos])
    np.testing.assert_array_equal(small.model.shapedirs, full.model.shapedirs[pos])


def test_pack_round_trip_and_folder_load(tmp_path, converted):
    save_pack(tmp_path / "tiny.npz", converted)
    back = load_pack(tmp_path / "tiny.npz")
    np.testing.assert_allclose(back.model.shapedirs, converted.model.shapedirs, atol=1e-6)  # 0.001 mm
    np.testing.assert_allclose(back.model.posedirs, converted.model.posedirs, atol=1e-6)
    np.testing.assert_allclose(back.model.v_template, converted.model.v_template, atol=1e-7)
    assert back.model.expression_names == converted.model.expression_names
    folder = write_ict_folder(back, tmp_path / "head")
    assets = load_flame_assets(folder)
    assert assets.model.expression_names == ("mouthSmile_L",)
    assert assets.model.jaw_open_angle == pytest.approx(converted.model.jaw_open_angle)
    assert assets.albedo is not None and assets.albedo.n_components == 50
    assert ICT_MARKER in (folder / "README.txt").read_text() and "MIT" in (folder / "README.txt").read_text()
    np.testing.assert_array_equal(assets.embedding.full_faces, converted.embedding.full_faces)


def test_missing_files_are_named(tmp_path):
    from decalite.errors import AssetError

    with pytest.raises(AssetError, match="generic_neutral_mesh.obj"):
        convert_ict_folder(tmp_path)
    assert math.isfinite(0.0)
