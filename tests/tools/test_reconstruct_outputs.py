"""Reconstruction outputs on faces rendered from known codes (generated head, untrained networks: the fit does
the work)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from decalite.apps.animate import render_frames, sweep_codes, transfer_codes, write_animation
from decalite.apps.fitting import DEFAULT_FIT_TERMS, FitConfig
from decalite.apps.reconstruct import infer, write_face


def test_fit_from_the_mean_face_reduces_the_landmark_error(small_deca, known_faces):
    deca, _ = small_deca
    faces, _ = known_faces
    # lr 0.02 needs the decay: at a constant 0.02 the L1 fit hops around the minimum (face 0 ended at 0.070).
    fit_cfg = FitConfig(steps=120, lr=0.02, lr_end=0.02, terms={**DEFAULT_FIT_TERMS, "photometric": 0.0})
    code, before, after = infer(deca, faces, trained=False, fit_cfg=fit_cfg)
    assert (after < 0.5 * before).all() and after.max() < 0.05


def test_outputs_exist_and_parse(small_deca, known_faces, cfg_factory, tmp_path):
    deca, assets = small_deca
    faces, truth = known_faces
    cfg = cfg_factory("reconstruct", "input=unused", "now=true")
    with torch.no_grad():
        out = deca.decode(truth, detail=False)
    files = write_face(tmp_path, faces[0], deca, assets, truth, out, 0, cfg.save, True)
    folder = tmp_path / "face0"
    n_vertices = assets.model.n_vertices
    obj = trimesh.load(folder / "face0.obj", process=False)
    assert len(obj.vertices) >= n_vertices and (folder / "face0_texture.png").exists()
    assert "map_Kd face0_texture.png" in (folder / "face0.mtl").read_text()
    ply = trimesh.load(folder / "face0.ply", process=False)
    assert len(ply.vertices) == n_vertices
    dense = trimesh.load(folder / "face0_detail.obj", process=False)
    assert len(dense.vertices) > n_vertices
    assert Image.open(folder / "face0_vis.png").size[1] >= 224
    assert Image.open(folder / "face0_depth.png").size == (224, 224)
    assert np.loadtxt(folder / "face0_lmk2d.txt").shape == (68, 2)
    assert np.loadtxt(folder / "face0_lmk3d.txt").shape == (68, 3)
    codes = np.load(folder / "face0_codes.npz")
    assert set(codes.files) >= {"shape", "tex", "exp", "pose", "cam", "light"}
    assert np.load(folder / "face0_now_lmk7.npy").shape == (7, 3)
    assert len(trimesh.load(folder / "face0_now.obj", process=False).vertices) == n_vertices
    assert len(files) >= 10


def test_arkit_weights_are_written_on_the_ict_head(small_deca, known_faces, cfg_factory, tmp_path):
    """The default head's expressions are ARKit's: _arkit.json holds the 52 weights, the codes' own coefficients
    under ARKit's names and jawOpen from the jaw rotation; a head without ARKit names writes none."""
    import dataclasses
    import json

    from decalite.flame.arkit import ARKIT_NAMES

    deca, assets = small_deca
    faces, truth = known_faces
    cfg = cfg_factory("reconstruct", "input=unused")
    code = dataclasses.replace(truth, exp=truth.exp.clone(), pose=truth.pose.clone())
    names = assets.model.expression_names
    code.exp[0] = 0.0
    code.exp[0, names.index("mouthSmile_R")] = 0.7
    code.pose[0, 3] = 0.5 * assets.model.jaw_open_angle
    with torch.no_grad():
        out = deca.decode(code, detail=False)
    write_face(tmp_path, faces[0], deca, assets, code, out, 0, cfg.save, False)
    data = json.loads((tmp_path / "face0" / "face0_arkit.json").read_text())
    weights = data["blendshapes"]
    assert list(weights) == list(ARKIT_NAMES)
    assert weights["mouthSmileRight"] == pytest.approx(0.7) and weights["mouthSmileLeft"] == 0.0
    assert weights["jawOpen"] == pytest.approx(0.5, abs=1e-5) and "ARKit" in data["convention"]
    pca = dataclasses.replace(assets, model=dataclasses.replace(assets.model, expression_names=()))
    write_face(tmp_path / "pca", faces[0], deca, pca, code, out, 0, cfg.save, False)
    assert not (tmp_path / "pca" / "face0" / "face0_arkit.json").exists()


