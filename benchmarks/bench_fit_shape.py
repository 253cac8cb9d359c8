"""Does fitting recover the person's shape? NoW-style neutral-shape error (median scan-to-mesh, mm) on held-out
synthetic identities, for the mean face, a single-image fit (each image alone) and a multi-image identity fit
(the images of one person share one shape code): :func:`decalite.apps.fitting.fit_identity`.

Identities are drawn as the synthetic data draws them (:mod:`decalite.synth.sampling`: shape ~ N(0, 1) per
component, expression ~ N(0, 0.6), yaw +-40, pitch +-20, roll, jaw 0-0.4 rad, face framing); the targets are their
68 projected landmarks plus gaussian noise (``--noise``, image-normalised units, 0.01 ~ 1 px at 224 px). The fits
use landmarks only (no photometric term). Two sets with different seeds: ``--set tuning`` (seed 100) was used to
choose the fit's settings, ``--set report`` (seed 200, the default) only to report them.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit_shape.py [--set report] [--identities 8]``.
Figures are printed, never asserted. Writes ``fit_shape.json`` + ``fit_shape.md`` into ``--out`` (see report.py).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
from report import DEFAULT_OUT, Report, peak_memory_mb

from decalite.apps.export import NOW_LANDMARKS
from decalite.apps.fitting import FitConfig, IdentityFitConfig, fit, fit_identity, mean_face_code
from decalite.cli.schema import compose_typed
from decalite.config import ReconstructConfig
from decalite.evaluation.now import now_distances
from decalite.evaluation.scores import _scan
from decalite.model.deca import DECA
from decalite.model.factory import build_deca
from decalite.synth.cameras import face_camera
from decalite.synth.config import SyntheticConfig
from decalite.synth.sampling import draw_identity, draw_images, identity_seed

SEEDS = {"tuning": 100, "report": 200}


def synthetic_identity(deca: DECA, index: int, seed: int, images: int = 4, noise: float = 0.01,
                       outliers: float = 0.0) -> dict:
    """One person: true shape (1, n_shape) and the (K, 68, 2) image-normalised landmarks of K posed images."""
    s = deca.sizes
    cfg = SyntheticConfig(n_shape=s.n_shape, n_exp=s.n_exp, seed=seed, images_per_identity=images)
    g = torch.Generator().manual_seed(identity_seed(seed, index))
    ident = draw_identity(cfg, s.n_tex, g)
    d = draw_images(cfg, images, g)
    pose = torch.zeros(images, 6)
    pose[:, :3], pose[:, 3] = d.global_pose, d.jaw
    code = mean_face_code(deca, torch.zeros(images, 68, 2))
    code.shape, code.exp, code.pose = ident["shape"].expand(images, -1), d.expression, pose
    with torch.no_grad():
        lmk3d = deca.flame(shape=code.shape, expression=code.exp, global_pose=pose[:, :3],
                           jaw_pose=pose[:, 3:]).landmarks2d
        code.cam = face_camera(lmk3d, d.fraction, d.shift)
        landmarks = deca.geometry(code)[1]
    landmarks = landmarks + noise * torch.randn(landmarks.shape, generator=g)
    if outliers:  # a detector's gross errors: these points land 0.1-0.3 (10-30 px at 224) off, any direction
        wrong = torch.rand(landmarks.shape[:2], generator=g) < outliers  # (N, 68)
        angle = 2 * np.pi * torch.rand(landmarks.shape[:2], generator=g)
        size = 0.1 + 0.2 * torch.rand(landmarks.shape[:2], generator=g)
        offset = torch.stack([angle.cos(), angle.sin()], -1) * size[..., None]
        landmarks = landmarks + offset * wrong[..., None]
    return {"shape": ident["shape"], "landmarks": landmarks}


class ShapeError:
    """NoW-style error of predicted neutral shapes against one true neutral head (sampled as a scan)."""

    def __init__(self, deca: DECA, true_shape: torch.Tensor, seed: int) -> None:
        self.flame, self.faces = deca.flame, deca.flame.faces.cpu().numpy()
        with torch.no_grad():
            true = self.flame(shape=true_shape)
        self.scan = _scan(true.vertices[0].numpy(), self.faces, seed)
        self.scan_lmk = true.landmarks3d[0, list(NOW_LANDMARKS)].numpy()

    @torch.no_grad()
    def __call__(self, shape: torch.Tensor) -> float:
        """Median distance (mm) for a (1, n_shape) shape code."""
        pred = self.flame(shape=shape)
        lmk = pred.landmarks3d[0, list(NOW_LANDMARKS)].numpy()
        return 1000.0 * float(np.median(now_distances(pred.vertices[0].numpy(), self.faces, lmk, self.scan,
                                                      self.scan_lmk)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", choices=sorted(SEEDS), default="report")
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=IdentityFitConfig.steps)
    parser.add_argument("--reg", type=float, default=None, help="reg_shape = reg_exp weight (default: the fit's)")
    parser.add_argument("--reg-exp", type=float, default=None, help="reg_exp weight (default: --reg or the fit's)")
    parser.add_argument("--lr", type=float, default=IdentityFitConfig.lr)
    parser.add_argument("--single-default", action="store_true", help="also the library's default fit()")
    parser.add_argument("--outliers", type=float, default=0.0, help="fraction of landmarks moved 0.1-0.3 off")
    parser.add_argument("--robust", action="store_true", help="fit with landmark_robust instead of DECA's L1")
    parser.add_argument("--fit-lr", type=float, default=FitConfig.lr, help="--single-default: fit()'s lr")
    parser.add_argument("--fit-lr-end", type=float, default=FitConfig.lr_end, help="--single-default: fit()'s lr_end")
    parser.add_argument("--no-identity-fits", action="store_true", help="only the mean face and fit() rows")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for fit_shape.json / fit_shape.md ('': none)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with tempfile.TemporaryDirectory() as cache:
        cfg = compose_typed("reconstruct", ["input=x", "model=small", f"paths.cache_dir={cache}",
                                            "renderer.backend=torch"], ReconstructConfig)
        deca = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)[0].eval()
    fit_cfg = IdentityFitConfig(steps=args.steps, lr=args.lr)
    if args.reg is not None:
        fit_cfg = replace(fit_cfg, terms={**fit_cfg.terms, "reg_shape": args.reg, "reg_exp": args.reg})
    if args.reg_exp is not None:
        fit_cfg.terms["reg_exp"] = args.reg_exp
    fit_cfg.terms["photometric"] = 0.0
    if args.robust:
        fit_cfg.terms.update(landmark=0.0, landmark_robust=1.0)
    rows: dict[str, list[float]] = {"mean face": []}
    if not args.no_identity_fits:
        rows.update({"single-image fit (fit_identity, N=1)": [], f"multi-image fit (fit_identity, N={args.images})": []})
    if args.single_default:
        rows[f"single-image fit (fit(), lr {args.fit_lr}, lr_end {args.fit_lr_end})"] = []
    seed = SEEDS[args.set]
    start = time.perf_counter()
    for i in range(args.identities):
        person = synthetic_identity(deca, i, seed, args.images, args.noise, args.outliers)
        error = ShapeError(deca, person["shape"], seed + i)
        lmk = person["landmarks"]
        rows["mean face"].append(error(torch.zeros_like(person["shape"])))
        if not args.no_identity_fits:
            singles = [error(fit_identity(deca, None, lmk[j:j + 1], cfg=fit_cfg).code.shape[:1])
                       for j in range(args.images)]
            rows["single-image fit (fit_identity, N=1)"].append(float(np.mean(singles)))
            multi = fit_identity(deca, None, lmk, cfg=fit_cfg)
            rows[f"multi-image fit (fit_identity, N={args.images})"].append(error(multi.code.shape[:1]))
        if args.single_default:
            res = fit(deca, torch.zeros(args.images, 3, 8, 8), lmk,
                      cfg=FitConfig(terms={**fit_cfg.terms}, lr=args.fit_lr, lr_end=args.fit_lr_end))
            rows[f"single-image fit (fit(), lr {args.fit_lr}, lr_end {args.fit_lr_end})"].append(
                float(np.mean([error(res.code.shape[j:j + 1]) for j in range(args.images)])))
        print(f"identity {i}: " + ", ".join(f"{v[-1]:.3f}" for v in rows.values()), flush=True)
    base = np.mean(rows["mean face"])
    print(f"\n{args.set} set (seed {seed}): {args.identities} identities x {args.images} images, landmark noise "
          f"{args.noise}, outliers {args.outliers}, {'robust' if args.robust else 'L1'} landmark loss, {fit_cfg.pose_steps}+{fit_cfg.steps} steps, lr {fit_cfg.lr}, reg_shape "
          f"{fit_cfg.terms['reg_shape']}, reg_exp {fit_cfg.terms['reg_exp']}; {time.perf_counter() - start:.0f} s, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"| {'method':<40} | NoW-style median (mm), mean over identities | vs mean face |")
    print(f"|{'-' * 42}|{'-' * 45}|{'-' * 14}|")
    report = Report("fit_shape")
    report.note(f"{args.set} set (seed {seed}): {args.identities} identities x {args.images} images, landmark noise "
                f"{args.noise}, outliers {args.outliers}, {'robust' if args.robust else 'L1'} landmark loss, {fit_cfg.pose_steps}+{fit_cfg.steps} steps, lr {fit_cfg.lr}, reg_shape "
                f"{fit_cfg.terms['reg_shape']}, reg_exp {fit_cfg.terms['reg_exp']}; {time.perf_counter() - start:.0f} s")
    for name, values in rows.items():
        print(f"| {name:<40} | {np.mean(values):43.3f} | {np.mean(values) / base:11.2f}x |")
        report.add(method=name, now_median_mm=float(np.mean(values)), vs_mean_face=float(np.mean(values) / base),
                   per_identity_mm=[float(v) for v in values], peak_mb=peak_memory_mb())
    if args.out:
        print("wrote", *report.write(args.out))


if __name__ == "__main__":
    main()
