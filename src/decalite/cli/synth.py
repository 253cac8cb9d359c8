"""``decalite-synth output=DIR identities=N images_per_identity=K``: write synthetic shards with ground truth.

Uses decalite's generated head unless ``flame.dir`` points at a FLAME folder (which then needs an albedo
model). Rerunning into the same folder keeps the shards already written (resumable). Other keys: seed, size,
render_size, identities_per_shard, landmark_noise, the random ranges of ``conf/synth.yaml``, flame.*,
renderer.* (backend, uv_size) and paths.*.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from decalite.cli._hydra import CONF_DIR

log = logging.getLogger("decalite.synth")


def synthetic_config(cfg: DictConfig):
    """The :class:`~decalite.synth.SyntheticConfig` described by the Hydra config."""
    from decalite.synth import SyntheticConfig

    return SyntheticConfig(
        identities=int(cfg.identities),
        images_per_identity=int(cfg.images_per_identity),
        size=int(cfg.size),
        render_size=int(cfg.render_size),
        uv_size=int(cfg.renderer.uv_size),
        backend=str(cfg.renderer.backend),
        seed=int(cfg.seed),
        n_shape=int(cfg.flame.n_shape),
        n_exp=int(cfg.flame.n_exp),
        n_tex=int(cfg.flame.n_tex),
        shape_std=float(cfg.shape_std),
        exp_std=float(cfg.exp_std),
        tex_std=float(cfg.tex_std),
        yaw=float(cfg.yaw),
        pitch=float(cfg.pitch),
        roll=float(cfg.roll),
        jaw=(float(cfg.jaw[0]), float(cfg.jaw[1])),
        light_variation=float(cfg.light_variation),
        face_fraction=(float(cfg.face_fraction[0]), float(cfg.face_fraction[1])),
        max_shift=float(cfg.max_shift),
        background_noise=float(cfg.background_noise),
        landmark_noise=float(cfg.landmark_noise),
        detail_scale=float(cfg.detail_scale),
        device=str(cfg.device),
    )


def run(cfg: DictConfig) -> Path:
    """Write the dataset; returns the manifest's path."""
    from tqdm import tqdm

    from decalite.flame.default import resolve_flame_dir
    from decalite.synth import write_synthetic_dataset

    synth = synthetic_config(cfg)
    assets_dir = resolve_flame_dir(cfg.flame.dir, cache_dir=cfg.paths.cache_dir, seed=int(cfg.flame.seed))
    skipped = [0]

    def on_skip(n: int) -> None:
        skipped[0] += n

    start = time.perf_counter()
    with tqdm(total=synth.identities, unit="identity", desc="synth") as bar:
        manifest = write_synthetic_dataset(synth, cfg.output, identities_per_shard=int(cfg.identities_per_shard),
                                           assets_dir=assets_dir, progress=bar.update, on_skip=on_skip)
    elapsed = time.perf_counter() - start
    generated = synth.identities - skipped[0]
    images = generated * synth.images_per_identity
    log.info("%s: %d identities x %d images (%d kept from an earlier run); generated %d images in %.1f s "
             "(%.2f images/s at render %d / crop %d, setup included)", Path(cfg.output).resolve(), synth.identities,
             synth.images_per_identity, skipped[0], images, elapsed, images / max(elapsed, 1e-9), synth.render_size,
             synth.size)
    return manifest


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="synth")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