def test_dense_mesh_follows_the_displacement(small_deca, known_faces, cfg_factory, tmp_path):
    deca, assets = small_deca
    faces, truth = known_faces
    cfg = cfg_factory("reconstruct", "input=unused", "save.obj=false", "save.ply=false", "save.vis=false",
                      "save.depth=false", "save.codes=false", "save.landmarks=false")
    with torch.no_grad():
        out = deca.decode(truth, detail=False)
    write_face(tmp_path / "flat", faces[0], deca, assets, truth, out, 0, cfg.save, False)
    out.displacement = torch.full((2, 1, 256, 256), 0.002)
    write_face(tmp_path / "bumped", faces[0], deca, assets, truth, out, 0, cfg.save, False)
    flat = trimesh.load(tmp_path / "flat" / "face0" / "face0_detail.obj", process=False)
    bumped = trimesh.load(tmp_path / "bumped" / "face0" / "face0_detail.obj", process=False)
    moved = np.linalg.norm(bumped.vertices - flat.vertices, axis=1)
    assert np.median(moved) > 0.0015


def test_animation_frames_and_transfer(small_deca, known_faces, tmp_path):
    deca, _ = small_deca
    _, truth = known_faces
    one = truth.map(lambda t: t[:1])
    codes = sweep_codes(one, frames=10, n_components=2)
    assert codes.exp.shape[0] == 10 and torch.equal(codes.shape, one.shape.expand(10, -1))
    assert not torch.equal(codes.exp[1], codes.exp[0]) and codes.pose[:, 3].max() > 0.1  # jaw opens
    frames = render_frames(deca, codes, trained_detail=False)
    assert frames.shape == (10, 224, 448, 3) and frames.dtype == np.uint8
    files = write_animation(frames, tmp_path / "anim", fps=10)
    assert all(f.exists() and f.stat().st_size > 1000 for f in files)
    import imageio.v2 as imageio

    assert len(imageio.mimread(files[0])) == 10
    driver = truth.map(lambda t: t[1:].expand(3, *t.shape[1:]).clone())
    driver.exp = driver.exp + torch.arange(3.0)[:, None]
    moved = transfer_codes(one, driver)
    assert torch.equal(moved.shape, one.shape.expand(3, -1)) and torch.equal(moved.tex, one.tex.expand(3, -1))
    assert torch.equal(moved.exp, driver.exp) and torch.equal(moved.pose[:, 3:], driver.pose[:, 3:])
    assert torch.equal(moved.pose[:, :3], one.pose[:, :3].expand(3, -1))


class _KnownLandmarker:
    """A stand-in detector that returns fixed landmarks (the ones a face was pasted with)."""

    name = "known"

    def __init__(self, landmarks: np.ndarray) -> None:
        self.landmarks = landmarks

    def detect(self, image):
        from decalite.data.detect import FaceDetection

        lo, hi = self.landmarks.min(0), self.landmarks.max(0)
        return [FaceDetection(box=np.array([*lo, *hi]), landmarks=self.landmarks.copy(), score=1.0)]


def _pasted_face(faces, scale: float, offset: tuple[int, int], canvas_hw: tuple[int, int]):
    """Face 0's 224 render resized by ``scale`` into a grey canvas at ``offset`` (x, y), and where its landmarks
    land there (pixel indices)."""
    crop = faces[0].crop
    side = round(crop.shape[0] * scale)
    canvas = np.full((*canvas_hw, 3), 90, np.uint8)
    canvas[offset[1] : offset[1] + side, offset[0] : offset[0] + side] = np.asarray(
        Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR))
    k = side / crop.shape[0]
    return canvas, (faces[0].landmarks_px + 0.5) * k - 0.5 + np.array(offset, float)


