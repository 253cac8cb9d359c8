"""Write a synthetic world for the supervised bound with any :class:`~decalite.synth.SyntheticConfig` setting
(pose ranges, light, expressions: the ones ``conf/data/synthetic.yaml`` does not expose), on the embedded head,
through the splits ``decalite-train`` writes (:func:`decalite.synth.splits.ensure_splits`: the same seeds, the head's
marker, resumable).

    .venv/bin/python experiments/identity_budget/make_world.py --root data/world_s16_std3 --n-shape 16 \
        shape_std=3 yaw=15 light_variation=2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import torch

from decalite.flame.default import resolve_flame_dir
from decalite.synth import SyntheticConfig
from decalite.synth.splits import ensure_splits, synthetic_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--n-shape", type=int, default=16)
    parser.add_argument("--train", type=int, default=1024)
    parser.add_argument("--val", type=int, default=16)
    parser.add_argument("--size", type=int, default=80)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("settings", nargs="*", help="SyntheticConfig fields: name=value (tuples as a,b)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    types = {f.name: f.type for f in dataclasses.fields(SyntheticConfig)}
    extra = {}
    for item in args.settings:
        key, value = item.split("=", 1)
        if key not in types:
            parser.error(f"{key} is not a SyntheticConfig field")
        extra[key] = tuple(float(v) for v in value.split(",")) if "," in value else float(value)
    assets = resolve_flame_dir(None, cache_dir=os.environ.get("DECALITE_CACHE", Path.home() / ".cache/decalite"),
                               seed=0, embedded="ict")
    base = synthetic_config({}, images_per_identity=4, size=args.size, render_size=args.size, uv_size=64,
                            n_shape=args.n_shape, n_exp=44, n_tex=50, **extra)
    ensure_splits(args.root, base, args.train, args.val, identities_per_shard=50, assets_dir=assets)

if __name__ == "__main__":
    main()
