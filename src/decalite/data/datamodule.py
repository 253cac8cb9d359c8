"""Identity-grouped training data: a webdataset stream of K-image groups per identity, and its LightningDataModule.

Each shard sample (see :mod:`decalite.data.shards`) holds N images of one identity. The dataset draws K of them,
warps them with DECA's random crop (:mod:`decalite.data.augment`) and yields one group::

    images     (K, 3, S, S) float in [0, 1]
    landmarks  (K, 68, 2)   float, image-normalised [-1, 1], +y down
    masks      (K, 1, S, S) float in [0, 1]
    crop       (K, 2, 3)    float, stored-crop -> output-crop pixel matrices (to carry gt cameras along)
    identity   str
    valid      (K,)         float, 1 for a real sample, 0 for an evaluation pad (see below)
    shape, tex, exp, pose, cam, light, detail, verts, disp: ground truth of the chosen images when the shard
               has it (synthetic data; ``cam`` of the *stored* crop, see ``crop``)
    image_cam  (K, 3)       float, the true camera of the output crop (``cam`` carried through ``crop``), when
               the shard has ``cam`` and the crop is not rotated

Training streams are infinite and resampled (:class:`webdataset.ResampledShards`), seeded per
(seed, rank, worker, epoch), and cut to a fixed number of samples per worker so every rank sees the same number
of batches per epoch. Evaluation streams read each sample once: in one process split by shard across workers;
under DDP (world size > 1) split by sample across every (rank, worker) and padded to equal shares, so every rank
runs the same number of validation steps (DDP's forward synchronises the ranks at each one). Padding repeats a
sample and is flagged ``valid = 0``; :class:`decalite.training.base.StageModule` leaves those out of the metrics.

Corrupt data are skipped, never fatal: tar-level errors (truncated or unreadable shards) go through a counting
webdataset handler and samples that fail :func:`decode_sample` (bad JPEG, missing files) are dropped. Each is
logged as a WARNING and counted in ``dataset.corrupt_count`` (per process: each DataLoader worker has its own
copy of the dataset, so the warning names the worker and its running count).
"""

from __future__ import annotations

import glob
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from decalite.data.augment import ColourJitter, random_crop_params, warp_group
from decalite.data.shards import IdentitySample, decode_sample, sample_size
from decalite.geometry.camera import crop_camera, pixels_to_normalised

log = logging.getLogger(__name__)

GT_KEYS = ("shape", "tex", "exp", "pose", "cam", "light", "detail", "verts", "disp", "lmk3d")
Group = dict[str, Any]


# ----------------------------------------------------------------------------------------------------------- urls


def expand_urls(urls: str | Sequence[str]) -> list[str]:
    """Shard URLs from paths, globs, brace patterns and remote URLs.

    Local globs (``*``, ``?``, ``[``) are expanded with :func:`glob.glob` and sorted; brace patterns
    (``shard-{000..009}.tar``) are expanded by webdataset; ``http(s)://``, ``pipe:`` and other ``scheme:`` URLs
    pass through unchanged. A glob that matches nothing is an error (a typo should not train on nothing).
    """
    items = [urls] if isinstance(urls, str) else list(urls)
    out: list[str] = []
    for item in items:
        item = str(item)
        if _is_remote(item):
            out.append(item)
        elif "{" in item:
            out.extend(wds.shardlists.expand_urls(item))
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item))
            if not found:
                raise FileNotFoundError(f"no shards match {item!r}")
            out.extend(found)
        else:
            out.append(item)
    if not out:
        raise ValueError("no shard URLs given")
    return out


def _is_remote(url: str) -> bool:
    head = url.split(":", 1)[0]
    return ":" in url and len(head) > 1 and head.isalnum()  # "pipe:", "http:", "s3:"; not "C:\..."


# ---------------------------------------------------------------------------------------------- ranks and seeds


