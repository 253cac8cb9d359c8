"""The shipped ICT head (ICT Face Model Light in FLAME's format): facts from ICT's README and files.

Tests marked with DECALITE_ICT_DIR compare against ICT's own OBJs (set it to a FaceXModel folder of
github.com/ICT-VGL/ICT-FaceKit; never committed); the rest run on the shipped pack alone.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from decalite.flame.arkit import ARKIT_NAMES, arkit_weights, is_arkit_head
from decalite.flame.assets import load_flame_assets
from decalite.flame.default import resolve_flame_dir
from decalite.flame.ict.pack import load_pack, shipped_pack
from decalite.flame.ict.source import JAWLINE_LEFT, JAWLINE_RIGHT, LANDMARKS_68
from decalite.flame.layer import FlameLayer
from decalite.flame.model_data import N_SHAPE_TOTAL
from tests.flame.test_generated_head import assert_yawed_contour_on_silhouette

ICT_DIR = os.environ.get("DECALITE_ICT_DIR")
needs_ict = pytest.mark.skipif(not ICT_DIR, reason="set DECALITE_ICT_DIR to ICT-FaceKit's FaceXModel folder")


@pytest.fixture(scope="module")
def pack():
    return load_pack(shipped_pack())


@pytest.fixture(scope="module")
def assets(head_cache):
    return load_flame_assets(resolve_flame_dir(None, cache_dir=head_cache, embedded="ict"))


@pytest.fixture(scope="module")
def layer(assets):
    return FlameLayer(assets.model, assets.embedding, n_shape=100, n_exp=len(assets.model.expression_names)).double()


def test_shipped_compactly_with_its_licence(pack):
    path = shipped_pack()
    assert path.stat().st_size < 8e6
    licence = (path.parent / "LICENSE-ICT-FaceKit.txt").read_text()
    assert "MIT License" in licence and "USC Institute for Creative Technologies" in licence
    assert pack.model.n_vertices <= 2.1 * 5023  # within about twice FLAME's cost


def test_folder_is_flame_format_in_metres_with_arkit_names(assets, pack):
    m = assets.model
    assert m.shapedirs.shape == (pack.model.n_vertices, 3, N_SHAPE_TOTAL + 44)
    assert np.abs(m.shapedirs[:, :, 100:N_SHAPE_TOTAL]).max() == 0.0
    assert is_arkit_head(m.expression_names) and "jawOpen" not in m.expression_names
    assert not any(n.startswith("eyeLook") for n in m.expression_names)
    height = m.v_template[:, 1].max() - m.v_template[:, 1].min()
    assert 0.25 < height < 0.4  # a head with neck, in metres
    np.testing.assert_array_equal(assets.uv.faces, m.faces)
    assert assets.uv.verts_uvs.min() >= 0.0 and assets.uv.verts_uvs.max() <= 1.0
    assert 0.2 < assets.face_mask.mean() <= assets.face_eye_mask.mean() < 0.5


def test_landmarks_lie_on_icts_listed_vertices(pack, layer):
    np.testing.assert_array_equal(pack.kept[pack.landmarks68], LANDMARKS_68)
    with torch.no_grad():
        out = layer()
    np.testing.assert_allclose(out.landmarks3d[0].numpy(), pack.model.v_template[pack.landmarks68], atol=1e-9)
    # The frontal contour is ICT's jawline (its sets substitute Multi-PIE's contour points 0-7 and 9-16).
    faces, bary = pack.embedding.dynamic_faces[0], pack.embedding.dynamic_bary[0]
    contour = pack.kept[pack.model.faces[faces, bary.argmax(1)]]
    np.testing.assert_array_equal(contour, list(JAWLINE_RIGHT) + [LANDMARKS_68[8]] + list(JAWLINE_LEFT))


@pytest.mark.parametrize("yaw_deg", [-35.0, -20.0, 20.0, 35.0])
def test_contour_landmarks_lie_on_the_silhouette(layer, yaw_deg):
    """As for the generated head: the yaw-selected contour faces the camera and the far side is the outline."""
    assert_yawed_contour_on_silhouette(layer, yaw_deg)


def _face_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = np.cross(v[..., f[:, 1], :] - v[..., f[:, 0], :], v[..., f[:, 2], :] - v[..., f[:, 0], :])
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-15)


def _max_turn(rest: np.ndarray, moved: np.ndarray, faces: np.ndarray, keep: np.ndarray) -> float:
    cos = (_face_normals(rest, faces) * _face_normals(moved, faces)).sum(-1)[..., keep]
    return float(np.degrees(np.arccos(np.clip(cos.min(), -1, 1))))


def test_fold_free_within_three_sigma_and_the_synthetic_expression_range(pack, layer):
    """Identity modes at +-3 sigma, each expression at 1, and the synthetic data's random expression draws with
    the jaw open turn no face by more than 90 degrees. Left out: faces within 8 mm of the eye landmarks (a blink
    closes the lid over the eye by design) and within 6 mm of the inner lips (where the lips touch, ICT's own
    shapes turn faces over: the full, undecimated ICT mesh does the same), and mouthClose on a closed jaw (ARKit's
    mouthClose closes an open jaw's lips: tested with the jaw at jawOpen, and synthetic data limit it so)."""
    from decalite.flame.arkit import limit_mouth_close
    from decalite.synth.config import SyntheticConfig
    from decalite.synth.sampling import draw_images

    m = pack.model
    rest = m.v_template
    near = np.zeros(m.n_vertices, dtype=bool)
    for a, b, radius in ((36, 48, 0.008), (60, 68, 0.006)):
        pts = rest[pack.landmarks68[a:b]]
        near |= (np.linalg.norm(rest[:, None] - pts[None], axis=-1) < radius).any(1)
    keep = ~near[m.faces].any(1)
    assert keep.mean() > 0.8
    turns = [_max_turn(rest, rest + s * m.shapedirs[:, :, k], m.faces, keep) for k in range(100) for s in (-3, 3)]
    assert max(turns) < 90.0, int(np.argmax(turns)) // 2
    exp = m.shapedirs[:, :, N_SHAPE_TOTAL:]
    names = m.expression_names
    turns = [_max_turn(rest, rest + exp[:, :, k], m.faces, keep) for k in range(exp.shape[2]) if names[k] != "mouthClose"]
    assert max(turns) < 90.0
    n = exp.shape[2]
    e = torch.zeros(2, n, dtype=torch.float64)
    e[0, names.index("mouthClose")] = 1.0
    jaw = torch.tensor([[m.jaw_open_angle, 0.0, 0.0]] * 2, dtype=torch.float64)
    with torch.no_grad():
        closing = layer(expression=e, jaw_pose=jaw).vertices.numpy()
    assert _max_turn(rest[None], closing, m.faces, keep) < 90.0
    assert _max_turn(rest, rest + exp[:, :, names.index("mouthClose")], m.faces, keep) > 90.0  # the measure sees it

    cfg = SyntheticConfig(n_exp=n, jaw=(0.0, m.jaw_open_angle))  # the generator caps the jaw so on this head
    draws = draw_images(cfg, 24, torch.Generator().manual_seed(1), blendshapes=True)
    assert draws.expression.min() >= 0 and draws.expression.max() <= 1 and (draws.expression > 0).float().mean() > 0.1
    expression = limit_mouth_close(draws.expression, names, draws.jaw, m.jaw_open_angle)
    jaw = torch.zeros(24, 3, dtype=torch.float64)
    jaw[:, 0] = draws.jaw.double()
    with torch.no_grad():
        posed = layer(expression=expression.double(), jaw_pose=jaw)
    assert _max_turn(rest[None], posed.vertices.numpy(), m.faces, keep) < 90.0


def test_jaw_opens_the_mouth_and_eyes_turn(pack, layer):
    m = pack.model
    with torch.no_grad():
        rest = layer()
        opened = layer(jaw_pose=torch.tensor([[m.jaw_open_angle, 0.0, 0.0]], dtype=torch.float64))
        look = layer(eye_pose=torch.tensor([[0.0, 0.3, 0.0, 0.0, 0.3, 0.0]], dtype=torch.float64))
    gap = lambda o: float((o.landmarks3d[0, 62] - o.landmarks3d[0, 66]).norm())  # noqa: E731
    assert gap(opened) > gap(rest) + 0.01  # ICT's jawOpen drops the lower lip by more than a centimetre
    forehead = m.v_template[:, 1] > m.v_template[pack.landmarks68[19], 1] + 0.02
    # ICT's jawOpen barely moves the forehead (under 0.2 mm; it is the shape's own motion, reproduced).
    np.testing.assert_allclose(opened.vertices[0, forehead], rest.vertices[0, forehead], atol=2e-4)
    moved = (look.vertices[0] - rest.vertices[0]).norm(dim=-1).numpy()
    eyes = np.isin(pack.kept, np.arange(21451, 24591))
    assert moved[eyes].min() > 0 and moved[~eyes].max() < 1e-12  # only the eyeballs turn


def test_arkit_weights_of_the_ict_head(pack):
    names = pack.model.expression_names
    e = torch.zeros(2, len(names))
    e[0, names.index("mouthSmile_L")] = 0.5
    e[0, names.index("browInnerUp_L")] = 0.4
    e[0, names.index("browInnerUp_R")] = 0.2
    jaw = torch.tensor([[pack.model.jaw_open_angle, 0.0, 0.0], [-0.1, 0.0, 0.0]])
    eyes = torch.tensor([[0.0, math.radians(15.0), 0.0, 0.0, math.radians(15.0), 0.0], [0.0] * 6])
    w = arkit_weights(e, names, jaw, pack.model.jaw_open_angle, eyes)
    at = lambda b, n: float(w[b, ARKIT_NAMES.index(n)])  # noqa: E731
    assert w.shape == (2, 52)
    assert at(0, "mouthSmileLeft") == pytest.approx(0.5) and at(0, "mouthSmileRight") == 0.0
    assert at(0, "browInnerUp") == pytest.approx(0.3)
    assert at(0, "jawOpen") == pytest.approx(1.0) and at(1, "jawOpen") == 0.0  # clamped to [0, 1]
    # Both eyes turned towards +x (the subject's left): the left eye looks out, the right eye in.
    assert at(0, "eyeLookOutLeft") == pytest.approx(0.5, abs=1e-5)
    assert at(0, "eyeLookInRight") == pytest.approx(0.5, abs=1e-5)
    assert at(0, "eyeLookInLeft") == 0.0 and at(0, "tongueOut") == 0.0


@needs_ict
def test_identity_modes_and_expressions_equal_icts_objs(pack):
    from decalite.flame.ict.source import read_obj_vertices

    root = Path(ICT_DIR)
    neutral = read_obj_vertices(root / "generic_neutral_mesh.obj")[pack.kept] * 0.01
    np.testing.assert_allclose(pack.model.v_template, neutral, atol=1e-7)
    for k in range(100):
        want = read_obj_vertices(root / f"identity{k:03d}.obj")[pack.kept] * 0.01 - neutral
        np.testing.assert_allclose(pack.model.shapedirs[:, :, k], want, atol=1e-5, err_msg=f"identity{k:03d}")  # 0.01 mm
    for j, name in enumerate(pack.model.expression_names):
        want = read_obj_vertices(root / f"{name}.obj")[pack.kept] * 0.01 - neutral
        np.testing.assert_allclose(pack.model.shapedirs[:, :, N_SHAPE_TOTAL + j], want, atol=1e-5, err_msg=name)


@needs_ict
def test_jaw_joint_reproduces_icts_jaw_open(pack, layer):
    from decalite.flame.ict.source import read_obj_vertices

    root = Path(ICT_DIR)
    want = read_obj_vertices(root / "jawOpen.obj")[pack.kept] * 0.01
    neutral = read_obj_vertices(root / "generic_neutral_mesh.obj")[pack.kept] * 0.01
    face = pack.kept < 9409
    with torch.no_grad():
        full = layer(jaw_pose=torch.tensor([[pack.model.jaw_open_angle, 0.0, 0.0]], dtype=torch.float64))
        half = layer(jaw_pose=torch.tensor([[pack.model.jaw_open_angle / 2, 0.0, 0.0]], dtype=torch.float64))
    err = np.linalg.norm(full.vertices[0].numpy() - want, axis=1)[face]
    assert err.max() < 1e-5  # hinge + correctives reproduce jawOpen = 1
    err_half = np.linalg.norm(half.vertices[0].numpy() - (neutral + want) / 2, axis=1)[face]
    assert err_half.mean() < 1e-3  # half the angle is within 1 mm (mean) of ICT's jawOpen = 0.5
