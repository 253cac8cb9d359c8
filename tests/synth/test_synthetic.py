"""Synthetic data: samples, ground-truth cameras, details, determinism, resumable writing and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from decalite.data import shards
from decalite.data.crop import transform_points
from decalite.flame.generated import EXPRESSION_NAMES
from decalite.geometry.camera import ndc_to_pixels, orthographic_project
from decalite.synth import (
    DETAIL_DIM,
    DETAIL_LAYOUT,
    DetailModel,
    SyntheticConfig,
    SyntheticGenerator,
    crop_camera,
    write_synthetic_dataset,
)

SIZE, RENDER, K = 96, 128, 3
NOSE_TIP = 30


@pytest.fixture(scope="module")
def gen() -> SyntheticGenerator:
    cfg = SyntheticConfig(identities=3, images_per_identity=K, size=SIZE, render_size=RENDER, uv_size=128,
                          backend="torch", seed=7)
    return SyntheticGenerator(cfg)


@pytest.fixture(scope="module")
def sample(gen: SyntheticGenerator) -> shards.IdentitySample:
    return gen.generate_identity(0)


def _project_px(points: np.ndarray, cam: np.ndarray, size: int) -> np.ndarray:
    """(N, L, 3) points, (N, 3) cameras -> (N, L, 2) pixel-index coordinates of a size x size image."""
    ndc = orthographic_project(torch.as_tensor(points, dtype=torch.float64), torch.as_tensor(cam, dtype=torch.float64))
    return (ndc_to_pixels(ndc[..., :2], size, size) - 0.5).numpy()


def test_sample_shapes_and_content(sample: shards.IdentitySample, gen: SyntheticGenerator) -> None:
    assert sample.images.shape == (K, SIZE, SIZE, 3) and sample.images.dtype == np.uint8
    assert sample.masks.shape == (K, SIZE, SIZE) and sample.masks.dtype == np.uint8
    assert sample.landmarks.shape == (K, 68, 2) and sample.landmarks.dtype == np.float32
    assert set(np.unique(sample.masks)) <= {0, 255}
    for i in range(K):
        assert sample.images[i].std() > 10.0
        assert 0.05 < (sample.masks[i] > 0).mean() < 0.6
    gt = sample.gt
    expected = {"shape": (K, 100), "tex": (K, gen.n_tex), "exp": (K, 50), "pose": (K, 6), "cam": (K, 3),
                "light": (K, 9, 3), "detail": (K, DETAIL_DIM), "lmk3d": (K, 68, 3),
                "verts": (K, gen.flame.n_vertices, 3), "disp": (K, 1, 128, 128)}
    assert {k: v.shape for k, v in gt.items()} == expected
    assert np.all(gt["shape"] == gt["shape"][:1]) and np.all(gt["detail"] == gt["detail"][:1])
    assert not np.allclose(gt["exp"][0], gt["exp"][1])
    assert np.all((gt["pose"][:, 3] >= 0.0) & (gt["pose"][:, 3] <= 0.4))
    meta = sample.meta
    assert meta["detector"] == "synthetic" and meta["landmarker"] == "ground-truth" and meta["mask_source"] == "render"
    assert meta["sources"] == [f"synthetic:7:{sample.identity}"] * K
    assert np.asarray(meta["crop_boxes"]).shape == (K, 4)


def test_landmarks_sit_on_the_face_and_gt_camera_reprojects(sample: shards.IdentitySample,
                                                            gen: SyntheticGenerator) -> None:
    gt = sample.gt
    for i in range(K):
        col, row = np.round(sample.landmarks[i, NOSE_TIP]).astype(int)
        assert sample.masks[i, row, col] == 255
    # The stored 3D landmarks and the crop camera give the stored 2D landmarks.
    assert np.abs(_project_px(gt["lmk3d"], gt["cam"], SIZE) - sample.landmarks).max() < 0.5
    # So does FLAME run again on the stored codes (zero neck and eye poses).
    with torch.no_grad():
        out = gen.flame(shape=torch.from_numpy(gt["shape"]), expression=torch.from_numpy(gt["exp"]),
                        global_pose=torch.from_numpy(gt["pose"][:, :3]), jaw_pose=torch.from_numpy(gt["pose"][:, 3:]))
    assert np.abs(_project_px(out.landmarks2d.numpy(), gt["cam"], SIZE) - sample.landmarks).max() < 0.5
    assert np.abs(out.vertices.numpy() - gt["verts"]).max() < 1e-3  # float16 storage
    # The meta's render camera and crop matrix give the same crop camera.
    for i in range(K):
        cam = crop_camera(np.asarray(sample.meta["render_cams"][i]), np.asarray(sample.meta["crop_matrices"][i]),
                          RENDER, SIZE)
        np.testing.assert_allclose(cam, gt["cam"][i], rtol=1e-5, atol=1e-6)


def test_crop_camera_composes_render_projection_and_crop_matrix() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(scale=0.05, size=(1, 20, 3))
    cam = np.array([[7.0, 0.01, -0.02]])
    matrix = np.array([[0.8, 0.0, 13.0], [0.0, 0.8, -4.5]])
    in_crop = transform_points(_project_px(points, cam, 200)[0], matrix)
    direct = _project_px(points, crop_camera(cam[0], matrix, 200, 160)[None], 160)[0]
    np.testing.assert_allclose(direct, in_crop, atol=1e-9)


def test_same_seed_same_bytes_other_seed_differs(gen: SyntheticGenerator, tmp_path: Path) -> None:
    a = shards.write_shard(tmp_path / "a.tar", [gen.generate_identity(i) for i in (0, 1)])
    torch.manual_seed(123)  # the global RNG plays no part
    np.random.seed(5)
    b = shards.write_shard(tmp_path / "b.tar", [gen.generate_identity(i) for i in (0, 1)])
    assert a.sha256 == b.sha256
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    other = SyntheticGenerator(replace(gen.cfg, seed=8))
    c = shards.write_shard(tmp_path / "c.tar", [other.generate_identity(i) for i in (0, 1)])
    assert c.sha256 != a.sha256


def _energy(disp: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared displacement inside a soft region."""
    return (disp[:, 0] ** 2 * region).sum((1, 2)) / region.sum()


