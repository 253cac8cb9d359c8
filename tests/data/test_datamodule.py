"""The identity-group loader: batch layout, identity purity, landmark alignment, rank/worker splits, corrupt data
and determinism, on small synthetic shards.

Each synthetic identity has its own solid colour in the red and blue channels; the green channel is zero except
for a bright 3x3 dot on landmark 30 of each image, so alignment after augmentation can be measured.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds

from decalite.data.augment import (
    ColourJitter,
    random_crop_params,
    warp_group,
)
from decalite.data.datamodule import IdentityGroupDataModule, IdentityGroupDataset, even_shares, expand_urls
from decalite.data.shards import IdentitySample, encode_sample, write_shard
from decalite.geometry.camera import normalised_to_pixels, pixels_to_normalised

SIZE = 256
N_SHARDS, PER_SHARD = 6, 2
SHORT_ID = 3  # this identity has 2 images only (fewer than K = 3)


def _colour(i: int) -> tuple[int, int]:
    """(red, blue) of identity i."""
    return 30 + 18 * i, 220 - 15 * i


def _identity_of(red: float) -> int:
    return int(np.argmin([abs(_colour(i)[0] - red) for i in range(N_SHARDS * PER_SHARD)]))


def _sample(i: int, n: int, rng: np.random.Generator) -> IdentitySample:
    """Identity i with n images: solid colour, landmarks in the central half, a green dot on landmark 30."""
    red, blue = _colour(i)
    images = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    images[..., 0], images[..., 2] = red, blue
    landmarks = rng.uniform(SIZE * 0.25, SIZE * 0.75, (n, 68, 2)).astype(np.float32)
    landmarks += rng.uniform(-10, 10, (n, 1, 2)).astype(np.float32)  # move the whole face a little per image
    landmarks[:, 30] = rng.integers(int(SIZE * 0.35), int(SIZE * 0.65), (n, 2))  # the dot sits on a pixel
    for j, (x, y) in enumerate(landmarks[:, 30].astype(int)):
        images[j, y - 1:y + 2, x - 1:x + 2, 1] = 255
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    masks[:, SIZE // 4:3 * SIZE // 4, SIZE // 4:3 * SIZE // 4] = 255
    gt = {"shape": rng.normal(size=(n, 10)), "cam": rng.normal(size=(n, 3))}
    return IdentitySample(f"id{i:02d}", images, landmarks, masks, {"detector": "test"}, gt=gt)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_SHARDS shards of PER_SHARD identities each (identity SHORT_ID with 2 images, the others 3-5)."""
    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    for s in range(N_SHARDS):
        ids = range(s * PER_SHARD, (s + 1) * PER_SHARD)
        write_shard(folder / f"shard-{s:03d}.tar",
                    [_sample(i, 2 if i == SHORT_ID else 3 + i % 3, rng) for i in ids])
    return folder


def _module(shards: Path, **kw: object) -> IdentityGroupDataModule:
    args: dict[str, object] = dict(train_urls=str(shards / "shard-*.tar"), val_urls=str(shards / "shard-*.tar"),
                                   batch_size=2, k=3, num_workers=0, epoch_length=4, jitter=False, seed=0)
    args.update(kw)
    return IdentityGroupDataModule(**args)  # type: ignore[arg-type]


def _dot_centre(green: torch.Tensor) -> torch.Tensor:
    """(x, y) centroid of the green dot: intensity-weighted over a 9x9 window around the brightest pixel."""
    row, col = divmod(int(green.argmax()), green.shape[1])
    r0, c0 = max(row - 4, 0), max(col - 4, 0)
    window = (green[r0:row + 5, c0:col + 5] - 0.2).clamp_min(0)
    ys, xs = torch.meshgrid(torch.arange(window.shape[0]) + r0, torch.arange(window.shape[1]) + c0, indexing="ij")
    return torch.stack([(window * xs).sum(), (window * ys).sum()]) / window.sum()


def test_expand_urls_globs_braces_and_remote(shards):
    local = expand_urls(str(shards / "shard-*.tar"))
    assert local == sorted(local) and len(local) == N_SHARDS
    assert expand_urls(str(shards / "shard-{000..002}.tar"))[-1].endswith("shard-002.tar")
    assert expand_urls(["pipe:cat a.tar", "https://x/y.tar"]) == ["pipe:cat a.tar", "https://x/y.tar"]
    with pytest.raises(FileNotFoundError):
        expand_urls(str(shards / "nothing-*.tar"))


