"""Face detection benchmark (issue 9): detection rate, chosen-face correctness, landmark NME and time per image
for the hog, dlib_cnn and yunet landmarkers (each box + dlib's 68-point predictor).

The images are built here (:func:`face_scenes.compose_scene`, beside this script): skimage's astronaut (public domain)
with its face scaled to 40-400 px in a new canvas, as is, rotated by +-30 degrees, greyscale, low contrast,
greyscale + low contrast and an "old print" (greyscale, contrast 0.25, blurred, grainy), always with a second
face 0.6 x as large (the mirrored astronaut, lower right).
Ground truth: the HOG + predictor landmarks of the clean, unscaled astronaut, warped like the face.

* found: a detection has its landmark centre within 0.3 x face size of the main face's.
* chosen: :func:`most_prominent_face` picks the main face; "another face": it picks something else (the
  bystander or a false positive): issue 9's silent failure.
* NME: mean landmark error of the detection on the main face / outer-eye-corner distance (found faces only).

Prints figures, asserts nothing; writes ``detect.json`` (one summary row per detector, the per-image rows under
"images") + ``detect.md`` into ``--out`` (see report.py). Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_detect.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
from face_scenes import compose_scene
from report import DEFAULT_OUT, Report, peak_memory_mb

from decalite.data.detect import DlibCnnLandmarker, DlibLandmarker, YunetLandmarker, most_prominent_face

VARIANTS = {
    "clean": {},
    "rot+30": {"angle": 30.0},
    "rot-30": {"angle": -30.0},
    "grey": {"grey": True},
    "low contrast": {"contrast": 0.3},
    "grey+low": {"grey": True, "contrast": 0.3},
    "old print": {"grey": True, "contrast": 0.25, "blur": 0.02, "noise": 8.0},
}
DETECTORS = {"hog": DlibLandmarker, "dlib_cnn": DlibCnnLandmarker, "yunet": YunetLandmarker}


def scenes(sizes: list[int]) -> list[tuple[int, str, object]]:
    """(size, variant name, Scene) for every size and variant."""
    import skimage.data

    image = skimage.data.astronaut()
    ref = max(DlibLandmarker().detect(image), key=lambda d: d.score).landmarks
    return [(size, name, compose_scene(image, ref, size, seed=i, **kw))
            for size in sizes for i, (name, kw) in enumerate(VARIANTS.items())]


def nme(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(pred - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45]))


def evaluate(landmarker, items) -> list[dict]:
    rows = []
    for size, variant, scene in items:
        start = time.perf_counter()
        faces = landmarker.detect(scene.image)
        ms = 1000 * (time.perf_counter() - start)

        def on_main(d) -> bool:
            return bool(np.linalg.norm(d.landmarks.mean(0) - scene.centre) < 0.3 * scene.size)

        hits = [d for d in faces if on_main(d)]
        chosen = most_prominent_face(faces)
        rows.append({"size": size, "variant": variant, "ms": ms, "found": bool(hits), "faces": len(faces),
                     "chosen": chosen is not None and on_main(chosen),
                     "wrong": chosen is not None and not on_main(chosen),
                     "nme": nme(hits[0].landmarks, scene.landmarks) if hits else float("nan")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[40, 60, 100, 200, 400])
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for detect.json / detect.md ('': none)")
    args = parser.parse_args()
    logging.getLogger("decalite.data.detect").setLevel(logging.ERROR)  # no "2 faces found" per image
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    import torch

    torch.set_num_threads(1)
    items = scenes(args.sizes)
    results = {name: evaluate(DETECTORS[name](), items) for name in args.detectors}

    n = len(items)
    print(f"\n{n} images: face sizes {args.sizes} px x {len(VARIANTS)} variants ({', '.join(VARIANTS)}), "
          "each with a 0.6 x bystander\n")
    print("| detector | found | chosen correctly | another face chosen | NME (median / mean) "
          "| ms per image (median / mean) |")
    print("|---|---|---|---|---|---|")
    report = Report("detect")
    report.note(f"{n} images: face sizes {args.sizes} px x {len(VARIANTS)} variants, each with a 0.6 x bystander; "
                "1 thread; NME over found faces; peak_mb: ru_maxrss")
    for name, rows in results.items():
        found = [r for r in rows if r["found"]]
        errs = np.array([r["nme"] for r in found]) if found else np.array([np.nan])
        ms = np.array([r["ms"] for r in rows])
        wrong = sum(r["wrong"] for r in rows)
        print(f"| {name} | {len(found)}/{n} | {sum(r['chosen'] for r in rows)}/{n} | {wrong}/{n} | "
              f"{np.median(errs):.3f} / {np.mean(errs):.3f} | {np.median(ms):.0f} / {np.mean(ms):.0f} |")
        report.add(detector=name, images=n, found=len(found), chosen=sum(r["chosen"] for r in rows), wrong=wrong,
                   nme_median=float(np.median(errs)), nme_mean=float(np.mean(errs)), ms_median=float(np.median(ms)),
                   ms_mean=float(np.mean(ms)), peak_mb=peak_memory_mb())

    print("\nfound (chosen correctly) per face size, all variants:\n")
    print("| detector | " + " | ".join(f"{s} px" for s in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for name, rows in results.items():
        cells = []
        for s in args.sizes:
            sel = [r for r in rows if r["size"] == s]
            cells.append(f"{sum(r['found'] for r in sel)} ({sum(r['chosen'] for r in sel)}) / {len(sel)}")
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\nfound per variant, all sizes:\n")
    print("| detector | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for name, rows in results.items():
        cells = [f"{sum(r['found'] for r in rows if r['variant'] == v)}/{len(args.sizes)}" for v in VARIANTS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.out:
        data = report.data()
        data["images"] = {name: rows for name, rows in results.items()}
        json_path, md_path = report.write(args.out)
        json_path.write_text(json.dumps(data, indent=1, default=str) + "\n")
        print("\nwrote", json_path, md_path)


if __name__ == "__main__":
    main()