def test_wrinkles_follow_expression(gen: SyntheticGenerator) -> None:
    detail = gen.detail
    code = DetailModel.sample_code(1, torch.Generator().manual_seed(0)).expand(3, -1)
    exp = torch.zeros(3, 50)
    exp[1, EXPRESSION_NAMES.index("brow_raise")] = 2.0
    exp[2, EXPRESSION_NAMES.index("smile")] = 2.0
    disp = detail(code, exp, torch.tensor([0.0, 0.0, 0.3]))
    assert disp.shape == (3, 1, 128, 128)
    assert disp.abs().max() < 2e-3
    forehead = _energy(disp, detail.regions["forehead"])
    assert forehead[1] > 4 * forehead[0]
    assert _energy(disp, detail.regions["crows"])[2] > 4 * _energy(disp, detail.regions["crows"])[0]
    assert _energy(disp, detail.regions["nasolabial"])[2] > 4 * _energy(disp, detail.regions["nasolabial"])[0]
    assert torch.all(disp[:, 0] * (detail.mask == 0) == 0)  # masked by the face-eye mask
    one_sided = torch.zeros(1, 50)
    one_sided[0, EXPRESSION_NAMES.index("brow_raise_left")] = 2.0
    left = _energy(detail(code[:1], one_sided, torch.zeros(1)) - disp[:1], detail.regions["forehead"] * (detail.x > 0))
    right = _energy(detail(code[:1], one_sided, torch.zeros(1)) - disp[:1], detail.regions["forehead"] * (detail.x < 0))
    assert left > 10 * right


def test_static_details_identity_specific(gen: SyntheticGenerator, sample: shards.IdentitySample) -> None:
    other = gen.generate_identity(1)
    zeros = torch.zeros(K, 50)
    codes = [torch.from_numpy(s.gt["detail"]) for s in (sample, other)]
    neutral = [gen.detail(c, zeros, torch.zeros(K)) for c in codes]
    assert torch.equal(neutral[0][0], neutral[0][1]) and torch.equal(neutral[0][0], neutral[0][2])
    assert (neutral[0][0] - neutral[1][0]).abs().max() > 5e-5
    # The stored maps are the model's output for the stored codes, expression and jaw.
    gt = sample.gt
    again = gen.detail(torch.from_numpy(gt["detail"]), torch.from_numpy(gt["exp"]), torch.from_numpy(gt["pose"][:, 3]))
    np.testing.assert_allclose(gt["disp"], again.numpy(), atol=2e-6)


