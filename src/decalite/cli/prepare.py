"""``decalite-prepare input=ROOT output=DIR layout=vggface2|bupt|voxceleb2``: datasets -> identity shards.

Across a cluster: ``part=i parts=N`` prepares every N-th shard into ``DIR/parts/`` (a SLURM array task each, or
``decalite-prepare -m part=0,1,2,3 parts=4`` with a submitit launcher), then ``decalite-prepare merge=true
output=DIR`` gives the shards and manifest one run would.

Other keys (``conf/prepare.yaml``): landmarker (auto|fan|dlib), fan_detector, device, size, workers,
identities_per_shard, min_images, max_images_per_sample, every_n_frames, progress, mask.model /
mask.skin_classes / mask.input_size. See :mod:`decalite.data.prepare` for the layouts and resuming.

Exit status: 0 when every input was used, 1 when some inputs failed (the others are written; the failures are
listed in DIR/manifest.json and DIR/failures.jsonl), 2 for configuration errors (e.g. a missing input root).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import hydra
from omegaconf import DictConfig

from decalite.cli import schema
from decalite.cli._hydra import CONF_PATH
from decalite.config import PathsConfig
from decalite.data.prepare import ConfigError, PrepareConfig, merge_parts, prepare

log = logging.getLogger("decalite.prepare")


@dataclass(kw_only=True)
class PrepareToolConfig(PrepareConfig):
    """``decalite-prepare`` (``conf/prepare.yaml``): PrepareConfig's keys (``input`` optional here, so its absence
    is reported as a configuration error), the paths group, and ``merge`` (merge the parts of ``output``)."""

    input: str | None = None
    paths: PathsConfig
    merge: bool = False


schema.register({"prepare": PrepareToolConfig})


def prepare_config(dict_cfg: DictConfig) -> PrepareConfig:
    """The :class:`~decalite.data.prepare.PrepareConfig` the Hydra config describes (ConfigError when it does not
    fit the schema or lacks ``input``)."""
    try:
        cfg = schema.typed(dict_cfg, PrepareToolConfig)
    except schema.ConfigError as err:
        raise ConfigError(str(err)) from None
    if not cfg.input:
        raise ConfigError("input=ROOT is required (the dataset's root folder)")
    return schema.project(cfg, PrepareConfig)


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="prepare")
def main(cfg: DictConfig) -> None:
    try:
        summary = merge_parts(cfg.output) if cfg.merge else prepare(prepare_config(cfg))
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
