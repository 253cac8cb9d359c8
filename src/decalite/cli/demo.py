"""``make demo`` / ``decalite-demo output=DIR``: the showcase part of the main job on the embedded default (``make
demo`` trains and scores first): the configured head's showcase (:mod:`decalite.apps.showcase`; the ICT head unless
``flame.dir`` is set) into ``DIR/head``, then the astronaut photo reconstructed (with ``model.checkpoint=`` when given)
and animated.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from decalite.cli._hydra import CONF_PATH
from decalite.cli.trained import adopt_or_exit

log = logging.getLogger("decalite.demo")


def run(cfg: DictConfig) -> dict:
    """The head's showcase into ``<output>/head`` (:func:`decalite.apps.showcase.head_showcase`)."""
    from decalite.apps.showcase import head_showcase
    from decalite.model.factory import resolve_device

    cfg.device = str(resolve_device(cfg.device))
    return head_showcase(cfg.flame, cfg.renderer, cfg.paths.cache_dir, Path(cfg.output) / "head", cfg.device)


def reconstruct_and_animate(cfg: DictConfig) -> dict:
    """Reconstruct the astronaut photo (offline landmarks; the checkpoint's encoder when ``model.checkpoint`` is set,
    else the mean face; then the fit) into ``<output>/reconstruct`` (``reconstruct_trained``) and animate it into
    ``<output>/animate``. ``cfg`` is not changed."""
    import skimage.data
    from PIL import Image

    from decalite.apps.animate import render_frames, sweep_codes, write_animation
    from decalite.apps.reconstruct import landmarker_for
    from decalite.apps.reconstruct import run as reconstruct
    from decalite.cli.schema import inference_model
    from decalite.io.codes import load_codes

    root = Path(cfg.output)
    cfg = copy.deepcopy(cfg)  # the reconstruction's input, output and adopted settings stay in this copy
    inputs = root / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    photo = inputs / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photo)  # public domain (NASA), shipped with scikit-image
    cfg.input = str(photo)
    trained = bool(cfg.model.checkpoint)
    cfg.output = str(root / ("reconstruct_trained" if trained else "reconstruct"))
    if trained:  # the networks of `make train`, with the head and sizes the checkpoint records
        from decalite.cli.trained import use_checkpoint_settings

        use_checkpoint_settings(cfg, cfg.model.checkpoint, "demo")
    deca, assets = inference_model(cfg)
    landmarker = landmarker_for(cfg.landmarks)
    summary = reconstruct(deca, assets, landmarker, cfg)
    if not summary["reconstructed"]:
        raise RuntimeError(f"the demo could not reconstruct {photo}: {summary['failures']}")
    face = summary["reconstructed"][0]
    codes = next(f for f in face["files"] if f.endswith("_codes.npz"))
    code = load_codes(codes).map(lambda t: t.to(next(deca.parameters()).device))
    sweep = sweep_codes(code, int(cfg.frames))
    frames = render_frames(deca, sweep, trained_detail=trained)
    files = write_animation(frames, root / "animate" / f"{face['name']}_animation", fps=int(cfg.fps))
    if cfg.save.gltf:  # the sweep as an animatable GLB (Blender, engines, decalite-view)
        from decalite.apps.gltf import export_animation_glb

        files.append(export_animation_glb(root / "animate" / f"{face['name']}_animation.glb", deca, assets.uv, sweep,
                                          int(cfg.fps), trained, assets.model.expression_names))
    summary["animation"] = [str(f) for f in files]
    return summary


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="demo")
def main(cfg: DictConfig) -> None:
    from decalite.threads import apply_thread_policy

    apply_thread_policy(cfg.get("threads"))
    if cfg.model.checkpoint:  # before any work: the checkpoint is readable and agrees with the command line
        adopt_or_exit(copy.deepcopy(cfg), cfg.model.checkpoint, "demo", log)
    summary = run(cfg)
    log.info(
        "%s head: %d vertices, %d faces, extent %s m; FLAME forward %s ms (CPU)",
        summary["head"], summary["vertices"], summary["faces"], summary["extent_m"], summary["forward_ms"],
    )
    size = cfg.renderer.image_size
    log.info("Rendered with the %s rasterizer: %s ms per image (%d x %d, batch 1)",
             summary["render"]["backend"], summary["render"]["render_ms_batch_1"], size, size)
    log.info("Wrote %d meshes (OBJ with UVs), their 2D/3D landmarks, renders (overview.png, details.png) and "
             "summary.json to %s", len(summary["meshes"]), (Path(cfg.output) / "head").resolve())
    rec = reconstruct_and_animate(cfg)
    for face in rec["reconstructed"]:
        log.info("Reconstructed %s: landmark error (inter-ocular) %.4f -> %.4f; outputs in %s", face["source"],
                 face["landmark_error_before"], face["landmark_error_after"], Path(face["files"][0]).parent.resolve())
    log.info("Animation: %s", ", ".join(str(Path(f).resolve()) for f in rec["animation"]))
    for failure in rec["failures"]:
        log.warning("failed: %s: %s", failure["file"], failure["reason"])


if __name__ == "__main__":
    main()
