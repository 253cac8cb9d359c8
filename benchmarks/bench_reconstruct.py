"""Reconstruction latency per image on this machine: detection + crop, encoder (untrained weights: the same
compute as trained ones), fitting, decoding + rendering, for batch 1 and 16 (``--batches``), with and without
fitting: ms per image and images/s, with peak memory (CUDA ``max_memory_allocated``, CPU ``ru_maxrss``).

On CUDA (``--device cuda``, the default when available) the encoders run channels_last under bf16 autocast
(geometry and shading stay fp32, see decalite.precision; ``--no-amp`` turns both off), the renderer picks
nvdiffrast when importable (``renderer.backend=auto``), and ``--compile`` wraps the encoders in torch.compile.
Writes ``reconstruct.json`` + ``reconstruct.md`` into ``--out`` (see report.py).

Run: ``.venv/bin/python benchmarks/bench_reconstruct.py`` (or ``make bench``). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext

import numpy as np
import skimage.data
import torch
from report import DEFAULT_OUT, Report, peak_memory_mb

from decalite.apps.fitting import FitConfig
from decalite.apps.reconstruct import Face, detect_faces, infer
from decalite.cli.schema import compose_typed
from decalite.config import ReconstructConfig
from decalite.data.detect import make_landmarker
from decalite.io.inputs import InputItem
from decalite.model.factory import build_deca
from decalite.synth.config import SyntheticConfig
from decalite.synth.generator import generate_identity


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _face(size: int) -> tuple[Face, float | None]:
    """The astronaut photo's face through dlib, with the detection time in ms; where dlib is not installed (e.g. on
    a GPU machine) a synthetic face crop with its true landmarks, and None: the same encoder and fitting work."""
    try:
        landmarker = make_landmarker("dlib")
    except ImportError:
        sample = generate_identity(SyntheticConfig(identities=1, images_per_identity=1, size=size, uv_size=64,
                                                   backend="torch", device="cpu"), 0)
        return Face("synthetic", "synthetic", sample.images[0], sample.landmarks[0]), None
    start = time.perf_counter()
    face = detect_faces(InputItem("astronaut", "astronaut.png"), skimage.data.astronaut(), landmarker, False,
                        size=size)[0]
    return face, (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deca", help="model config (deca = ResNet-50, small = ResNet-18)")
    parser.add_argument("--fit-steps", type=int, default=100)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast + channels_last encoders (default: on CUDA only)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoders")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for reconstruct.json / .md ('': none)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = device.type == "cuda" if args.amp is None else args.amp
    backend = "auto" if device.type == "cuda" else "torch"
    report = Report("reconstruct")
    with tempfile.TemporaryDirectory() as cache:
        cfg = compose_typed("reconstruct", ["input=x", f"model={args.model}", f"paths.cache_dir={cache}",
                                            f"renderer.backend={backend}"], ReconstructConfig)
        deca = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)[0].eval().to(device)
        if amp:
            for encoder in (deca.coarse_encoder, deca.detail_encoder):
                encoder.to(memory_format=torch.channels_last)
        if args.compile:
            deca.coarse_encoder = torch.compile(deca.coarse_encoder)
            deca.detail_encoder = torch.compile(deca.detail_encoder)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()
        face, detect_ms = _face(deca.renderer.image_size)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model={args.model}, device {device}"
              + (", bf16 autocast + channels_last" if amp else "") + (", torch.compile" if args.compile else ""))
        common = {"model": args.model, "device": device.type, "amp": amp, "compile": args.compile}
        if detect_ms is None:
            print("dlib is not installed: a synthetic face with its true landmarks instead of the astronaut photo "
                  "(no detection timing)")
            report.note("no dlib on this machine: the face is a synthetic crop with its true landmarks")
        else:
            print(f"detection + landmarks + crop (dlib, 512x512 photo): {detect_ms:.0f} ms per image")
            report.add(step="detection + landmarks + crop (dlib, 512x512, CPU)", batch=1, ms_per_image=detect_ms,
                       images_per_s=1000 / detect_ms, **common)
        with autocast, torch.no_grad():  # warm-up: first-call allocations, cuDNN and compile set-up
            deca.decode(infer(deca, [face], True, FitConfig(steps=0))[0], detail=True)
        for batch in args.batches:
            faces = [face] * batch
            for trained, steps, label in ((True, 0, "encoder only"), (False, args.fit_steps, f"fit {args.fit_steps} steps"),
                                          (True, args.fit_steps, f"encoder + fit {args.fit_steps} steps")):
                fit_cfg = FitConfig(steps=steps)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                _sync(device)
                start = time.perf_counter()
                with autocast:
                    code, _, _ = infer(deca, faces, trained, fit_cfg)
                    with torch.no_grad():
                        deca.decode(code, detail=trained)
                _sync(device)
                ms = (time.perf_counter() - start) * 1000 / batch
                print(f"batch {batch:>2}, {label:<28}: {ms:8.1f} ms per image (+ detection)")
                report.add(step=f"{label} + decode + render", batch=batch, ms_per_image=ms, images_per_s=1000 / ms,
                           encoder=trained, fit_steps=steps, peak_mb=peak_memory_mb(device), **common)
    report.note("ms per image of one timed run (after one batch-1 warm-up) of encoder (untrained weights) and/or "
                "fitting, then decoding + rendering; detection is separate (CPU, dlib)")
    if args.out:
        print("wrote", *report.write(args.out))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
