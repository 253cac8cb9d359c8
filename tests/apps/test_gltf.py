"""The GLB export, checked by an independent reader: the file is parsed here byte by byte (not with pygltflib, its
writer) and posed with a reference implementation of glTF 2.0 skinning (morph targets, then joint matrices =
global joint transform x inverse bind matrix), against decalite's FLAME layer."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import trimesh

from apps.gltf_reader import accessor, axis_angle_quaternion, pose_glb, pose_target_weights, read_glb, rotation
from decalite.apps.gltf import glb_mesh, head_rig, joint_drift, tangent_space_normal_map, write_glb
from decalite.config import FlameConfig
from decalite.flame.generated import write_generated_head
from decalite.model.factory import build_flame, load_assets

# ---- the tests --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["ict", "flame_folder"])
def head(request, tmp_path_factory):
    """The embedded ICT head (ARKit-named expressions), and a FLAME-layout folder (the generated head written in
    FLAME 2020's file formats, loaded through ``flame.dir`` as a FLAME user's files are)."""
    if request.param == "ict":
        cfg = FlameConfig(dir=None, n_shape=20, n_exp=10)
    else:
        folder = write_generated_head(tmp_path_factory.mktemp("flame2020_layout") / "FLAME2020", seed=1)
        cfg = FlameConfig(dir=str(folder), n_shape=20, n_exp=10)
    assets = load_assets(cfg, os.environ["DECALITE_CACHE"], albedo=False)
    return build_flame(cfg, assets).double(), assets


def _codes(flame, seed: int):
    g = torch.Generator().manual_seed(seed)
    shape = torch.randn(1, flame.n_shape, generator=g, dtype=torch.float64)
    exp = 0.8 * torch.randn(1, flame.n_exp, generator=g, dtype=torch.float64)
    pose = torch.tensor([[0.15, -0.3, 0.05, 0.25, 0.02, -0.03]], dtype=torch.float64)
    return shape, exp, pose


def test_the_glb_poses_to_flame_by_the_gltf_rules(head, tmp_path):
    flame, assets = head
    shape, exp, pose = _codes(flame, 0)
    rig = head_rig(flame, shape[0], exp[0], assets.model.expression_names)
    path = write_glb(tmp_path / "head.glb", rig, glb_mesh(rig, assets.uv), pose[0])
    doc, binary = read_glb(path)
    mesh = doc["meshes"][0]
    names = mesh["extras"]["targetNames"]
    index = accessor(doc, binary, mesh["primitives"][0]["attributes"]["_FLAME_VERTEX"])[:, 0].astype(np.int64)
    assert len(names) == flame.n_exp + 36 and len(mesh["weights"]) == len(names)
    assert {n["name"] for n in doc["nodes"]} >= {"global", "neck", "jaw", "left_eye", "right_eye"}

    # 1. the initial state: the reconstructed expression and pose
    want = flame(shape=shape, expression=exp, global_pose=pose[:, :3], jaw_pose=pose[:, 3:]).vertices[0].numpy()
    got = pose_glb(doc, binary)
    assert np.abs(got - want[index]).max() < 1e-5
    assert set(index.tolist()) == set(range(flame.n_vertices))  # every FLAME vertex is in the GLB

    # 2. any joint rotations (neck and eyes included), with FLAME's pose correctives as morph weights
    axis = {"global": np.array([-0.1, 0.5, 0.1]), "neck": np.array([0.2, 0.1, -0.1]),
            "jaw": np.array([0.3, 0.0, 0.05]), "left_eye": np.array([0.1, 0.2, 0.0]),
            "right_eye": np.array([0.1, -0.2, 0.0])}
    node = {n["name"]: i for i, n in enumerate(doc["nodes"])}
    corrective = pose_target_weights(names, {k: rotation(v) for k, v in axis.items()})
    weights = [exp[0, k].item() if k < flame.n_exp else corrective[n] for k, n in enumerate(names)]
    got = pose_glb(doc, binary, {node[k]: axis_angle_quaternion(v) for k, v in axis.items()}, np.array(weights))
    t = lambda v: torch.from_numpy(v)[None]  # noqa: E731
    want = flame(shape=shape, expression=exp, global_pose=t(axis["global"]), neck_pose=t(axis["neck"]),
                 jaw_pose=t(axis["jaw"]), eye_pose=t(np.concatenate([axis["left_eye"], axis["right_eye"]])))
    assert np.abs(got - want.vertices[0].numpy()[index]).max() < 1e-5

    # 3. an independent reader (trimesh) sees the same mesh
    scene = trimesh.load(path, force="scene")
    loaded = next(iter(scene.geometry.values()))
    assert len(loaded.faces) == len(rig.faces) and len(loaded.vertices) == len(index)


def test_the_animation_clip_replays_the_codes(head, tmp_path):
    flame, assets = head
    shape, exp, pose = _codes(flame, 1)
    frames = 5
    exps = exp.expand(frames, -1).clone()
    exps[:, 0] = torch.linspace(-1.0, 1.0, frames, dtype=torch.float64)
    poses = pose.expand(frames, -1).clone()
    poses[:, 3] = torch.linspace(0.0, 0.4, frames, dtype=torch.float64)
    poses[:, 1] = torch.linspace(-0.5, 0.5, frames, dtype=torch.float64)
    rig = head_rig(flame, shape[0], exp[0])
    path = write_glb(tmp_path / "clip.glb", rig, glb_mesh(rig, assets.uv), pose[0], animation=(exps, poses), fps=10)
    doc, binary = read_glb(path)
    (clip,) = doc["animations"]
    times = accessor(doc, binary, clip["samplers"][0]["input"])[:, 0]
    assert np.allclose(times, np.arange(frames) / 10)
    index = accessor(doc, binary, doc["meshes"][0]["primitives"][0]["attributes"]["_FLAME_VERTEX"])[:, 0].astype(int)
    errors, drift = [], []
    for f in range(frames):
        rotations, weights = {}, None
        for channel in clip["channels"]:
            values = accessor(doc, binary, clip["samplers"][channel["sampler"]]["output"])
            if channel["target"]["path"] == "weights":
                weights = values.reshape(frames, -1)[f]
            else:
                rotations[channel["target"]["node"]] = values[f]
        got = pose_glb(doc, binary, rotations, weights)
        want = flame(shape=shape, expression=exps[f : f + 1], global_pose=poses[f : f + 1, :3],
                     jaw_pose=poses[f : f + 1, 3:]).vertices[0].numpy()
        errors.append(np.abs(got - want[index]).max())
        drift.append(joint_drift(rig, flame, exps[f]))
    # the frame with the bound expression is exact; the others are off by the joints' drift times the rotation
    middle = frames // 2
    assert errors[middle] < 1e-5
    assert max(errors) < 2.0 * max(drift) + 1e-5 and max(errors) < 2e-3


def test_the_normal_map_is_flat_without_details_and_tangents_are_unit(head):
    from decalite.config import RendererConfig
    from decalite.model.factory import build_renderer

    flame, assets = head
    renderer = build_renderer(RendererConfig(uv_size=64, image_size=64, backend="torch"), assets).double()
    shape, exp, _ = _codes(flame, 2)
    rig = head_rig(flame, shape[0], exp[0])
    mesh = glb_mesh(rig, assets.uv)
    frame, normals = mesh.tangents, mesh.normals
    assert np.allclose(np.linalg.norm(frame[:, :3], axis=1), 1.0) and set(np.unique(frame[:, 3])) <= {-1.0, 1.0}
    assert np.abs((frame[:, :3] * normals).sum(1)).max() < 1e-6
    corners = mesh.corner_frames()
    vertices = torch.from_numpy(rig.rest)[None]
    zero = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    _, coarse, detail = renderer.uv_detail_normals(vertices, zero)
    flat = tangent_space_normal_map(detail[0], corners, renderer.uv)
    face = (renderer.face_eye_mask[0, 0] > 0.5) & (renderer.uv.valid[0, 0] > 0)
    assert flat[2][face].median() > 0.99  # no details: the surface's own normal
    bumps = 2e-3 * torch.sin(torch.linspace(0, 60, 64, dtype=torch.float64))[None, None, :, None].expand(1, 1, 64, 64)
    _, _, detail = renderer.uv_detail_normals(vertices, bumps)
    bumpy = tangent_space_normal_map(detail[0], corners, renderer.uv)
    assert (bumpy[:2].norm(dim=0)[face] > 0.05).float().mean() > 0.3  # details tilt the normals