def test_write_dataset_resumes_and_repairs(gen: SyntheticGenerator, tmp_path: Path) -> None:
    cfg = replace(gen.cfg, identities=3)
    manifest = write_synthetic_dataset(cfg, tmp_path, identities_per_shard=2, generator=gen)
    data = shards.read_manifest(tmp_path)
    assert manifest == tmp_path / shards.MANIFEST
    assert [s["name"] for s in data["shards"]] == ["synth-000000.tar", "synth-000001.tar"]
    assert data["images"] == 3 * K and data["config"]["seed"] == 7 and "generator" in data
    first, second = tmp_path / "synth-000000.tar", tmp_path / "synth-000001.tar"
    stamps = (first.stat().st_mtime_ns, second.stat().st_mtime_ns)
    original = second.read_bytes()
    second.write_bytes(original[:-1024])  # damaged: regenerated
    skipped: list[int] = []
    write_synthetic_dataset(cfg, tmp_path, identities_per_shard=2, generator=gen, on_skip=skipped.append)
    assert skipped == [2] and first.stat().st_mtime_ns == stamps[0]
    assert second.read_bytes() == original


def test_cli_end_to_end_and_rerun_skips(tmp_path: Path, head_cache: Path) -> None:
    out, cache = tmp_path / "out", head_cache
    cmd = [sys.executable, "-m", "decalite.cli.synth", f"output={out}", "identities=2", "images_per_identity=2",
           "size=96", "render_size=128", "renderer.uv_size=128", f"paths.cache_dir={cache}"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    tars = sorted(out.glob("synth-*.tar"))
    assert [t.name for t in tars] == ["synth-000000.tar"]
    samples = list(shards.iter_tar_samples(tars[0]))
    assert len(samples) == 2 and all(s.images.shape == (2, 96, 96, 3) for s in samples)
    assert samples[0].gt["disp"].shape == (2, 1, 128, 128)
    assert "images/s" in done.stdout + done.stderr
    stamp = tars[0].stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert tars[0].stat().st_mtime_ns == stamp
    assert "skipped" in again.stdout + again.stderr


def _correlation_length(maps: torch.Tensor, mask: torch.Tensor) -> float:
    """Texels at which the (B, 1, U, U) maps' horizontal autocorrelation inside the mask falls below 1/2."""
    x = maps[:, 0] * mask
    norm = (x * x).sum()
    for shift in range(1, x.shape[-1] // 2):
        if (x[..., shift:] * x[..., :-shift]).sum() / norm < 0.5:
            return float(shift)
    return float(x.shape[-1] // 2)


def test_detail_width_and_noise_scale_the_features(gen: SyntheticGenerator) -> None:
    """width=1, noise=1 is the model as before; a larger width makes wider static features (the demo's detail
    world); noise=0 leaves only the moles."""
    positions = gen.renderer.uv.world2uv(gen.flame(batch_size=1).vertices)[0]
    landmarks, mask = gen.flame(batch_size=1).landmarks3d[0], gen.renderer.face_eye_mask[0, 0]
    make = lambda **kw: DetailModel(positions, landmarks, mask, EXPRESSION_NAMES, **kw)  # noqa: E731
    codes = DetailModel.sample_code(6, torch.Generator().manual_seed(3))
    exp, jaw = torch.zeros(6, 50), torch.zeros(6)
    assert torch.equal(make(width=1.0, noise=1.0)(codes, exp, jaw), gen.detail(codes, exp, jaw))
    no_moles = codes.clone()
    no_moles[:, slice(*DETAIL_LAYOUT["mole_height"])] = 0.0
    no_moles[:, [DETAIL_LAYOUT["forehead"][1] - 1, DETAIL_LAYOUT["nasolabial"][1] - 1]] = 0.0  # no resting depth
    fine, wide = make()(no_moles, exp, jaw), make(width=3.0)(no_moles, exp, jaw)
    assert _correlation_length(wide, mask) >= 2.0 * _correlation_length(fine, mask)
    assert make(noise=0.0)(no_moles, exp, jaw).abs().max() == 0.0  # no moles, resting depth, noise or expression
    with pytest.raises(ValueError, match="width"):
        make(width=0.0)
