"""``decalite-synth output=DIR identities=N images_per_identity=K``: write synthetic shards with ground truth.

Uses decalite's generated head unless ``flame.dir`` points at a FLAME folder (which then needs an albedo
model). Rerunning into the same folder keeps the shards already written (resumable). Other keys: seed, size,
render_size, identities_per_shard, landmark_noise, the random ranges of ``conf/synth.yaml``, flame.*,
renderer.* (backend, uv_size) and paths.*.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig

from decalite.cli import schema
from decalite.cli._hydra import CONF_PATH
from decalite.config import FlameConfig, PathsConfig, RendererConfig
from decalite.synth import SyntheticConfig, write_synthetic_dataset

log = logging.getLogger("decalite.synth")


@dataclass(kw_only=True)
class SynthConfig(SyntheticConfig):
    """``decalite-synth`` (``conf/synth.yaml``): what to generate (SyntheticConfig's keys, at the top level, with
    ``uv_size``, ``backend`` and ``n_*`` taken from the renderer and flame groups), where, and which head.

    Attributes:
        output: the dataset folder. identities_per_shard: identities per tar.
        flame, renderer, paths: the config groups (``flame.dir`` unset: the generated head).
    """

    output: str
    identities_per_shard: int
    flame: FlameConfig
    renderer: RendererConfig
    paths: PathsConfig


schema.register({"synth": SynthConfig})


def run(cfg: SynthConfig) -> Path:
    """Write the dataset; returns the manifest's path."""
    from tqdm import tqdm

    from decalite.flame.default import resolve_flame_dir

    synth = schema.project(cfg, SyntheticConfig)  # the generator's part (it is stored in the manifest)
    assets_dir = resolve_flame_dir(cfg.flame.dir, cache_dir=cfg.paths.cache_dir, seed=cfg.flame.seed,
                                  embedded=cfg.flame.embedded)
    skipped = [0]

    def on_skip(n: int) -> None:
        skipped[0] += n

    start = time.perf_counter()
    with tqdm(total=synth.identities, unit="identity", desc="synth") as bar:
        manifest = write_synthetic_dataset(synth, cfg.output, identities_per_shard=cfg.identities_per_shard,
                                           assets_dir=assets_dir, progress=bar.update, on_skip=on_skip)
    elapsed = time.perf_counter() - start
    generated = synth.identities - skipped[0]
    images = generated * synth.images_per_identity
    log.info("%s: %d identities x %d images (%d kept from an earlier run); generated %d images in %.1f s "
             "(%.2f images/s at render %d / crop %d, setup included)", Path(cfg.output).resolve(), synth.identities,
             synth.images_per_identity, skipped[0], images, elapsed, images / max(elapsed, 1e-9), synth.render_size,
             synth.size)
    return manifest


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="synth")
def main(dict_cfg: DictConfig) -> None:
    run(schema.typed_or_exit(dict_cfg, SynthConfig, log))


if __name__ == "__main__":
    main()
