"""Thread collapse on a shared CPU: wall seconds of one fixed fit (one synthetic face, fit from the mean face, the
reconstruction's default loss terms) with torch's default threads, decalite's policy (``threads=0``,
:mod:`decalite.threads`) and one thread, while 0, 1 and 2 other processes spin on the CPU.

Each fit runs in a fresh subprocess (torch's thread pools are per process); the busy processes are plain Python
loops started a second before it. Run: ``.venv/bin/python benchmarks/bench_threads.py [--steps 50]``.
Figures are printed, never asserted; a fit that exceeds ``--timeout`` is shown as ``>T``. Writes ``threads.json``
+ ``threads.md`` into ``--out`` (see report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from report import DEFAULT_OUT, Report

MODES = ("default", "policy", "1")


def child(mode: str, steps: int, cache: str) -> None:
    """Build the small DECA, render a face from a known code and time ``steps`` fit steps; print JSON."""
    import numpy as np
    import torch

    from decalite.threads import apply_thread_policy

    if mode == "policy":
        apply_thread_policy(0)
    elif mode != "default":
        torch.set_num_threads(int(mode))
    from decalite.apps.fitting import FitConfig, mean_face_code
    from decalite.apps.reconstruct import Face, infer
    from decalite.cli.schema import compose_typed
    from decalite.config import ReconstructConfig
    from decalite.model.factory import build_deca

    cfg = compose_typed("reconstruct", ["input=x", "model=small", f"paths.cache_dir={cache}", "renderer.backend=torch"],
                        ReconstructConfig)
    deca = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)[0].eval()
    code = mean_face_code(deca, torch.zeros(1, 68, 2))
    g = torch.Generator().manual_seed(3)
    code.shape = torch.randn(1, deca.sizes.n_shape, generator=g) * 0.8
    code.exp = torch.randn(1, deca.sizes.n_exp, generator=g) * 0.5
    code.pose = torch.tensor([[0.0, 0.2, 0.0, 0.1, 0.0, 0.0]])
    code.cam = torch.tensor([[8.0, 0.0, 0.02]])
    with torch.no_grad():
        out = deca.decode(code, detail=False, background=0.5)
    size = deca.renderer.image_size
    crop = (out.render.image[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    face = Face("synthetic", "synthetic", crop, ((out.landmarks2d[0] + 1) * 0.5 * size - 0.5).numpy())
    start = time.perf_counter()
    infer(deca, [face], False, FitConfig(steps=steps, lr=cfg.fit_lr, terms=dict(cfg.fit_loss.terms)))
    print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))


def measure(mode: str, busy: int, steps: int, cache: str, timeout: float) -> tuple[str, int | None, float]:
    """(wall seconds or '>T', threads used, 1-minute load when it started) of one fit with ``busy`` spinners."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(1.0 if busy else 0.0)
        load = os.getloadavg()[0]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OMP_NUM_THREADS", None)  # torch's default must be its own
        try:
            proc = subprocess.run([sys.executable, __file__, "--child", mode, "--steps", str(steps), "--cache", cache],
                                  capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return f">{timeout:.0f}", None, load
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        return f"{result['seconds']:.1f}", result["threads"], load
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=45.0, help="seconds before a fit is given up")
    parser.add_argument("--busy", default="0,1,2", help="numbers of competing busy processes")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for threads.json / threads.md ('': none)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.cache)
        return
    report = Report("threads")
    report.note(f"wall seconds of one {args.steps}-step fit (small DECA, generated head) per thread mode, with "
                "busy competing processes; threads used; 1-minute load when the fit started; None: over --timeout")
    busy_counts = [int(b) for b in args.busy.split(",")]
    with tempfile.TemporaryDirectory() as cache:
        measure("1", 0, 1, cache, 600.0)  # generate the head once, untimed
        print(f"{len(os.sched_getaffinity(0))} CPUs; {args.steps}-step fit, one face (small DECA, generated head); "
              "wall seconds (threads used) [1-min load at start]")
        print(f"| busy processes | {' | '.join(MODES)} |")
        print("|---|" + "---|" * len(MODES))
        for busy in busy_counts:
            cells = []
            for mode in MODES:
                seconds, threads, load = measure(mode, busy, args.steps, cache, args.timeout)
                cells.append(f"{seconds} ({threads if threads is not None else '?'}) [{load:.1f}]")
                report.add(busy=busy, mode=mode, seconds=None if seconds.startswith(">") else float(seconds),
                           threads=threads, load_at_start=load, steps=args.steps)
            print(f"| {busy} | {' | '.join(cells)} |", flush=True)
    if args.out:
        print("wrote", *report.write(args.out))


if __name__ == "__main__":
    main()
