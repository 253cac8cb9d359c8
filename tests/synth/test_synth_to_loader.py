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