def test_batches_have_the_layout_and_one_identity_per_group(shards):
    loader = _module(shards, epoch_length=8).train_dataloader()
    batches = list(loader)
    assert len(batches) == 4
    seen = set()
    for batch in batches:
        assert batch["images"].shape == (2, 3, 3, 224, 224) and batch["images"].dtype == torch.float32
        assert batch["landmarks"].shape == (2, 3, 68, 2) and batch["masks"].shape == (2, 3, 1, 224, 224)
        assert batch["crop"].shape == (2, 3, 2, 3) and batch["shape"].shape == (2, 3, 10)
        assert 0 <= batch["images"].min() and batch["images"].max() <= 1
        assert batch["landmarks"].abs().max() < 1.0  # the crop (>= 1.4 x the landmark box) holds every landmark
        for b, name in enumerate(batch["identity"]):
            patch = batch["images"][b, :, 0, 100:124, 100:124]  # (K, 24, 24), red, inside the face box
            reds = patch.flatten(1).median(1).values * 255  # (K, 24, 24) -> (K, 576) -> (K,)
            assert all(_identity_of(float(r)) == int(name[2:]) for r in reds), (name, reds)
            seen.add(name)
    assert len(seen) > 1


def test_short_identity_draws_with_replacement(shards):
    ds = IdentityGroupDataset(str(shards / "shard-001.tar"), k=3, image_size=64, jitter=False, train=True,
                              epoch_length=4, shuffle_buffer=0)
    groups = [g for g in ds if g["identity"] == f"id{SHORT_ID:02d}"]
    assert groups and all(g["images"].shape[0] == 3 for g in groups)


@pytest.mark.parametrize("rotation", [0.0, 15.0])
def test_landmarks_stay_on_the_dot_after_augmentation(shards, rotation):
    ds = IdentityGroupDataset(str(shards / "shard-*.tar"), k=3, image_size=224, jitter=True, train=True,
                              epoch_length=6, max_rotation=rotation, seed=5)
    for group in ds:
        pixels = normalised_to_pixels(group["landmarks"][:, 30], 224)  # (K, 2)
        for k in range(3):
            found = _dot_centre(group["images"][k, 1])
            assert torch.linalg.norm(found - pixels[k]) <= 1.5, (group["identity"], k, found, pixels[k])


def test_normalisation_round_trip_and_convention():
    px = torch.tensor([[0.0, 0.0], [223.0, 111.5]])
    n = pixels_to_normalised(px, 224)
    torch.testing.assert_close(n[0], torch.full((2,), -1 + 1 / 224))
    torch.testing.assert_close(n[1], torch.tensor([1 - 1 / 224, 0.0]))
    torch.testing.assert_close(normalised_to_pixels(n, 224), px)


def test_warp_group_maps_box_centre_to_crop_centre():
    gen = torch.Generator().manual_seed(0)
    lmk = torch.rand(4, 68, 2, generator=gen) * 100 + 50
    m = random_crop_params(lmk, (1.5, 1.5), 0.0, gen, out_size=64)
    _, masks, moved = warp_group(torch.rand(4, 3, 200, 200), torch.ones(4, 1, 200, 200), lmk, m, 64)
    centre = (moved.amin(1) + moved.amax(1)) / 2
    torch.testing.assert_close(centre, torch.full((4, 2), 31.5), atol=1e-3, rtol=0)
    side = (moved.amax(1) - moved.amin(1)).amax(1)
    torch.testing.assert_close(side, torch.full((4,), 64 / 1.5), atol=1e-3, rtol=0)
    assert masks[:, :, 20:44, 20:44].min() > 0.99


