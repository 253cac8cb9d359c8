"""Writing a synthetic dataset: identity-grouped shards plus a manifest, resumable shard by shard."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from decalite.data import shards
from decalite.synth.config import GENERATOR_NAME, SyntheticConfig
from decalite.synth.generator import SyntheticGenerator

log = logging.getLogger(__name__)

SHARD_PATTERN = "synth-{:06d}.tar"


def _reusable(out: Path, name: str, previous: dict[str, dict[str, Any]]) -> shards.ShardInfo | None:
    """The manifest's ShardInfo of an existing shard whose checksum still matches, else None."""
    entry = previous.get(name)
    path = out / name
    if entry is None or not path.is_file() or shards.sha256_file(path) != entry["sha256"]:
        return None
    return shards.ShardInfo(**entry)


def write_synthetic_dataset(
    cfg: SyntheticConfig,
    out_dir: str | Path,
    identities_per_shard: int = 50,
    assets_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    generator: SyntheticGenerator | None = None,
    on_skip: Callable[[int], None] | None = None,
) -> Path:
    """Write ``synth-000000.tar``, ... and ``manifest.json``. Returns the manifest's path.

    Resumable: a shard already present with the checksum the manifest records (for the same configuration)
    is kept as is; the manifest is rewritten after every shard.

    Args:
        cfg: what to generate. out_dir: the folder. identities_per_shard: identities per tar.
        assets_dir: FLAME-format asset folder (None: the generated head).
        progress: called with the number of identities done after each identity (or skipped shard).
        generator: a ready generator for ``cfg`` (built lazily otherwise, only when a shard must be written).
        on_skip: called with the number of identities of each skipped shard.
    """
    if identities_per_shard < 1:
        raise ValueError(f"identities_per_shard must be >= 1; got {identities_per_shard}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = {"generator": GENERATOR_NAME, "config": cfg.to_json(), "identities_per_shard": identities_per_shard}
    old = shards.read_manifest(out)
    if "config" in old:  # a setting added since that manifest was written had its default then
        old["config"] = {**SyntheticConfig().to_json(), **old["config"]}
    same_config = all(old.get(key) == value for key, value in extra.items())
    previous = {s["name"]: s for s in old.get("shards", [])} if same_config else {}
    infos: list[shards.ShardInfo] = []
    names = [SHARD_PATTERN.format(i) for i in range(math.ceil(cfg.identities / identities_per_shard))]
    for i, name in enumerate(names):
        indices = range(i * identities_per_shard, min(cfg.identities, (i + 1) * identities_per_shard))
        info = _reusable(out, name, previous)
        if info is not None:
            log.info("%s already written (checksum matches): skipped", name)
            for callback in (progress, on_skip):
                if callback:
                    callback(len(indices))
        else:
            generator = generator or SyntheticGenerator(cfg, assets_dir)
            info = shards.write_shard(out / name, _samples(generator, indices, progress))
        infos.append(info)
        # Shards still to visit keep their old entries, so an interrupted run loses no finished work.
        pending = [shards.ShardInfo(**previous[n]) for n in names[i + 1:] if n in previous]
        shards.write_manifest(out, infos + pending, extra=extra)
    return shards.write_manifest(out, infos, extra=extra)


def _samples(generator: SyntheticGenerator, indices: Iterable[int],
             progress: Callable[[int], None] | None) -> Iterable[shards.IdentitySample]:
    for index in indices:
        sample = generator.generate_identity(index)
        if progress:
            progress(1)
        yield sample
