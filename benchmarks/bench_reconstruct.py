"""Reconstruction latency per image on this machine: detection + crop, encoder (untrained weights: the same
compute as trained ones), fitting, decoding + rendering, for batch 1 and 16, with and without fitting.

Run: ``.venv/bin/python benchmarks/bench_reconstruct.py`` (or ``make bench``). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import skimage.data
import torch

from decalite.cli.schema import compose_typed
from decalite.config import ReconstructConfig
from decalite.data.detect import make_landmarker
from decalite.factory import build_deca
from decalite.fitting import FitConfig
from decalite.io.inputs import InputItem
from decalite.reconstruct import detect_faces, infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="deca", help="model config (deca = ResNet-50, small = ResNet-18)")
    parser.add_argument("--fit-steps", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cfg = compose_typed("reconstruct", ["input=x", f"model={args.model}", f"paths.cache_dir={cache}"],
                            ReconstructConfig)
        deca = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)[0].eval()
        landmarker = make_landmarker("dlib")
        photo = skimage.data.astronaut()
        start = time.perf_counter()
        face = detect_faces(InputItem("astronaut", "astronaut.png"), photo, landmarker, False,
                            size=deca.renderer.image_size)[0]
        detect_ms = (time.perf_counter() - start) * 1000
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model={args.model}")
        print(f"detection + landmarks + crop (dlib, 512x512 photo): {detect_ms:.0f} ms per image")
        for batch in (1, 16):
            faces = [face] * batch
            for trained, steps, label in ((True, 0, "encoder only"), (False, args.fit_steps, f"fit {args.fit_steps} steps"),
                                          (True, args.fit_steps, f"encoder + fit {args.fit_steps} steps")):
                fit_cfg = FitConfig(steps=steps)
                start = time.perf_counter()
                code, _, _ = infer(deca, faces, trained, fit_cfg)
                with torch.no_grad():
                    deca.decode(code, detail=trained)
                ms = (time.perf_counter() - start) * 1000 / batch
                print(f"batch {batch:>2}, {label:<28}: {ms:8.1f} ms per image (+ detection)")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
