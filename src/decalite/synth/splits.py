"""The synthetic train / held-out splits of a training run: written on first use, resumed when interrupted, and
refused (with the fix) when the folder holds data of another head or other settings.

A run's synthetic world is a :class:`~decalite.synth.SyntheticConfig` (``base``, any of its fields); the splits
differ only in their identity counts and seeds: train from ``base.seed``, held-out from ``base.seed +``
:data:`HELD_OUT_SEED_OFFSET` (disjoint identities).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from decalite.errors import AssetError
from decalite.synth.config import SyntheticConfig
from decalite.synth.writer import write_synthetic_dataset

log = logging.getLogger(__name__)

#: Beside each split's manifest: the head it was rendered from (the assets folder's name, e.g. ``ict_head_v1``), so
#: data of another head (an older generator, another FLAME) is not mixed in.
SOURCE_FILE = "head_source.txt"
#: Held-out identities use seeds from ``seed + HELD_OUT_SEED_OFFSET``.
HELD_OUT_SEED_OFFSET = 1_000_000
#: Settings that do not change what is written (where it is computed), so existing data need not match them.
UNCHECKED = ("device", "backend")


#: The keys of a training config's ``data.synthetic`` block that are not generator settings.
SPLIT_KEYS = ("root", "train_identities", "val_identities", "identities_per_shard")


def synthetic_config(settings: dict[str, Any], where: str = "data.synthetic", **fixed: Any) -> SyntheticConfig:
    """A :class:`SyntheticConfig` from ``settings`` (its fields; :data:`SPLIT_KEYS` are skipped), then ``fixed``;
    lists become tuples.

    Raises:
        KeyError: a key that is neither a field nor a split key (a typo), named as ``<where>.<key>``.
    """
    names = {f.name for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(k for k in settings if k not in names and k not in SPLIT_KEYS)
    if unknown:
        raise KeyError(f"{', '.join(f'{where}.{k}' for k in unknown)}: not a synthetic-data setting; the settings "
                       f"are SyntheticConfig's fields ({', '.join(sorted(names))}) and {', '.join(SPLIT_KEYS)}")
    chosen = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k in names}
    return SyntheticConfig(**{**chosen, **fixed})


def ensure_splits(root: str | Path, base: SyntheticConfig, train_identities: int, val_identities: int,
                  identities_per_shard: int, assets_dir: str | Path) -> None:
    """Write ``root/train`` and ``root/val`` when absent or unfinished (finished shards are kept).

    Raises:
        AssetError: a split holds data rendered from another head, or written with other settings; the message
            names the folder, the differing settings and the fix.
    """
    source = Path(assets_dir).name
    for split, count, seed in (("train", train_identities, base.seed),
                               ("val", val_identities, base.seed + HELD_OUT_SEED_OFFSET)):
        out = Path(root) / split
        synth = dataclasses.replace(base, identities=int(count), seed=int(seed))
        if (out / "manifest.json").exists():
            written = check_split(out, synth, source)
            if written >= int(count):
                continue
            log.info("synthetic %s split in %s has %d of %d identities (interrupted): resuming", split, out,
                     written, int(count))
        else:
            log.info("writing %d synthetic %s identities to %s (first use)", count, split, out)
        out.mkdir(parents=True, exist_ok=True)
        (out / SOURCE_FILE).write_text(source + "\n")  # first, so an interrupted write can be resumed
        write_synthetic_dataset(synth, out, identities_per_shard=int(identities_per_shard), assets_dir=assets_dir)


def check_split(out: Path, wanted: SyntheticConfig, source: str) -> int:
    """Refuse a split rendered from a head other than ``source`` or whose manifest records other settings than
    ``wanted``; returns the number of identities written so far."""
    from decalite.data.shards import MANIFEST, read_manifest

    marker = out / SOURCE_FILE
    found_source = marker.read_text().strip() if marker.exists() else "an older decalite (no record)"
    fix = (f"delete {out.parent} to regenerate it (automatic, a few minutes), or point data.synthetic.root "
           "elsewhere")
    if found_source != source:
        raise AssetError(out, f"synthetic data rendered from {found_source}, but the configured head is {source}",
                         what="synthetic training data", expected=f"shards rendered from {source}",
                         how_to_obtain=fix)
    try:
        recorded = read_manifest(out)
    except (OSError, ValueError) as err:
        raise AssetError(out / MANIFEST, f"unreadable ({err})", what="synthetic data manifest",
                         how_to_obtain=f"delete {out.parent} to regenerate it") from err
    # A setting the manifest does not record was written by a decalite without it: the default then.
    found = {**SyntheticConfig().to_json(), **(recorded.get("config") or {})}
    want = wanted.to_json()
    differ = [f"{k}: {found.get(k)!r} there, {want[k]!r} configured" for k in sorted(want)
              if k not in UNCHECKED and found.get(k) != want[k]]
    if differ:
        raise AssetError(out, "synthetic data written with other settings than configured (" + "; ".join(differ) + ")",
                         what="synthetic training data", expected="shards written with the configured data.synthetic",
                         how_to_obtain=fix)
    return int(recorded.get("samples", 0))
