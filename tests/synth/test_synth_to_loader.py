"""Round trip: decalite-synth -> shards -> loader. Groups hold one identity, and the loader's augmented
landmarks agree with the ground truth reprojected through the stored crop camera and the augmentation."""

from __future__ import annotations

import numpy as np
import torch

from decalite.data.datamodule import IdentityGroupDataModule
from decalite.geometry.camera import ndc_to_pixels, orthographic_project
from decalite.synth import SyntheticConfig, write_synthetic_dataset


def test_synthetic_shards_through_the_loader(tmp_path):
    cfg = SyntheticConfig(identities=3, images_per_identity=3, size=128, render_size=128, uv_size=64,
                          backend="torch", seed=5)
    write_synthetic_dataset(cfg, tmp_path / "synth", identities_per_shard=2)
    dm = IdentityGroupDataModule(train_urls=[str(tmp_path / "synth" / "*.tar")], val_urls=[str(tmp_path / "synth" / "*.tar")],
                                 batch_size=3, k=2, image_size=96, num_workers=0, epoch_length=3, jitter=False,
                                 rank=0, world_size=1)
    batch = next(iter(dm.val_dataloader()))
    assert batch["images"].shape == (3, 2, 3, 96, 96) and batch["landmarks"].shape == (3, 2, 68, 2)
    assert sorted(batch["identity"]) == ["synth000000", "synth000001", "synth000002"]
    # One identity per group: the ground-truth shape code is the same for its K images.
    assert torch.allclose(batch["shape"][:, 0], batch["shape"][:, 1])
    assert not torch.allclose(batch["shape"][0, 0], batch["shape"][1, 0])
    # Reproject: gt 3D landmarks -> stored crop pixels (gt cam) -> loader crop (matrix) -> [-1, 1].
    lmk3d = batch["lmk3d"].reshape(-1, 68, 3)  # (B, K, 68, 3) -> (B*K, 68, 3)
    cam = batch["cam"].reshape(-1, 3)
    stored_px = ndc_to_pixels(orthographic_project(lmk3d, cam)[..., :2], 128, 128) - 0.5
    matrix = batch["crop"].reshape(-1, 2, 3)
    out_px = stored_px @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]
    expected = (out_px + 0.5) / 96 * 2 - 1
    err = (expected - batch["landmarks"].reshape(-1, 68, 2)).abs().max()
    assert err < 2.0 / 96  # within a pixel of the 96-pixel crop
    # Masks cover the face in the augmented images.
    assert (batch["masks"].mean(dim=(2, 3, 4)) > 0.05).all()
    assert np.isfinite(batch["disp"].numpy()).all() and batch["disp"].shape[:2] == (3, 2)


def test_true_codes_of_a_batch_rebuild_its_images_landmarks(tmp_path):
    """``image_cam`` carries the true camera through the loader's random crop, so the true code of each image
    (data.truth.true_code) projects its FLAME landmarks onto the batch's landmarks; the rendered true code matches
    the image on the skin."""
    from decalite.config import FlameConfig, RendererConfig
    from decalite.data.truth import true_code
    from decalite.geometry.camera import ndc_to_image_normalized
    from decalite.model.factory import build_flame, build_renderer, load_assets
    from decalite.training.base import flatten_groups

    cfg = SyntheticConfig(identities=2, images_per_identity=3, size=96, render_size=96, uv_size=64,
                          backend="torch", seed=9, n_shape=20, n_exp=10, detail_scale=0.0)
    write_synthetic_dataset(cfg, tmp_path / "synth", identities_per_shard=2)
    dm = IdentityGroupDataModule(train_urls=[str(tmp_path / "synth" / "*.tar")], val_urls=[str(tmp_path / "synth" / "*.tar")],
                                 batch_size=2, k=3, image_size=64, num_workers=0, epoch_length=2, jitter=False,
                                 rank=0, world_size=1)
    flat, _, _ = flatten_groups(next(iter(dm.train_dataloader())))  # random scale and shift
    assets = load_assets(FlameConfig(dir=None, embedded="generated"), None)
    flame = build_flame(FlameConfig(dir=None, n_shape=20, n_exp=10), assets)
    code = true_code(flat, n_shape=20, n_exp=10, n_tex=cfg.n_tex)
    out = flame(shape=code.shape, expression=code.exp, global_pose=code.global_pose, jaw_pose=code.jaw_pose)
    projected = ndc_to_image_normalized(orthographic_project(out.landmarks2d, code.cam)[..., :2])
    assert (projected - flat["landmarks"]).abs().max() < 1.0 / 64  # within half a pixel of the 64-pixel crop
    renderer = build_renderer(RendererConfig(image_size=64, uv_size=64, backend="torch"), assets)
    albedo = flat["images"].new_full((code.cam.shape[0], 3, 64, 64), 0.5)
    with torch.no_grad():
        render_mask = renderer(out.vertices, code.cam, albedo, code.light).alpha
    overlap = (render_mask * flat["masks"]).sum() / flat["masks"].sum()
    assert overlap > 0.97  # the skin of each image lies inside the true code's silhouette


def test_true_code_names_what_real_data_lacks():
    import pytest

    from decalite.data.truth import true_code

    with pytest.raises(KeyError, match="image_cam"):
        true_code({"shape": torch.zeros(2, 5), "tex": torch.zeros(2, 5), "exp": torch.zeros(2, 5),
                   "pose": torch.zeros(2, 6), "light": torch.zeros(2, 9, 3)}, 5, 5, 5)
