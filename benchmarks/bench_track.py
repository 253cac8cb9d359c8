"""Video tracking (decalite-reconstruct track=true): jitter and tracking error against the truth, per-frame
reconstruction vs the tracked one (one identity over the clip) vs tracked and smoothed (one-euro).

Clips: the embedded ICT head rendered from known codes (:mod:`video_clips`): "still" (the same code every frame,
fresh pixel noise per frame) and "moving" (the head turns and nods, the jaw and an expression move). Two sets of
clips with different identities and noise: ``--set tuning`` (seeds 10, 11) chose the smoothing defaults
(``smooth_min_cutoff``, ``smooth_beta``; the grid is printed), ``--set report`` (seeds 1, 2, the default) only
reports them.

Metrics, in pixels of the 256 x 256 frames, over the 68 landmarks the reconstruction projects into each frame:
jitter = mean |p_t - p_(t-1)| (what a still head should have none of); motion error = mean
|(p_t - p_(t-1)) - (q_t - q_(t-1))| against the true landmarks q; landmark error = mean |p_t - q_t|.
Landmarks only (no photometric term) and no trained checkpoint: the fits start from the mean face.

Run: ``.venv/bin/python benchmarks/bench_track.py [--set report] [--frames 24] --out DIR``. Printed, not asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from video_clips import render_clip

from decalite.apps.fitting import DEFAULT_FIT_TERMS, FitConfig
from decalite.apps.reconstruct.faces import detect_faces
from decalite.apps.reconstruct.inference import infer
from decalite.apps.reconstruct.track import _photo_points, landmark_jitter, smooth_code, track_faces
from decalite.cli.schema import compose_typed
from decalite.config import FlameConfig, ModelConfig, PathsConfig, ReconstructConfig, RendererConfig
from decalite.data.detect import make_landmarker
from decalite.io.inputs import InputItem
from decalite.model.factory import build_deca

SEEDS = {"tuning": {"still": 10, "moving": 11}, "report": {"still": 1, "moving": 2}}
GRID = {"min_cutoff": (1.0, 2.0, 4.0, 8.0), "beta": (0.0, 2.0, 10.0)}


def metrics(points: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    dp, dq = np.diff(points, axis=0), np.diff(truth, axis=0)
    return {"jitter_px": landmark_jitter(points),
            "motion_error_px": float(np.linalg.norm(dp - dq, axis=-1).mean()),
            "landmark_error_px": float(np.linalg.norm(points - truth, axis=-1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=sorted(SEEDS), default="report")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--fit-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    deca, _ = build_deca(FlameConfig(dir=None), ModelConfig(backbone="resnet18"),
                         RendererConfig(image_size=224, uv_size=128, backend="torch"), PathsConfig())
    deca.eval()
    landmarker = make_landmarker("auto")
    defaults = compose_typed("reconstruct", ["input=unused"], ReconstructConfig)  # the shipped smoothing
    fit_cfg = FitConfig(steps=args.fit_steps, lr=0.01, terms={**DEFAULT_FIT_TERMS, "photometric": 0.0})
    report = {"set": args.set, "frames": args.frames, "fit_steps": args.fit_steps, "clips": {},
              "defaults": {"min_cutoff": defaults.smooth_min_cutoff, "beta": defaults.smooth_beta}}
    for motion, seed in SEEDS[args.set].items():
        clip = render_clip(motion, frames=args.frames, seed=seed)
        items = [InputItem(name=f"{motion}_f{t:03d}", path=Path(f"{motion}.mp4"), frame=t, array=frame)
                 for t, frame in enumerate(clip.frames)]
        start = time.perf_counter()
        per_frame = [detect_faces(item, item.array, landmarker, False, size=224)[0] for item in items]
        code, _, _ = infer(deca, per_frame, False, fit_cfg)  # each frame fitted alone
        rows = {"per_frame": metrics(_photo_points(deca, per_frame, code), clip.landmarks)}
        seconds_per_frame = time.perf_counter() - start
        start = time.perf_counter()
        track = track_faces(items, landmarker, 1.25, 224, clip.fps)
        tracked, _, _ = infer(deca, track.faces, False, fit_cfg, identity=True)
        rows["tracked"] = metrics(_photo_points(deca, track.faces, tracked), clip.landmarks)
        grid = {}
        for cutoff, beta in itertools.product(GRID["min_cutoff"], GRID["beta"]):
            smoothed = smooth_code(tracked, clip.fps, cutoff, beta)
            grid[f"{cutoff},{beta}"] = metrics(_photo_points(deca, track.faces, smoothed), clip.landmarks)
        smoothed = smooth_code(tracked, clip.fps, defaults.smooth_min_cutoff, defaults.smooth_beta)
        rows[f"tracked+smoothed ({defaults.smooth_min_cutoff:g}, {defaults.smooth_beta:g})"] = metrics(
            _photo_points(deca, track.faces, smoothed), clip.landmarks)
        report["clips"][motion] = {"seed": seed, "rows": rows, "grid": grid, "detections": len(track.detections),
                                   "seconds": {"per_frame": round(seconds_per_frame, 1),
                                               "tracked": round(time.perf_counter() - start, 1)}}
        print(f"\n{motion} clip (seed {seed}, {args.frames} frames, {len(track.detections)} detection(s))")
        print(f"{'':38s}{'jitter px':>12s}{'motion err px':>15s}{'landmark err px':>17s}")
        for name, row in rows.items():
            print(f"{name:38s}{row['jitter_px']:12.3f}{row['motion_error_px']:15.3f}{row['landmark_error_px']:17.3f}")
        if args.set == "tuning":
            for key, row in grid.items():
                print(f"  min_cutoff,beta={key:10s} jitter {row['jitter_px']:.3f} motion err {row['motion_error_px']:.3f} "
                      f"landmark err {row['landmark_error_px']:.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"track_{args.set}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