def distributed_rank_world(trainer: Any = None) -> tuple[int, int]:
    """(rank, world_size): from torch.distributed when initialised, else an attached Lightning trainer, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    if trainer is not None:
        return int(getattr(trainer, "global_rank", 0)), int(getattr(trainer, "world_size", 1))
    return 0, 1


def worker_id_count() -> tuple[int, int]:
    """(worker id, number of workers) of the current DataLoader worker; (0, 1) in the main process."""
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def mix_seed(*values: int) -> int:
    """A well-spread 63-bit seed from integers (stable across processes and Python runs)."""
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(2, np.uint64)[0] >> 1)


def split_by_rank(rank: int, world_size: int) -> Callable[[Any], Iterator[Any]]:
    """A pipeline stage keeping every ``world_size``-th shard from ``rank``.

    Same slicing as :func:`webdataset.split_by_node`, but with an explicit rank (that one reads
    torch.distributed / $RANK only), so tests and custom launchers can set it.
    """

    def stage(src: Any) -> Iterator[Any]:
        for i, item in enumerate(src):
            if i % world_size == rank:
                yield item

    return stage


def even_shares(src: Iterator[dict[str, Any]], slot: int, slots: int,
                decode: Callable[[dict[str, Any]], Any]) -> Iterator[tuple[Any, bool]]:
    """A pipeline stage: samples ``j`` with ``j % slots == slot`` of the whole stream, decoded, then padding so
    every slot yields exactly ceil(N / slots) items, N the number of raw samples in the stream.

    Yields (decoded, is_pad). A sample that fails ``decode`` (it raises) is replaced by a pad, so corrupt data
    cannot make slots unequal; pads repeat the slot's last good sample (or, for a slot with none, the first
    sample of the stream that decodes). Every slot reads the whole stream, ``slots`` times the reading of a
    disjoint split: meant for evaluation sets.
    """
    kept = count = pending = 0
    last: Any = None
    first: dict[str, Any] | None = None
    for j, raw in enumerate(src):
        count = j + 1
        first = raw if first is None else first
        if j % slots != slot:
            continue
        kept += 1
        try:
            last = decode(raw)
        except Exception:  # noqa: BLE001 - decode logs and counts its failures; the slot stays full with a pad
            pending += 1
            continue
        yield last, False
        for _ in range(pending):
            yield last, True
        pending = 0
    missing = -(-count // slots) - (kept - pending)
    if missing <= 0:
        return
    if last is None and first is not None:
        try:
            last = decode(first)
        except Exception:  # noqa: BLE001 - reported below
            last = None
    if last is None:
        raise RuntimeError(f"evaluation stream slot {slot} of {slots}: no sample decodes, so the ranks cannot be "
                           "given equal shares; check the validation shards")
    for _ in range(missing):
        yield last, True


# ------------------------------------------------------------------------------------------------------ dataset


class IdentityGroupDataset(IterableDataset):
    """A webdataset stream of augmented K-image groups, one per identity sample (see the module docstring).

    Args:
        urls: shard paths, globs, brace patterns or remote/``pipe:`` URLs (see :func:`expand_urls`).
        k: images per group. When a sample has fewer than K images (N < K), training draws them *with
            replacement* (some images repeat, under different random crops); otherwise K distinct images.
            Evaluation takes the first K (cycling when N < K).
        image_size: output crop side S.
        scale_range: DECA's crop scale range (training); evaluation uses its midpoint.
        shift: maximum crop-centre shift, fraction of the crop side (training only).
        jitter: colour jitter in training: True for :class:`ColourJitter` defaults, False/None for none.
        train: resampled infinite stream (True) or one disjoint pass over the shards (False).
        epoch_length: samples per rank per epoch in training, split evenly (rounded up) over the workers;
            None: unbounded. Ignored in evaluation.
        seed: base seed; the stream is a function of (seed, rank, worker, epoch).
        max_rotation: maximum crop rotation in degrees (training; default 0 as in DECA).
        shuffle_buffer: training sample shuffle buffer (mixes identities of the resampled shards); 0 disables.
        rank, world_size: explicit overrides of the distributed rank (else :func:`distributed_rank_world`).
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        k: int,
        image_size: int = 224,
        scale_range: tuple[float, float] = (1.4, 1.8),
        shift: float = 0.05,
        jitter: ColourJitter | bool | None = True,
        train: bool = True,
        epoch_length: int | None = None,
        seed: int = 0,
        max_rotation: float = 0.0,
        shuffle_buffer: int = 64,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.urls = expand_urls(urls)
        self.k, self.image_size, self.train, self.seed = k, image_size, train, seed
        self.scale_range, self.shift, self.max_rotation = (float(scale_range[0]), float(scale_range[1])), shift, \
            max_rotation
        self.jitter: ColourJitter | None = ColourJitter() if jitter is True else (jitter or None)
        self.epoch_length, self.shuffle_buffer = epoch_length, shuffle_buffer
        self.rank, self.world_size = rank, world_size
        self.corrupt_count = 0
        self.epoch = -1
        self._where = "rank 0 worker 0"

    # ---------------------------------------------------------------- topology

    def rank_world(self) -> tuple[int, int]:
        """(rank, world_size): explicit overrides first, then torch.distributed, else (0, 1)."""
        rank, world = distributed_rank_world()
        return (rank if self.rank is None else self.rank), (world if self.world_size is None else self.world_size)

    def samples_per_worker(self, num_workers: int) -> int | None:
        """Training samples each worker yields per epoch: ceil(epoch_length / num_workers); None if unbounded."""
        if self.epoch_length is None:
            return None
        return max(1, -(-self.epoch_length // max(1, num_workers)))

    # ---------------------------------------------------------------- errors

    def _count_corrupt(self, what: str, exc: BaseException) -> None:
        self.corrupt_count += 1
        log.warning("%s: skipped corrupt data (%s: %s: %s); %d corrupt so far", self._where, what,
                    type(exc).__name__, exc, self.corrupt_count)

    def _tar_handler(self, exc: Exception) -> bool:
        """webdataset handler (like ``wds.warn_and_continue``, but logged, counted and without its sleep)."""
        self._count_corrupt("tar", exc)
        return True

    # ---------------------------------------------------------------- pipeline

    def _shard_source(self, rank: int, world: int, worker: int, epoch: int) -> list[Any]:
        """The first pipeline stages: shard URLs for this rank and worker."""
        if self.train:
            seed = mix_seed(self.seed, rank, worker, epoch)
            return [wds.ResampledShards(self.urls, seed=self.seed, worker_seed=lambda: seed, deterministic=True)]
        return [wds.SimpleShardList(self.urls), split_by_rank(rank, world), wds.split_by_worker]

    def _decode_one(self, raw: dict[str, Any], generator: torch.Generator) -> IdentitySample:
        """Raw sample -> IdentitySample of the K chosen images (only those are decoded); failures are logged,
        counted and re-raised."""
        try:
            return decode_sample(raw, self.choose(sample_size(raw), generator).tolist())
        except Exception as exc:
            self._count_corrupt(f"sample {raw.get('__key__', '?')!r} of {raw.get('__url__', '?')}", exc)
            raise

    def _decode(self, src: Iterator[dict[str, Any]], generator: torch.Generator) -> Iterator[tuple[IdentitySample, bool]]:
        """Pipeline stage: raw samples -> (IdentitySample, is_pad=False), skipping the ones that do not decode."""
        for raw in src:
            try:
                yield self._decode_one(raw, generator), False
            except Exception:  # noqa: BLE001 - any undecodable sample is skipped (logged and counted)
                continue

    def __iter__(self) -> Iterator[Group]:
        self.epoch += 1
        rank, world = self.rank_world()
        worker, workers = worker_id_count()
        self._where = f"rank {rank} worker {worker}"
        generator = torch.Generator().manual_seed(mix_seed(self.seed, rank, worker, self.epoch, 1))
        even = not self.train and world > 1
        stages: list[Any] = [wds.SimpleShardList(self.urls)] if even else \
            self._shard_source(rank, world, worker, self.epoch)
        stages.append(wds.tarfile_to_samples(handler=self._tar_handler))
        if self.train and self.shuffle_buffer > 0:
            rng = random.Random(mix_seed(self.seed, rank, worker, self.epoch, 2))
            stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng))
        if even:
            stages.append(lambda src: even_shares(src, rank * workers + worker, world * workers,
                                                  lambda raw: self._decode_one(raw, generator)))
        else:
            stages.append(lambda src: self._decode(src, generator))
        stages.append(wds.map(lambda item: self.make_group(item[0], generator, pad=item[1])))
        pipeline = wds.DataPipeline(*stages)
        limit = self.samples_per_worker(workers) if self.train else None
        if limit is not None:
            pipeline = pipeline.with_epoch(limit)
        return iter(pipeline)

    # ---------------------------------------------------------------- one group

    def choose(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Indices (K,) of the images of an N-image sample (see the class docstring for N < K)."""
        if not self.train:
            return torch.arange(self.k) % n
        if n >= self.k:
            return torch.randperm(n, generator=generator)[: self.k]
        return torch.randint(n, (self.k,), generator=generator)

    def make_group(self, sample: IdentitySample, generator: torch.Generator, pad: bool = False) -> Group:
        """Crop/warp/jitter the K images of a decoded sample (see ``_decode``) and normalise their landmarks;
        ``pad`` marks an evaluation pad (``valid`` = 0)."""
        stored = int(sample.images.shape[2])
        images = torch.from_numpy(sample.images).permute(0, 3, 1, 2)  # (K, H, W, 3) -> (K, 3, H, W)
        images = images.float() / 255.0
        masks = torch.from_numpy(sample.masks)[:, None].float() / 255.0  # (K, H, W) -> (K, 1, H, W)
        landmarks = torch.from_numpy(sample.landmarks)  # (K, 68, 2)
        if self.train:
            matrices = random_crop_params(landmarks, self.scale_range, self.shift, generator, self.image_size,
                                          self.max_rotation)
        else:
            mid = sum(self.scale_range) / 2.0
            matrices = random_crop_params(landmarks, (mid, mid), 0.0, generator, self.image_size, 0.0)
        images, masks, landmarks = warp_group(images, masks, landmarks, matrices, self.image_size)
        if self.train and self.jitter is not None:
            images = self.jitter(images, generator)
        group: Group = {"images": images.clamp(0.0, 1.0), "landmarks": pixels_to_normalised(landmarks, self.image_size),
                        "masks": masks.clamp(0.0, 1.0), "crop": matrices.float(), "identity": sample.identity,
                        "valid": torch.full((images.shape[0],), 0.0 if pad else 1.0)}
        group.update({k: torch.from_numpy(np.asarray(sample.gt[k], dtype=np.float32)) for k in GT_KEYS if k in sample.gt})
        if "cam" in sample.gt and not (self.train and self.max_rotation):  # a rotated crop has no such camera
            cams = crop_camera(np.asarray(sample.gt["cam"]), matrices.numpy(), stored, self.image_size)
            group["image_cam"] = torch.from_numpy(cams.astype(np.float32))
        return group


def collate_groups(groups: list[Group]) -> Group:
    """Stack B groups: tensors (K, ...) -> (B, K, ...), ``identity`` -> list of B names.

    Ground-truth keys are kept only when every group has them with one shape (mixed synthetic/real batches
    drop them, logged at DEBUG).
    """
    out: Group = {"identity": [g["identity"] for g in groups]}
    for key in groups[0]:
        if key == "identity":
            continue
        values = [g.get(key) for g in groups]
        if any(v is None for v in values) or len({tuple(v.shape) for v in values}) != 1:
            log.debug("dropping %r from a batch: missing or mismatched in some groups", key)
            continue
        out[key] = torch.stack(values)  # B x (K, ...) -> (B, K, ...)
    return out


# -------------------------------------------------------------------------------------------------- datamodule


class IdentityGroupDataModule(pl.LightningDataModule):
    """Train/val loaders of identity groups batched to images (B, K, 3, S, S), landmarks (B, K, 68, 2),
    masks (B, K, 1, S, S), crop (B, K, 2, 3), identity (list of B), plus gt when present.

    Args:
        train_urls, val_urls: shard URLs (see :func:`expand_urls`); val may be None.
        batch_size: groups per batch B.
        k: images per group K.
        image_size: crop side S.
        num_workers: DataLoader workers (persistent when > 0).
        epoch_length: training groups per rank per epoch; rounded up to a multiple of
            ``batch_size * max(1, num_workers)`` so each worker yields whole batches and every rank the same
            number of batches (:attr:`batches_per_epoch`).
        scale_range, shift, jitter, seed: see :class:`IdentityGroupDataset`.
        rank, world_size: explicit overrides; otherwise torch.distributed, then the attached trainer, else 0/1.
    """

    def __init__(
        self,
        train_urls: str | Sequence[str],
        val_urls: str | Sequence[str] | None = None,
        batch_size: int = 8,
        k: int = 4,
        image_size: int = 224,
        num_workers: int = 4,
        epoch_length: int = 10_000,
        scale_range: tuple[float, float] = (1.4, 1.8),
        shift: float = 0.05,
        jitter: ColourJitter | bool | None = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        self.train_urls, self.val_urls = train_urls, val_urls
        self.batch_size, self.k, self.image_size, self.num_workers = batch_size, k, image_size, num_workers
        self.epoch_length, self.scale_range, self.shift, self.jitter, self.seed = \
            epoch_length, scale_range, shift, jitter, seed
        self.rank, self.world_size = rank, world_size

    def rank_world(self) -> tuple[int, int]:
        """(rank, world_size): explicit overrides, else torch.distributed, else the trainer, else (0, 1)."""
        rank, world = distributed_rank_world(self._trainer_or_none())
        return (rank if self.rank is None else self.rank), (world if self.world_size is None else self.world_size)

    def _trainer_or_none(self) -> Any:
        return getattr(self, "trainer", None)

    @property
    def batches_per_epoch(self) -> int:
        """Training batches each rank yields per epoch."""
        workers = max(1, self.num_workers)
        return workers * -(-self.epoch_length // (self.batch_size * workers))

    def _dataset(self, urls: str | Sequence[str], train: bool) -> IdentityGroupDataset:
        rank, world = self.rank_world()
        return IdentityGroupDataset(
            urls, self.k, self.image_size, self.scale_range, self.shift, self.jitter, train=train,
            epoch_length=self.batches_per_epoch * self.batch_size if train else None, seed=self.seed,
            rank=rank, world_size=world)

    def _loader(self, dataset: IdentityGroupDataset, train: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=collate_groups, persistent_workers=self.num_workers > 0,
                          drop_last=train, pin_memory=False)

    def train_dataloader(self) -> DataLoader:
        """Resampled, augmented training batches; :attr:`batches_per_epoch` of them per rank."""
        return self._loader(self._dataset(self.train_urls, train=True), train=True)

    def val_dataloader(self) -> DataLoader:
        """One pass over the validation samples (centre crops at the mid scale, no jitter); under DDP every rank
        gets the same number of batches (see the module docstring)."""
        if self.val_urls is None:
            return []  # type: ignore[return-value]  # Lightning accepts an empty list: no validation
        return self._loader(self._dataset(self.val_urls, train=False), train=False)
