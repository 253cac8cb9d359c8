"""The reconstruction of an input (photo, folder, list or video) batch by batch, failures recorded per input."""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from decalite.apps.export import write_mesh
from decalite.apps.fitting import FitConfig
from decalite.apps.reconstruct.faces import Face, Outcome, detect_faces
from decalite.apps.reconstruct.inference import infer
from decalite.apps.reconstruct.writers import check_output_dir, write_face
from decalite.config import ReconstructConfig
from decalite.flame.assets import FlameAssets
from decalite.io.images import InputError
from decalite.io.inputs import expand_inputs
from decalite.model.deca import DECA
from decalite.types import FaceCode

log = logging.getLogger(__name__)


def run(deca: DECA, assets: FlameAssets, landmarker, cfg: ReconstructConfig) -> dict[str, Any]:
    """Reconstruct every input of ``cfg.input`` into ``cfg.output``; returns (and writes) the summary."""
    from tqdm import tqdm

    if cfg.track:  # one person through a video's frames
        from decalite.apps.reconstruct.track import run_tracked

        return run_tracked(deca, assets, landmarker, cfg)
    out_dir = Path(cfg.output)
    check_output_dir(out_dir)
    trained = bool(cfg.model.checkpoint)
    fit_cfg = FitConfig(steps=cfg.fit_steps, lr=cfg.fit_lr, lr_end=cfg.fit_lr_end, fit_detail=cfg.fit_detail,
                        terms=dict(cfg.fit_loss.terms))
    items, failures = expand_inputs(cfg.input, every_n_frames=cfg.every_n_frames)
    outcomes: list[Outcome] = []
    timings: list[float] = []
    pending: list[Face] = []
    identity_files: list[str] = []  # identity=true: the shared neutral shape

    def flush() -> None:
        if not pending:
            return
        start = time.perf_counter()
        try:
            code, before, after = infer(deca, pending, trained, fit_cfg, identity=cfg.identity)
            if cfg.identity:
                with torch.no_grad():
                    neutral = deca.flame(shape=code.shape[:1])
                identity_files.append(str(out_dir / f"{Path(str(cfg.input)).stem or 'identity'}_neutral.obj"))
                write_mesh(identity_files[-1], neutral.vertices[0].cpu().numpy(), deca.renderer.faces.cpu().numpy())
            with torch.no_grad():
                out = deca.decode(code, detail=trained and code.detail is not None)
        except Exception as exc:  # noqa: BLE001 - one failing batch must not stop the run
            log.debug(traceback.format_exc())
            failures.extend({"file": f.source, "reason": f"reconstruction failed: {exc}"} for f in pending)
            pending.clear()
            return
        timings.append((time.perf_counter() - start) / len(pending))
        for b, face in enumerate(pending):
            try:
                files = write_face(out_dir, face, deca, assets, code, out, b, cfg.save, cfg.now)
            except Exception as exc:  # noqa: BLE001
                log.debug(traceback.format_exc())
                failures.append({"file": face.source, "reason": f"writing outputs failed: {exc}"})
                continue
            outcomes.append(Outcome(face.name, face.source, files,
                                    None if before is None else float(before[b]), None if after is None else float(after[b])))
        pending.clear()

    for item in tqdm(items, desc="reconstruct", unit="image", disable=not cfg.progress):
        try:
            image = item.load()
            pending.extend(detect_faces(item, image, landmarker, cfg.all_faces, cfg.crop_scale,
                                        size=deca.renderer.image_size))
        except InputError as err:
            failures.append({"file": err.path if item.frame is None else f"{err.path}#frame{item.frame}",
                             "reason": err.reason})
            continue
        except Exception as exc:  # noqa: BLE001
            failures.append({"file": str(item.path), "reason": f"{type(exc).__name__}: {exc}"})
            continue
        if len(pending) >= cfg.batch_size and not cfg.identity:  # identity=true: all faces in one fit
            flush()
    flush()
    summary = {
        "output": str(out_dir),
        "reconstructed": [o.__dict__ for o in outcomes],
        "failures": failures,
        **({"identity": identity_files} if cfg.identity else {}),
        "seconds_per_face": round(float(np.mean(timings)), 4) if timings else None,
        "landmark_error_before": _mean([o.landmark_error_before for o in outcomes]),
        "landmark_error_after": _mean([o.landmark_error_after for o in outcomes]),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(float(np.mean(vals)), 5) if vals else None


def codes_for_input(deca: DECA, landmarker, spec: str | Path,
                    cfg: ReconstructConfig) -> tuple[FaceCode, list[str], list[dict[str, str]]]:
    """Codes of the largest face of every image / video frame of ``spec`` (in order), their names and the
    failures. Used by animation and expression transfer."""
    trained = bool(cfg.model.checkpoint)
    fit_cfg = FitConfig(steps=cfg.fit_steps, lr=cfg.fit_lr, lr_end=cfg.fit_lr_end,
                        terms={**cfg.fit_loss.terms, "photometric": 0.0})
    items, failures = expand_inputs(spec, every_n_frames=cfg.every_n_frames)
    codes, names = [], []
    for item in items:
        try:
            face = detect_faces(item, item.load(), landmarker, False, cfg.crop_scale,
                                size=deca.renderer.image_size)[0]
            code, _, _ = infer(deca, [face], trained, fit_cfg)
        except InputError as err:
            failures.append({"file": err.path, "reason": err.reason})
            continue
        codes.append(code)
        names.append(face.name)
    if not codes:
        raise InputError(spec, "no usable face in the input" + (f" ({failures[0]['reason']})" if failures else ""))
    fields = {k: torch.cat([getattr(c, k) for c in codes]) for k in ("shape", "tex", "exp", "pose", "cam", "light")}
    detail = torch.cat([c.detail for c in codes]) if all(c.detail is not None for c in codes) else None
    return FaceCode(**fields, detail=detail), names, failures
