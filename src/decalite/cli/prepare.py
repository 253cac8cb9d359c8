"""``decalite-prepare input=ROOT output=DIR layout=vggface2|bupt|voxceleb2``: datasets -> identity shards.

Other keys (``conf/prepare.yaml``): landmarker (auto|fan|dlib), fan_detector, device, size, workers,
identities_per_shard, min_images, max_images_per_sample, every_n_frames, progress, mask.model /
mask.skin_classes / mask.input_size. See :mod:`decalite.data.prepare` for the layouts and resuming.

Exit status: 0 when every input was used, 1 when some inputs failed (the others are written; the failures are
listed in DIR/manifest.json and DIR/failures.jsonl), 2 for configuration errors (e.g. a missing input root).
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from decalite.cli._hydra import CONF_DIR

log = logging.getLogger("decalite.prepare")


def prepare_config(cfg: DictConfig):
    """The :class:`~decalite.data.prepare.PrepareConfig` described by the Hydra config."""
    from decalite.data.prepare import ConfigError, PrepareConfig

    if not cfg.get("input"):
        raise ConfigError("input=ROOT is required (the dataset's root folder)")
    mask = cfg.get("mask") or {}
    return PrepareConfig(
        input=str(cfg.input),
        output=str(cfg.output),
        layout=str(cfg.layout),
        landmarker=str(cfg.landmarker),
        fan_detector=str(cfg.fan_detector),
        device=str(cfg.device),
        size=int(cfg.size),
        workers=int(cfg.workers),
        identities_per_shard=int(cfg.identities_per_shard),
        min_images=int(cfg.min_images),
        max_images_per_sample=int(cfg.max_images_per_sample),
        every_n_frames=int(cfg.every_n_frames),
        mask_model=str(mask["model"]) if mask.get("model") else None,
        mask_classes=tuple(int(c) for c in mask.get("skin_classes", (1, 10))),
        mask_input_size=int(mask.get("input_size", 512)),
        progress=bool(cfg.progress),
    )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
def main(cfg: DictConfig) -> None:
    from decalite.data.prepare import ConfigError, prepare

    try:
        summary = prepare(prepare_config(cfg))
    except ConfigError as err:
        log.error("%s", err)
        sys.exit(2)
    log.info("%d shard(s) written, %d kept; %.1f s for %d image(s)", len(summary.written), len(summary.skipped),
             summary.seconds, summary.processed_images)
    if summary.flagged:
        log.warning("%d identit(y/ies) with fewer than min_images usable images (flagged in the manifest)",
                    len(summary.flagged))
    if summary.failures:
        log.warning("%d input(s) failed:", len(summary.failures))
        for f in summary.failures[:20]:
            log.warning("  %s%s: %s", f["file"], f"@{f['frame']}" if "frame" in f else "", f["reason"])
        if len(summary.failures) > 20:
            log.warning("  ... (all listed in %s)", summary.manifest)
        sys.exit(1)


if __name__ == "__main__":
    main()