def test_outputs_in_the_photo_frame(small_deca, known_faces, cfg_factory, tmp_path):
    """_lmk2d_image.txt maps back to the crop frame through crop_matrix, lands on the known landmarks of a face
    pasted into a larger photo, and _vis_original.png is the photo, changed only around the face."""
    from decalite.apps.reconstruct import detect_faces
    from decalite.geometry.camera import normalised_to_pixels
    from decalite.io.inputs import InputItem

    deca, assets = small_deca
    faces, _ = known_faces
    canvas, truth_px = _pasted_face(faces, 1.5, (130, 70), (520, 640))
    item = InputItem(path=tmp_path / "canvas.png", name="canvas")
    (face,) = detect_faces(item, canvas, _KnownLandmarker(truth_px), False, 1.25, size=224)
    code, _, after = infer(deca, [face], trained=False,
                           fit_cfg=FitConfig(steps=120, lr=0.02, lr_end=0.02,
                                             terms={**DEFAULT_FIT_TERMS, "photometric": 0.0}))
    with torch.no_grad():
        out = deca.decode(code, detail=False)
    cfg = cfg_factory("reconstruct", "input=unused", "save.obj=false", "save.ply=false", "save.dense=false",
                      "save.vis=false", "save.depth=false")
    files = write_face(tmp_path, face, deca, assets, code, out, 0, cfg.save, False)
    folder = tmp_path / "canvas"
    assert {f"canvas{s}" for s in ("_lmk2d_image.txt", "_vis_original.png")} <= {p.split("/")[-1] for p in files}
    crop_lmk = np.loadtxt(folder / "canvas_lmk2d.txt")
    image_lmk = np.loadtxt(folder / "canvas_lmk2d_image.txt")
    codes = np.load(folder / "canvas_codes.npz")
    matrix = codes["crop_matrix"]
    assert matrix.shape == (2, 3) and tuple(codes["photo_size"]) == (520, 640)
    back = image_lmk @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(back - normalised_to_pixels(crop_lmk, 224)).max() < 0.01
    # In the photo the fitted points are as far from the pasted face's true landmarks as the fit left them in the
    # crop (about 5% of the outer-eye-corner distance, from the mean face): a wrong frame would be far off.
    err = np.linalg.norm(image_lmk - truth_px, axis=1).mean() / np.linalg.norm(truth_px[36] - truth_px[45])
    assert err < 0.08 and abs(err - float(after[0])) < 1e-3
    vis = np.asarray(Image.open(folder / "canvas_vis_original.png"))
    assert vis.shape == canvas.shape
    changed = np.abs(vis.astype(int) - canvas.astype(int)).max(-1) > 2
    x0, y0, x1, y1 = face.crop_box
    outside = np.ones(changed.shape, bool)
    outside[max(int(y0) - 3, 0) : int(y1) + 3, max(int(x0) - 3, 0) : int(x1) + 3] = False
    assert changed.any() and not changed[outside].any()


def test_precropped_input_gets_the_resize_matrix(small_deca, tmp_path):
    """landmarks=none: the whole image is the crop, its matrix the resize, and the photo-frame landmarks scale."""
    from decalite.apps.reconstruct import detect_faces, photo_landmarks
    from decalite.io.inputs import InputItem

    deca, _ = small_deca
    image = np.zeros((300, 450, 3), np.uint8)
    (face,) = detect_faces(InputItem(path=tmp_path / "x.png", name="x"), image, None, False, size=224)
    assert np.allclose(face.crop_matrix, [[224 / 450, 0, 0], [0, 224 / 300, 0]])
    assert np.allclose(photo_landmarks(face, np.array([[-1.0, -1.0]])), [[-0.5 * 450 / 224, -0.5 * 300 / 224]])


def test_a_reconstruction_exports_a_glb_that_poses_to_its_flame_mesh(small_deca, known_faces, cfg_factory, tmp_path):
    """save.gltf: the face's GLB, read by an independent parser and posed by glTF's rules, is the reconstructed
    mesh (FLAME at the face's code); its material carries the photo texture and the detail normal map."""
    import io

    from apps.gltf_reader import accessor, pose_glb, read_glb

    deca, assets = small_deca
    faces, truth = known_faces
    cfg = cfg_factory("reconstruct", "input=unused", "save.gltf=true", "save.obj=false", "save.ply=false",
                      "save.dense=false", "save.vis=false", "save.vis_original=false", "save.depth=false")
    with torch.no_grad():
        out = deca.decode(truth, detail=True)
    files = write_face(tmp_path, faces[1], deca, assets, truth, out, 1, cfg.save, False)
    glb = tmp_path / "face1" / "face1.glb"
    assert str(glb) in files
    doc, binary = read_glb(glb)
    index = accessor(doc, binary, doc["meshes"][0]["primitives"][0]["attributes"]["_FLAME_VERTEX"])[:, 0].astype(int)
    np.testing.assert_allclose(pose_glb(doc, binary), out.vertices[1].numpy()[index], atol=2e-6, rtol=0)
    material = doc["materials"][0]
    assert "baseColorTexture" in material["pbrMetallicRoughness"] and "normalTexture" in material
    for image in doc["images"]:
        view = doc["bufferViews"][image["bufferView"]]
        png = Image.open(io.BytesIO(binary[view.get("byteOffset", 0) : view["byteOffset"] + view["byteLength"]]))
        assert png.size == (deca.renderer.uv.uv_size,) * 2
