"""``decalite-reconstruct input=PATH output=DIR``: photos, folders, lists or videos to detailed heads.

Exit status: 0 when every input was reconstructed, 1 when some failed (the others are written and the
failures are listed in DIR/summary.json), 2 when nothing could run (e.g. the output folder is not writable).
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from decalite.cli._hydra import CONF_PATH
from decalite.cli.schema import inference_model, typed_or_exit
from decalite.cli.trained import adopt_or_exit
from decalite.config import ReconstructConfig

log = logging.getLogger("decalite.apps.reconstruct")


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="reconstruct")
def main(dict_cfg: DictConfig) -> None:
    from decalite.apps.reconstruct import landmarker_for, run
    from decalite.io.images import InputError

    adopt_or_exit(dict_cfg, dict_cfg.model.checkpoint, "reconstruct", log)  # a trained checkpoint's head and sizes
    cfg = typed_or_exit(dict_cfg, ReconstructConfig, log)
    deca, assets = inference_model(cfg)
    if not cfg.model.checkpoint:
        log.warning("No trained checkpoint (model.checkpoint=null): every face is fitted from the mean face "
                    "(%d steps)", cfg.fit_steps)
    try:
        summary = run(deca, assets, landmarker_for(cfg.landmarks), cfg)
    except InputError as err:
        log.error("%s", err)
        sys.exit(2)
    ok, failed = len(summary["reconstructed"]), len(summary["failures"])
    if cfg.track:
        log.info("Tracked one face through %d frames (%d detection(s)) into %s in %.1f s; landmark error "
                 "(inter-ocular) %s -> %s; jitter %.3f px per frame (%.3f before smoothing)", summary["frames"],
                 summary["detections"], summary["output"], summary["seconds"], summary["landmark_error_before"],
                 summary["landmark_error_after"], summary["jitter_px"], summary["jitter_px_fit"])
    else:
        log.info("Reconstructed %d face(s) into %s; %.3f s per face; landmark error (inter-ocular) %s -> %s",
                 ok, summary["output"], summary["seconds_per_face"] or 0.0, summary["landmark_error_before"],
                 summary["landmark_error_after"])
    if failed:
        log.warning("%d input(s) failed (details in %s/summary.json):", failed, summary["output"])
        for f in summary["failures"]:
            log.warning("  %s: %s", f["file"], f["reason"])
        sys.exit(1)


if __name__ == "__main__":
    main()
