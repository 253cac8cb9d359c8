"""NoW protocol benchmark: seconds for ``now_distances`` on one FLAME-sized prediction against a 30,000-point scan.

The prediction is the front of a subdivided icosphere (open, like FLAME: 5,057 vertices and 9,922 faces),
made head-sized (metres) and asymmetric with smooth bumps. The scan is 30,000 points sampled on a differently bumped
copy, placed by a random similarity in millimetres, with 1 mm of noise on its 7 landmarks. Prints the median of
``--repeats`` runs of the full protocol (crop, landmark fit, refinement, distances), the stages separately, the
refinement's objective evaluations, and the resulting median / mean / std (mm).
``--pipeline N`` also times ``decalite-evaluate benchmark=now``'s scoring (``evaluate_items``) end to end on N images
written in NoW's layout to a temporary folder, one subject (one scan .obj and .pp file) per image so every image
reads its scan: seconds per image with file reading, for ``--workers`` images at once.
Run: ``python benchmarks/bench_now.py`` (2 CPU threads by default);
``python benchmarks/bench_now.py --scan-points 60000 --threads 1 --pipeline 4`` (a NoW-sized scan, one thread).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import trimesh
from report import DEFAULT_OUT, Report, peak_memory_mb
from scipy.spatial.transform import Rotation

from decalite.evaluation.now import (
    apply_similarity,
    crop_scan,
    now_distances,
    now_summary,
    refine_alignment,
    similarity_from_landmarks,
)
from decalite.evaluation.now_benchmark import evaluate_items, parse_image_list, read_mesh
from decalite.geometry.distance import point_to_mesh

#: Directions of the 7 stand-in landmarks (eye corners, nose bottom, mouth corners) on the unit sphere's front.
LANDMARK_DIRECTIONS = np.array([[-0.5, 0.3, 1], [-0.2, 0.3, 1], [0.2, 0.3, 1], [0.5, 0.3, 1], [0, 0, 1],
                                [-0.3, -0.4, 1], [0.3, -0.4, 1]])


def _bumps(d: np.ndarray, phase: float) -> np.ndarray:
    """Radius factor on unit directions (N, 3): a bumpy, asymmetric ellipsoid."""
    return 1.0 + 0.10 * np.sin(3 * d[:, 0] + phase) * np.cos(2 * d[:, 1]) + 0.06 * d[:, 2] ** 3 + 0.04 * d[:, 0] * d[:, 1]


def build_case(seed: int, n_scan: int) -> dict:
    """Prediction (metres), scan (mm) and their landmarks."""
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=5)
    front = sphere.triangles_center[:, 2] > 0.025  # a hemisphere: 5,057 vertices, 9,922 faces (FLAME: 5,023, 9,976)
    mesh = trimesh.Trimesh(sphere.vertices, sphere.faces[front], process=False)
    mesh.remove_unreferenced_vertices()
    d = np.asarray(mesh.vertices)
    axes = np.array([0.075, 0.095, 0.085])  # metres
    pred = d * axes * _bumps(d, 1.0)[:, None]
    target = d * axes * _bumps(d, 1.2)[:, None]  # the "true" face: the same topology, other bumps
    dirs = LANDMARK_DIRECTIONS / np.linalg.norm(LANDMARK_DIRECTIONS, axis=1, keepdims=True)
    lmk_idx = (d @ dirs.T).argmax(0)
    truth = (1000.0, Rotation.random(random_state=seed).as_matrix(), rng.normal(scale=100.0, size=3))
    points, _ = trimesh.sample.sample_surface(trimesh.Trimesh(target, mesh.faces, process=False), n_scan, seed=seed)
    return {
        "pred": pred,
        "faces": np.asarray(mesh.faces),
        "pred_lmk": pred[lmk_idx],
        "scan": apply_similarity(np.asarray(points), truth),
        "scan_lmk": apply_similarity(target[lmk_idx], truth) + rng.normal(scale=1.0, size=(7, 3)),
    }


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices] + [f"f {a} {b} {c}" for a, b, c in faces + 1]
    path.write_text("\n".join(lines) + "\n")


def pipeline(c: dict, images: int, workers: int) -> None:
    """Time ``evaluate_items`` on ``images`` images in NoW's layout (files written to a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="bench_now_") as tmp:
        root = Path(tmp)
        n = len(c["scan"])
        scan_faces = (np.arange(2 * n)[:, None] + np.arange(3)) % n  # stand-in faces: the file size of a real scan
        lines = []
        for i in range(images):
            subject = f"FaMoS_{i:06d}_TA"
            _write_obj(root / "scans" / subject / "scan.obj", c["scan"], scan_faces)
            points = "\n".join(f'<point x="{x}" y="{y}" z="{z}" active="1" name="{k}"/>'
                               for k, (x, y, z) in enumerate(c["scan_lmk"]))
            (root / "lmks" / subject).mkdir(parents=True)
            (root / "lmks" / subject / "scan.pp").write_text(f"<PickedPoints>\n{points}\n</PickedPoints>\n")
            _write_obj(root / "pred" / subject / "multiview_neutral" / "IMG_0001.obj", c["pred"], c["faces"])
            np.save(root / "pred" / subject / "multiview_neutral" / "IMG_0001.npy", c["pred_lmk"])
            lines.append(f"{subject}/multiview_neutral/IMG_0001.jpg")
        t0 = time.perf_counter()
        read_mesh(root / "scans" / f"FaMoS_{0:06d}_TA" / "scan.obj", need_faces=False)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = evaluate_items(parse_image_list(lines), root / "scans", root / "lmks", root / "pred",
                                 workers=workers, executor="process")
        elapsed = time.perf_counter() - t0
    assert all(r.status == "scored" for r in results), [r.reason for r in results]
    print(f"evaluate_items, {images} images ({n}-vertex scan .obj each), {workers} worker(s): {elapsed:.2f} s, "
          f"{elapsed / images:.3f} s per image (reading one scan .obj: {t_read:.3f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scan-points", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline", type=int, default=0, help="also time evaluate_items on this many images")
    parser.add_argument("--workers", type=int, default=1, help="--pipeline: images scored at once (processes)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for now.json / now.md ('': none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    c = build_case(args.seed, args.scan_points)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; prediction {len(c['pred'])} vertices, "
          f"{len(c['faces'])} faces; scan {len(c['scan'])} points")

    def full() -> np.ndarray:
        return now_distances(c["pred"], c["faces"], c["pred_lmk"], c["scan"], c["scan_lmk"])

    dist = full()  # warm-up, and the figures
    mask = crop_scan(c["scan"], c["scan_lmk"])
    cropped = c["scan"][mask]
    start = similarity_from_landmarks(c["pred_lmk"], c["scan_lmk"])
    history: list[float] = []
    refined = refine_alignment(cropped, c["pred"], c["faces"], *start, history=history)
    t_full = _median_time(full, args.repeats)
    t_nocrop = _median_time(lambda: now_distances(c["pred"], c["faces"], c["pred_lmk"], c["scan"], c["scan_lmk"],
                                                  crop=False), args.repeats)
    t_refine = _median_time(lambda: refine_alignment(cropped, c["pred"], c["faces"], *start), args.repeats)
    moved = apply_similarity(c["pred"], refined)
    t_dist = _median_time(lambda: point_to_mesh(cropped, moved, c["faces"]), args.repeats)
    t_all = _median_time(lambda: point_to_mesh(c["scan"], moved, c["faces"]), args.repeats)
    landmark_only = point_to_mesh(cropped, apply_similarity(c["pred"], start), c["faces"])[0]
    print(f"cropped scan: {int(mask.sum())} of {len(mask)} points")
    print(f"now_distances (crop, landmarks, refine, distances): {t_full:.3f} s  (median of {args.repeats})")
    print(f"now_distances without the crop (all {len(mask)} points): {t_nocrop:.3f} s")
    rms = " -> ".join(f"{np.sqrt(h):.3f}" for h in history)
    print(f"  refine_alignment: {t_refine:.3f} s, {len(history) - 1} accepted steps, RMS distance (mm) {rms}")
    print(f"  point_to_mesh, {len(cropped)} points: {t_dist:.3f} s; all {len(c['scan'])} points: {t_all:.3f} s")
    stats, before = now_summary([dist]), now_summary([landmark_only])
    print("errors (mm) landmarks only: median {median:.3f}, mean {mean:.3f}, std {std:.3f}".format(**before))
    print("errors (mm) refined:        median {median:.3f}, mean {mean:.3f}, std {std:.3f}".format(**stats))
    if args.out:
        report = Report("now")
        report.add(scan_points=len(c["scan"]), cropped_points=int(mask.sum()), mesh_vertices=len(c["pred"]),
                   threads=args.threads, now_distances_s=t_full, without_crop_s=t_nocrop, refine_s=t_refine,
                   point_to_mesh_cropped_s=t_dist, refined_median_mm=stats["median"], peak_memory_mb=peak_memory_mb())
        report.note("now_distances per image: crop, 7-landmark similarity, refinement, distances (median of "
                    f"{args.repeats}); synthetic scan with bumps against a FLAME-sized mesh")
        print("wrote", *report.write(args.out))
    if args.pipeline:
        pipeline(c, args.pipeline, args.workers)


if __name__ == "__main__":
    main()