def test_colour_jitter_is_deterministic_and_bounded():
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    a = ColourJitter()(images, torch.Generator().manual_seed(7))
    b = ColourJitter()(images, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and not torch.equal(a, images) and 0 <= a.min() and a.max() <= 1


def _valid_names(batch: dict) -> list[str]:
    return [n for n, v in zip(batch["identity"], batch["valid"][:, 0].tolist()) if v > 0]


def test_eval_ranks_and_workers_see_disjoint_identities_covering_all(shards):
    names: list[str] = []
    for rank in range(2):
        loader = _module(shards, rank=rank, world_size=2, num_workers=2, batch_size=1).val_dataloader()
        names += [n for batch in loader for n in _valid_names(batch)]
    assert sorted(names) == [f"id{i:02d}" for i in range(N_SHARDS * PER_SHARD)]  # no repeats, none missing


@pytest.mark.parametrize("n_shards", [1, 2, 3])
@pytest.mark.parametrize("world, workers, batch", [(2, 0, 2), (3, 0, 1), (2, 2, 2)])
def test_eval_ranks_get_equal_batches_and_each_sample_once(shards, n_shards, world, workers, batch):
    """DDP runs one forward per validation batch on every rank: ranks must see equally many batches (issue 18:
    1 or 3 validation shards on 2 ranks crashed gloo), while the real (valid) samples cover each one once."""
    urls = [str(shards / f"shard-{s:03d}.tar") for s in range(n_shards)]
    counts, names = [], []
    for rank in range(world):
        loader = _module(shards, val_urls=urls, rank=rank, world_size=world, num_workers=workers,
                         batch_size=batch, image_size=32).val_dataloader()
        batches = list(loader)
        counts.append(len(batches))
        names += [n for b in batches for n in _valid_names(b)]
    assert len(set(counts)) == 1, counts
    assert sorted(names) == [f"id{i:02d}" for i in range(n_shards * PER_SHARD)]


def test_even_shares_pad_every_slot_to_the_same_length_and_replace_corrupt_samples():
    def decode(raw):
        if raw == "bad":
            raise ValueError("corrupt")
        return raw

    for n in range(0, 8):
        for slots in (1, 2, 3, 5):
            shares = [list(even_shares(iter([f"s{j}" for j in range(n)]), slot, slots, decode))
                      for slot in range(slots)]
            assert {len(x) for x in shares} == {-(-n // slots)}
            real = sorted(item for share in shares for item, pad in share if not pad)
            assert real == sorted(f"s{j}" for j in range(n))
    stream = ["s0", "bad", "s2", "s3", "bad", "s5"]
    shares = [list(even_shares(iter(stream), slot, 2, decode)) for slot in range(2)]
    assert [len(x) for x in shares] == [3, 3]
    assert sorted(i for share in shares for i, pad in share if not pad) == ["s0", "s2", "s3", "s5"]
    # A slot whose only samples are corrupt still fills its share, with a sample from the stream.
    assert list(even_shares(iter(["s0", "bad"]), 1, 2, decode)) == [("s0", True)]


def test_train_ranks_yield_the_same_number_of_batches_per_epoch(shards):
    counts = []
    for rank in range(2):
        module = _module(shards, rank=rank, world_size=2, num_workers=2, batch_size=2, epoch_length=6,
                         image_size=32)
        loader = module.train_dataloader()
        counts.append([sum(1 for _ in loader) for _ in range(2)])  # two epochs on persistent workers
        assert module.batches_per_epoch == 4
    assert counts == [[4, 4], [4, 4]]


def _write_raw(path: Path, raws: list[dict]) -> None:
    with open(path, "wb") as f, wds.TarWriter(f, encoder=False) as sink:
        for raw in raws:
            sink.write(raw)


def test_corrupt_jpeg_and_truncated_tar_are_skipped_and_counted(tmp_path, caplog):
    rng = np.random.default_rng(3)
    samples = [_sample(i, 3, rng) for i in range(6)]
    raws = [encode_sample(s) for s in samples[:2]]
    raws[0]["01.jpg"] = b"\xff\xd8\xff\xe0 definitely not a jpeg"
    _write_raw(tmp_path / "a-corrupt.tar", raws)
    write_shard(tmp_path / "b-truncated.tar", samples[2:5])
    data = (tmp_path / "b-truncated.tar").read_bytes()
    (tmp_path / "b-truncated.tar").write_bytes(data[: int(len(data) * 0.55)])  # cuts into the 2nd sample
    write_shard(tmp_path / "c-good.tar", samples[5:])
    ds = IdentityGroupDataset(str(tmp_path / "*.tar"), k=2, image_size=32, train=False)
    with caplog.at_level(logging.WARNING, logger="decalite.data.datamodule"):
        names = [g["identity"] for g in ds]
    assert names == ["id01", "id02", "id05"]
    assert ds.corrupt_count >= 2
    assert sum("corrupt" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING) >= 2
    # The resampled training stream reads past them too and still fills its epoch.
    train = IdentityGroupDataset(str(tmp_path / "*.tar"), k=2, image_size=32, train=True, epoch_length=5)
    assert len(list(train)) == 5 and train.corrupt_count >= 1


def test_same_seed_same_first_batch(shards):
    def first(seed: int) -> dict:
        return next(iter(_module(shards, seed=seed, jitter=True, image_size=64).train_dataloader()))

    a, b, c = first(11), first(11), first(12)
    assert a["identity"] == b["identity"]
    for key in ("images", "landmarks", "masks", "shape"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["images"], c["images"])


def test_rank_comes_from_the_trainer_when_attached(shards):
    module = _module(shards)
    fake_trainer = dataclasses.make_dataclass("FakeTrainer", [("global_rank", int), ("world_size", int)])
    module.trainer = fake_trainer(1, 3)  # type: ignore[assignment]
    assert module.rank_world() == (1, 3)
    assert _module(shards, rank=0, world_size=2).rank_world() == (0, 2)
