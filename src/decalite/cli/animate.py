"""``decalite-animate input=IMAGE output=DIR`` (or ``codes=..._codes.npz``): expression, jaw and yaw sweeps."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from decalite.cli._hydra import CONF_PATH
from decalite.cli.schema import AnimateConfig, inference_model, typed_or_exit
from decalite.cli.trained import adopt_or_exit

log = logging.getLogger("decalite.apps.animate")


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="animate")
def main(dict_cfg: DictConfig) -> None:
    from decalite.apps.animate import render_frames, sweep_codes, write_animation
    from decalite.apps.reconstruct import codes_for_input, landmarker_for
    from decalite.io.codes import load_codes
    from decalite.io.images import InputError

    adopt_or_exit(dict_cfg, dict_cfg.model.checkpoint, "animate", log)  # a trained checkpoint's head and sizes
    cfg = typed_or_exit(dict_cfg, AnimateConfig, log)
    deca, assets = inference_model(cfg)
    device = next(deca.parameters()).device
    try:
        if cfg.codes:
            code, name = load_codes(cfg.codes), Path(cfg.codes).stem.removesuffix("_codes")
        elif cfg.input:
            code, names, _ = codes_for_input(deca, landmarker_for(cfg.landmarks), cfg.input, cfg)
            code, name = code.map(lambda t: t[:1]), names[0]
        else:
            raise InputError("input", "give input=IMAGE or codes=PATH_codes.npz")
    except (InputError, OSError, KeyError) as err:
        log.error("%s", err)
        sys.exit(2)
    code = code.map(lambda t: t.to(device))
    codes = sweep_codes(code, cfg.frames, cfg.n_components, cfg.exp_amplitude, cfg.jaw_max, cfg.yaw_max)
    trained = bool(cfg.model.checkpoint) and code.detail is not None
    frames = render_frames(deca, codes, trained_detail=trained)
    files = write_animation(frames, Path(cfg.output) / f"{name}_animation", fps=cfg.fps)
    if cfg.save.gltf:  # the sweep as the clip of an animatable GLB
        from decalite.apps.gltf import export_animation_glb

        files.append(export_animation_glb(Path(cfg.output) / f"{name}_animation.glb", deca, assets.uv, codes, cfg.fps,
                                          trained, assets.model.expression_names))
    log.info("Wrote %d frames to %s", len(frames), ", ".join(str(f) for f in files))


if __name__ == "__main__":
    main()
