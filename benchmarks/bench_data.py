"""Data loader benchmark: identity-group throughput (decode + K-image choice + crop/warp + jitter + collate).

Writes synthetic shards into a temporary folder (random smooth 256 x 256 images, 200 identities x 8 images by
default), then times the training DataLoader of :class:`IdentityGroupDataModule` at K = 4, 224 x 224, for
0 workers (the main process: one worker's throughput) and 2 workers, and logs images per second. Writes
``data.json`` + ``data.md`` into ``--out`` (see report.py). Run: ``python benchmarks/bench_data.py``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from report import DEFAULT_OUT, Report, peak_memory_mb

from decalite.data.datamodule import IdentityGroupDataModule
from decalite.data.shards import DEFAULT_SIZE, IdentitySample, write_shard

log = logging.getLogger("bench_data")


def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random smooth RGB image: 8x8 noise upsampled bicubically. Returns (size, size, 3) uint8."""
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC))


def synthetic_identity(i: int, n: int, size: int, rng: np.random.Generator) -> IdentitySample:
    """Identity i with n images, landmarks spread over the central half (the stored context of 2x the box)."""
    images = np.stack([smooth_image(rng, size) for _ in range(n)])  # n x (S, S, 3) -> (n, S, S, 3)
    landmarks = rng.uniform(size * 0.25, size * 0.75, (n, 68, 2)).astype(np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    masks[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 255
    return IdentitySample(f"id{i:05d}", images, landmarks, masks, {"detector": "bench"})


def write_shards(folder: Path, identities: int, images: int, per_shard: int, size: int) -> int:
    """Write the synthetic shards; returns how many."""
    rng = np.random.default_rng(0)
    n_shards = -(-identities // per_shard)
    for s in range(n_shards):
        ids = range(s * per_shard, min((s + 1) * per_shard, identities))
        write_shard(folder / f"bench-{s:04d}.tar", [synthetic_identity(i, images, size, rng) for i in ids])
    return n_shards


def measure(urls: str, workers: int, batches: int, batch_size: int, k: int, image_size: int) -> float:
    """Images per second of the training loader over ``batches`` batches (after one warm-up batch)."""
    module = IdentityGroupDataModule(urls, batch_size=batch_size, k=k, image_size=image_size, num_workers=workers,
                                     epoch_length=(batches + 1) * batch_size, jitter=True, seed=0)
    it = iter(module.train_dataloader())
    next(it)  # worker start-up, first shard open
    start = time.perf_counter()
    seen = 0
    for batch in it:
        seen += batch["images"].shape[0] * batch["images"].shape[1]  # B * K images
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--images", type=int, default=8, help="images per identity")
    parser.add_argument("--per-shard", type=int, default=20, help="identities per shard")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for data.json / data.md ('': none)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = Report("data")
    report.note(f"training loader of IdentityGroupDataModule over synthetic shards ({args.identities} identities x "
                f"{args.images} images, {DEFAULT_SIZE}x{DEFAULT_SIZE}), {args.batches} timed batches after one; "
                "peak_mb: ru_maxrss of the main process (workers are separate processes)")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        n = write_shards(Path(tmp), args.identities, args.images, args.per_shard, DEFAULT_SIZE)
        log.info("wrote %d shards (%d identities x %d images, %dx%d) in %.1f s", n, args.identities, args.images,
                 DEFAULT_SIZE, DEFAULT_SIZE, time.perf_counter() - start)
        urls = str(Path(tmp) / "bench-*.tar")
        for workers in args.workers:
            rate = measure(urls, workers, args.batches, args.batch_size, args.k, args.image_size)
            log.info("num_workers=%d  B=%d K=%d %dx%d: %.1f images/s (%.1f groups/s)", workers, args.batch_size,
                     args.k, args.image_size, args.image_size, rate, rate / args.k)
            report.add(workers=workers, batch_size=args.batch_size, k=args.k, image_size=args.image_size,
                       batches=args.batches, images_per_s=rate, groups_per_s=rate / args.k, peak_mb=peak_memory_mb())
    if args.out:
        log.info("wrote %s %s", *report.write(args.out))


if __name__ == "__main__":
    main()
