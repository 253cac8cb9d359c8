"""``decalite-transfer source=IMAGE driver=IMAGE_OR_VIDEO output=DIR``: expression transfer."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from decalite.cli._hydra import CONF_PATH
from decalite.cli.schema import TransferConfig, inference_model, typed_or_exit
from decalite.cli.trained import adopt_or_exit

log = logging.getLogger("decalite.transfer")


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="transfer")
def main(dict_cfg: DictConfig) -> None:
    from decalite.apps.animate import render_frames, transfer_codes, write_animation
    from decalite.apps.reconstruct import codes_for_input, landmarker_for
    from decalite.io.codes import save_codes
    from decalite.io.images import InputError

    adopt_or_exit(dict_cfg, dict_cfg.model.checkpoint, "transfer", log)  # a trained checkpoint's head and sizes
    cfg = typed_or_exit(dict_cfg, TransferConfig, log)
    deca, assets = inference_model(cfg)
    landmarker = landmarker_for(cfg.landmarks)
    try:
        source, src_names, _ = codes_for_input(deca, landmarker, cfg.source, cfg)
        driver, drv_names, failures = codes_for_input(deca, landmarker, cfg.driver, cfg)
    except InputError as err:
        log.error("%s", err)
        sys.exit(2)
    codes = transfer_codes(source.map(lambda t: t[:1]), driver)
    trained = bool(cfg.model.checkpoint) and codes.detail is not None
    frames = render_frames(deca, codes, trained_detail=trained)
    out = Path(cfg.output)
    stem = out / f"{src_names[0]}_driven_by_{Path(cfg.driver).stem}"
    files = write_animation(frames, stem, fps=cfg.fps)
    save_codes(stem.with_name(stem.name + "_codes.npz"), codes)
    if cfg.save.gltf:  # the source's head driven by the driver's frames, as an animatable GLB's clip
        from decalite.apps.gltf import export_animation_glb

        files.append(export_animation_glb(stem.with_suffix(".glb"), deca, assets.uv, codes, cfg.fps, trained,
                                          assets.model.expression_names))
    log.info("Wrote %d frames to %s", len(frames), ", ".join(str(f) for f in files))
    for f in failures:
        log.warning("  skipped driver frame %s: %s", f["file"], f["reason"])
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
