"""The NoW benchmark run end to end: read NoW's layout, score every prediction, write the report.

NoW's layout (facts from the public evaluation code, ``compute_error.py`` of soubhiksanyal/now_evaluation):

- the image list (``imagepathsvalidation.txt`` / ``imagepathstest.txt``) has one line per image,
  ``<subject>/<condition>/<image>``, e.g. ``FaMoS_180424_03335_TA/multiview_neutral/IMG_0101.jpg``; the condition
  (NoW's "challenge") is one of ``multiview_neutral``, ``multiview_expressions``, ``multiview_occlusions``,
  ``selfie``;
- one ground-truth scan per subject, ``<scans>/<subject>/*.obj``, and its 7 landmarks,
  ``<scan_landmarks>/<subject>/*.pp`` (MeshLab picked points);
- a submission holds per image ``<predictions>/<subject>/<condition>/<image stem>.obj`` (or ``.ply``) and the
  7 landmarks on it, ``<image stem>.npy`` (or ``.txt``, 7 rows of x y z);
- errors of all images are concatenated; a missing prediction is counted and skipped.

Also accepted, so the output of ``decalite-reconstruct now=true`` scores as it is: ``<stem>_now.obj`` with
``<stem>_now_lmk7.npy``, directly in ``<predictions>/<subject>/<condition>/`` or in its ``<stem>/`` subfolder (the
per-face folder decalite-reconstruct writes). Scan landmarks may also be ``.txt`` or ``.npy`` files.

Per image the protocol is :func:`decalite.evaluation.now.now_distances`. A missing or unreadable file never stops
the run: the image is reported by name with the reason, and the others are scored.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import multiprocessing
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from decalite.evaluation.now import now_distances

__all__ = [
    "CONDITIONS",
    "UNITS",
    "ItemResult",
    "NowConfig",
    "NowConfigError",
    "NowInputError",
    "NowItem",
    "Prediction",
    "cumulative_error_curve",
    "evaluate_items",
    "find_prediction",
    "find_scan",
    "markdown_table",
    "parse_image_list",
    "read_landmarks",
    "read_mesh",
    "read_obj",
    "read_pp",
    "run_now_benchmark",
    "summarise",
    "write_curve_png",
    "write_outputs",
]

log = logging.getLogger(__name__)

#: NoW's conditions ("challenges"), in the order of its reports.
CONDITIONS: tuple[str, ...] = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
#: Metrical protocol: the prediction's unit -> scale to the scans' millimetres (NoW: ``predicted_mesh_unit``).
UNITS: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
#: The cumulative error curve's x range (mm), as NoW's plots.
CURVE_MAX_MM: float = 8.0


class NowConfigError(ValueError):
    """A setting of the NoW run is missing or invalid (the message names the key and what to pass)."""


class NowInputError(ValueError):
    """A file of the benchmark or the submission cannot be read (the message names the file)."""


@dataclass
class NowConfig:
    """``decalite-evaluate benchmark=now`` (the ``now`` block of ``conf/evaluate.yaml``).

    Attributes:
        image_list: NoW's image list (``imagepathsvalidation.txt``). scans: the folder of ``<subject>/*.obj`` scans.
        scan_landmarks: the folder of ``<subject>/*.pp`` scan landmarks. predictions: the submission folder.
        challenge: score one condition only (e.g. ``multiview_neutral``); empty for all.
        metrical: NoW's metrical protocol (the scale is fixed by ``unit`` instead of solved).
        unit: the predictions' unit in metrical mode: mm, cm or m (DECA / FLAME: m).
        workers: images scored at once (1: in this process). executor: ``process`` or ``thread`` pool.
        iterations: the refinement's steps (``now_distances``). progress: a tqdm progress bar.
    """

    image_list: str | None = None
    scans: str | None = None
    scan_landmarks: str | None = None
    predictions: str | None = None
    challenge: str = ""
    metrical: bool = False
    unit: str = "m"
    workers: int = 1
    executor: str = "process"
    iterations: int = 50
    progress: bool = True

    def check(self, prefix: str = "now.") -> None:
        """Raise NowConfigError naming the first missing or invalid setting (``prefix``: how the CLI spells keys)."""
        needs = {"image_list": "NoW's image list, e.g. imagepathsvalidation.txt",
                 "scans": "the folder of ground-truth scans (<subject>/*.obj)",
                 "scan_landmarks": "the folder of scan landmarks (<subject>/*.pp)",
                 "predictions": "the folder of predictions (<subject>/<condition>/<image stem>.obj and .npy)"}
        for key, what in needs.items():
            value = getattr(self, key)
            if not value:
                raise NowConfigError(f"{prefix}{key} is not set: pass {prefix}{key}=PATH ({what})")
            if not Path(value).exists():
                raise NowConfigError(f"{prefix}{key}={value} does not exist: pass {what}")
        if self.challenge and self.challenge not in CONDITIONS:
            raise NowConfigError(f"{prefix}challenge={self.challenge} is not a NoW condition: pass one of "
                                 f"{', '.join(CONDITIONS)}, or {prefix}challenge='' for all")
        if self.unit not in UNITS:
            raise NowConfigError(f"{prefix}unit={self.unit} is not supported: pass one of {', '.join(UNITS)}")
        if self.workers < 1:
            raise NowConfigError(f"{prefix}workers={self.workers}: pass a number >= 1")
        if self.executor not in ("process", "thread"):
            raise NowConfigError(f"{prefix}executor={self.executor}: pass process or thread")

    @property
    def metrical_scale(self) -> float | None:
        """The fixed scale of the metrical protocol (prediction unit -> mm), None in the standard protocol."""
        return UNITS[self.unit] if self.metrical else None


# ----------------------------------------------------------------------------------------------------------------
# The image list and where the files of one image are


@dataclass(frozen=True)
class NowItem:
    """One image of the list: ``image`` is the line as written, ``<subject>/<condition>/<stem><suffix>``."""

    image: str
    subject: str
    condition: str
    stem: str


def parse_image_list(lines: Iterable[str], challenge: str = "") -> list[NowItem]:
    """The images of NoW's list, in order (blank lines and ``#`` comments skipped).

    As NoW's code, the subject and the condition are the two folders before the file name (a longer prefix, as in
    ``iphone_pictures/<subject>/<condition>/IMG.jpg``, is allowed). ``challenge``: keep that condition only.
    """
    items = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip().replace("\\", "/")
        if not line or line.startswith("#"):
            continue
        parts = PurePosixPath(line).parts
        if len(parts) < 3:
            raise NowInputError(f"image list line {number}: {line!r} is not <subject>/<condition>/<image>")
        item = NowItem(image=line, subject=parts[-3], condition=parts[-2], stem=PurePosixPath(parts[-1]).stem)
        if not challenge or item.condition == challenge:
            items.append(item)
    return items


@dataclass(frozen=True)
class Prediction:
    """Where the prediction of one image is: mesh and landmarks (None where not found)."""

    mesh: Path | None
    landmarks: Path | None


def find_prediction(predictions: Path, item: NowItem) -> Prediction:
    """Locate ``item``'s mesh and 7 landmarks: NoW's ``<stem>.obj|.ply`` + ``<stem>.npy|.txt``, or decalite-reconstruct's
    ``<stem>_now.obj`` + ``<stem>_now_lmk7.npy`` (in the condition folder or its ``<stem>/`` subfolder)."""
    folder = Path(predictions) / item.subject / item.condition
    stem = item.stem
    meshes = [folder / f"{stem}.obj", folder / f"{stem}.ply", folder / f"{stem}_now.obj",
              folder / stem / f"{stem}_now.obj"]
    landmarks = [folder / f"{stem}.npy", folder / f"{stem}.txt", folder / f"{stem}_now_lmk7.npy",
                 folder / stem / f"{stem}_now_lmk7.npy"]
    return Prediction(next((p for p in meshes if p.is_file()), None), next((p for p in landmarks if p.is_file()), None))


def find_scan(folder: Path, subject: str, suffixes: Sequence[str]) -> Path | None:
    """The first file (sorted) under ``folder/subject`` with one of ``suffixes``, tried in their order."""
    root = Path(folder) / subject
    if not root.is_dir():
        return None
    for suffix in suffixes:
        found = sorted(p for p in root.rglob(f"*{suffix}") if p.is_file())
        if found:
            return found[0]
    return None


# ----------------------------------------------------------------------------------------------------------------
# Readers (each raises NowInputError naming the file)

_POINT = re.compile(r"<point\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(r"(\w+)\s*=\s*[\"']([^\"']*)[\"']")


def read_pp(text: str, source: str = "<pp>") -> np.ndarray:
    """(P, 3) points of a MeshLab picked-points file (``<point x=".." y=".." z=".." .../>`` elements, file order)."""
    points = []
    for match in _POINT.finditer(text):
        attrs = {k.lower(): v for k, v in _ATTR.findall(match.group(1))}
        try:
            points.append([float(attrs["x"]), float(attrs["y"]), float(attrs["z"])])
        except (KeyError, ValueError):
            raise NowInputError(f"{source}: a <point> without numeric x, y, z: {match.group(0)[:120]}") from None
    if not points:
        raise NowInputError(f"{source}: no <point> elements (not a MeshLab .pp file)")
    return np.asarray(points, dtype=np.float64)


def read_landmarks(path: Path) -> np.ndarray:
    """(7, 3) (or (68, 3)) landmarks from a ``.pp``, ``.txt`` (x y z rows) or ``.npy`` file (no pickles)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".pp":
            lmk = read_pp(path.read_text(errors="replace"), str(path))
        elif path.suffix.lower() == ".npy":
            lmk = np.load(path, allow_pickle=False)
        else:
            lmk = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except NowInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is this file's problem
        raise NowInputError(f"{path}: unreadable landmarks ({type(exc).__name__}: {exc})") from None
    lmk = np.asarray(lmk, dtype=np.float64)
    if lmk.shape not in ((7, 3), (68, 3)):
        raise NowInputError(f"{path}: landmarks of shape {lmk.shape}, expected (7, 3) (NoW's 7) or (68, 3)")
    if not np.isfinite(lmk).all():
        raise NowInputError(f"{path}: landmarks are not finite")
    return lmk


def read_obj(text: str, source: str = "<obj>", faces: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) vertices and (F, 3) triangles of a Wavefront OBJ, vertices in file order (as NoW's reader).

    ``v`` lines give the vertices (extra colour columns ignored), ``f`` lines the faces (``i``, ``i/t``, ``i//n``,
    ``i/t/n``; negative indices count from the end; polygons are fanned into triangles). No vertex is merged or
    split, so scan points are counted exactly once. ``faces=False`` skips the faces ((0, 3): a scan's points).
    """
    lines = text.splitlines()
    rows = [line.split()[1:4] for line in lines if line.startswith("v ")]
    try:
        verts = np.array(rows, dtype=np.float64).reshape(-1, 3)
    except ValueError:
        bad = next((row for row in rows if len(row) != 3 or not all(_is_float(x) for x in row)), ["?"])
        raise NowInputError(f"{source}: a vertex line is not 'v x y z': 'v {' '.join(bad)}'") from None
    tris: list[list[int]] = []
    seen = 0  # vertices before the current line (negative indices count back from there)
    for number, line in enumerate(lines if faces else [], 1):
        if line.startswith("v "):
            seen += 1
        elif line.startswith("f "):
            try:
                idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
            except ValueError:
                raise NowInputError(f"{source}: line {number} is not a face: {line[:80]!r}") from None
            if len(idx) < 3:
                raise NowInputError(f"{source}: line {number} has fewer than 3 vertices: {line[:80]!r}")
            idx = [i - 1 if i > 0 else seen + i for i in idx]  # OBJ: 1-based; negative: relative
            tris.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    return verts, np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_mesh(path: Path, need_faces: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) vertices and (F, 3) faces of an ``.obj`` (:func:`read_obj`) or another trimesh format (``.ply``).

    Raises NowInputError when the file cannot be read, has no vertices (or no faces, with ``need_faces``), a face
    index out of range, or non-finite coordinates.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".obj":
            verts, faces = read_obj(path.read_text(errors="replace"), str(path), faces=need_faces)
        else:
            import trimesh

            mesh = trimesh.load(path, force="mesh", process=False)
            verts, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64).reshape(-1, 3)
    except NowInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is this file's problem
        raise NowInputError(f"{path}: unreadable mesh ({type(exc).__name__}: {exc})") from None
    if len(verts) == 0:
        raise NowInputError(f"{path}: no vertices")
    if need_faces and len(faces) == 0:
        raise NowInputError(f"{path}: no faces")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(verts)):
        raise NowInputError(f"{path}: a face index is out of range (vertices: {len(verts)})")
    if not np.isfinite(verts).all():
        raise NowInputError(f"{path}: non-finite vertex coordinates")
    return verts, faces


@functools.lru_cache(maxsize=4)
def _scan(mesh: str, landmarks: str) -> tuple[np.ndarray, np.ndarray]:
    """A subject's scan vertices and landmarks, read once per process (images of one subject share them)."""
    return read_mesh(Path(mesh), need_faces=False)[0], read_landmarks(Path(landmarks))


# ----------------------------------------------------------------------------------------------------------------
# Scoring


@dataclass
class ItemResult:
    """One image's outcome: ``status`` is ``scored`` (``distances``: (N,) mm), ``missing`` or ``failed``
    (``reason`` says why)."""

    item: NowItem
    status: str
    distances: np.ndarray | None = field(default=None, repr=False)
    reason: str = ""


@dataclass(frozen=True)
class _Task:
    item: NowItem
    scan: str
    scan_landmarks: str
    mesh: str
    landmarks: str
    metrical_scale: float | None
    iterations: int


def _score(task: _Task) -> ItemResult:
    """Score one image; every failure becomes a ``failed`` result naming the file and the error."""
    try:
        scan, scan_lmk = _scan(task.scan, task.scan_landmarks)
        verts, faces = read_mesh(Path(task.mesh))
        lmk = read_landmarks(Path(task.landmarks))
        dist = now_distances(verts, faces, lmk, scan, scan_lmk, metrical_scale=task.metrical_scale,
                             iterations=task.iterations)
        if len(dist) == 0:
            return ItemResult(task.item, "failed", reason="no scan point inside the face crop")
        return ItemResult(task.item, "scored", dist)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the benchmark
        reason = str(exc) if isinstance(exc, NowInputError) else f"{type(exc).__name__}: {exc}"
        return ItemResult(task.item, "failed", reason=reason)


def _init_worker() -> None:
    torch.set_num_threads(1)  # the pool is the parallelism


def _plan(items: Sequence[NowItem], scans: Path, scan_landmarks: Path, predictions: Path,
          metrical_scale: float | None, iterations: int) -> tuple[list[_Task], list[ItemResult]]:
    """The images to score and the ones missing a file (with the reason)."""
    tasks, missing = [], []
    scan_of: dict[str, tuple[Path | None, Path | None]] = {}
    for item in items:
        if item.subject not in scan_of:
            scan_of[item.subject] = (find_scan(scans, item.subject, (".obj", ".ply")),
                                     find_scan(scan_landmarks, item.subject, (".pp", ".txt", ".npy")))
        scan, scan_lmk = scan_of[item.subject]
        pred = find_prediction(predictions, item)
        reasons = []
        if scan is None:
            reasons.append(f"no scan {Path(scans) / item.subject}/*.obj")
        if scan_lmk is None:
            reasons.append(f"no scan landmarks {Path(scan_landmarks) / item.subject}/*.pp")
        folder = Path(predictions) / item.subject / item.condition
        if pred.mesh is None:
            reasons.append(f"no predicted mesh {folder}/{item.stem}.obj (or .ply, {item.stem}_now.obj)")
        if pred.landmarks is None:
            reasons.append(f"no predicted landmarks {folder}/{item.stem}.npy (or .txt, {item.stem}_now_lmk7.npy)")
        if reasons:
            missing.append(ItemResult(item, "missing", reason="; ".join(reasons)))
        else:
            tasks.append(_Task(item, str(scan), str(scan_lmk), str(pred.mesh), str(pred.landmarks), metrical_scale,
                               iterations))
    return tasks, missing


def _progress(results: Iterator[ItemResult], total: int, enabled: bool) -> Iterator[ItemResult]:
    """tqdm when installed and ``enabled``, else a log line every tenth of the way."""
    if enabled:
        try:
            from tqdm import tqdm

            yield from tqdm(results, total=total, desc="NoW", unit="image")
            return
        except ImportError:
            pass
    step = max(1, total // 10)
    for done, result in enumerate(results, 1):
        if done % step == 0 or done == total:
            log.info("NoW: %d of %d images scored", done, total)
        yield result


def evaluate_items(items: Sequence[NowItem], scans: Path, scan_landmarks: Path, predictions: Path,
                   metrical_scale: float | None = None, iterations: int = 50, workers: int = 1,
                   executor: str = "process", progress: bool = False) -> list[ItemResult]:
    """Score every image of ``items`` that has its files; one result per item, in the order of ``items``.

    ``workers`` > 1 scores images in a pool (``executor``: ``process``, spawned, one torch thread each; or ``thread``).
    Missing files give ``missing`` results, unreadable files and errors ``failed`` results; neither stops the run.
    """
    tasks, missing = _plan(items, scans, scan_landmarks, predictions, metrical_scale, iterations)
    for result in missing:
        log.warning("NoW: %s missing: %s", result.item.image, result.reason)
    order = sorted(range(len(tasks)), key=lambda i: tasks[i].item.subject)  # a subject's images together: one scan read
    ordered = [tasks[i] for i in order]
    scored: list[ItemResult] = []
    if workers <= 1 or len(ordered) <= 1:
        scored = list(_progress(map(_score, ordered), len(ordered), progress))
    else:
        if executor == "thread":
            pool: concurrent.futures.Executor = concurrent.futures.ThreadPoolExecutor(workers)
        else:
            pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                          initializer=_init_worker)
        with pool:
            chunk = max(1, min(8, len(ordered) // (4 * workers)))
            scored = list(_progress(pool.map(_score, ordered, chunksize=chunk), len(ordered), progress))
    for result in scored:
        if result.status == "failed":
            log.warning("NoW: %s failed: %s", result.item.image, result.reason)
    by_image = {r.item.image: r for r in [*missing, *scored]}
    return [by_image[item.image] for item in items]


# ----------------------------------------------------------------------------------------------------------------
# Report


def _stats(results: Sequence[ItemResult]) -> dict:
    """Counts and median / mean / std (mm) of the scored images' concatenated errors (None when none scored)."""
    scored = [r.distances for r in results if r.status == "scored"]
    flat = np.concatenate(scored) if scored else np.zeros(0)
    row = {"images": len(results), "scored": len(scored),
           "missing": sum(r.status == "missing" for r in results),
           "failed": sum(r.status == "failed" for r in results), "points": int(len(flat))}
    if len(flat):
        row.update(median=float(np.median(flat)), mean=float(np.mean(flat)), std=float(np.std(flat)))
    else:
        row.update(median=None, mean=None, std=None)
    return row


def summarise(results: Sequence[ItemResult], metrical: bool = False, unit: str | None = None) -> dict:
    """The report as JSON-ready data: overall and per-condition statistics (NoW's conditions first, in their order),
    and the missing and failed images by name with the reason."""
    seen = list(dict.fromkeys(r.item.condition for r in results))
    conditions = [c for c in CONDITIONS if c in seen] + [c for c in seen if c not in CONDITIONS]
    return {
        "protocol": "NoW metrical" if metrical else "NoW",
        "unit": "mm",
        "prediction_unit": unit if metrical else None,
        "overall": _stats(results),
        "conditions": {c: _stats([r for r in results if r.item.condition == c]) for c in conditions},
        "missing": [{"image": r.item.image, "reason": r.reason} for r in results if r.status == "missing"],
        "failed": [{"image": r.item.image, "reason": r.reason} for r in results if r.status == "failed"],
    }


def markdown_table(summary: dict, max_listed: int = 50) -> str:
    """A markdown report: one row per condition and the overall row, then the missing and failed images."""

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [f"# {summary['protocol']} benchmark (errors in mm)", "",
             "| condition | images | scored | missing | failed | scan points | median | mean | std |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [*summary["conditions"].items(), ("**all**", summary["overall"])]
    for name, row in rows:
        lines.append(f"| {name} | {row['images']} | {row['scored']} | {row['missing']} | {row['failed']} | "
                     f"{row['points']} | {cell(row['median'])} | {cell(row['mean'])} | {cell(row['std'])} |")
    for key, title in (("missing", "Missing predictions"), ("failed", "Unreadable or failed predictions")):
        if summary[key]:
            lines += ["", f"## {title} ({len(summary[key])})", ""]
            lines += [f"- `{e['image']}`: {e['reason']}" for e in summary[key][:max_listed]]
            if len(summary[key]) > max_listed:
                lines.append(f"- ... and {len(summary[key]) - max_listed} more (now_results.json)")
    return "\n".join(lines) + "\n"


def cumulative_error_curve(distances: np.ndarray, max_error: float = CURVE_MAX_MM,
                           samples: int = 801) -> tuple[np.ndarray, np.ndarray]:
    """(samples,) errors x in [0, max_error] and the percentage of ``distances`` (N,) at most x."""
    x = np.linspace(0.0, max_error, samples)
    d = np.sort(np.asarray(distances, dtype=np.float64).ravel())
    if len(d) == 0:
        return x, np.zeros_like(x)
    return x, 100.0 * np.searchsorted(d, x, side="right") / len(d)


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _curve_png_pil(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], max_error: float) -> None:
    """The curves drawn with Pillow (no matplotlib): axes 0..max_error mm by 0..100 %, a legend."""
    from PIL import Image, ImageDraw

    width, height, left, right, top, bottom = 720, 480, 60, 20, 20, 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    pw, ph = width - left - right, height - top - bottom

    def to_px(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
        return list(zip((left + x / max_error * pw).tolist(), (top + (1 - y / 100.0) * ph).tolist(), strict=True))

    for k in range(int(max_error) + 1):
        px = left + k / max_error * pw
        draw.line([(px, top), (px, top + ph)], fill=(225, 225, 225))
        draw.text((px - 3, top + ph + 6), f"{k}", fill="black")
    for pct in range(0, 101, 20):
        py = top + (1 - pct / 100.0) * ph
        draw.line([(left, py), (left + pw, py)], fill=(225, 225, 225))
        draw.text((left - 28, py - 6), f"{pct}", fill="black")
    draw.rectangle([left, top, left + pw, top + ph], outline="black")
    draw.text((left + pw / 2 - 30, height - 22), "Error [mm]", fill="black")
    draw.text((6, top + ph / 2), "%", fill="black")
    for i, (label, (x, y)) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        draw.line(to_px(x, y), fill=colour, width=2)
        ly = top + ph - 20 - 16 * (len(curves) - 1 - i)
        draw.line([(left + pw - 200, ly + 6), (left + pw - 180, ly + 6)], fill=colour, width=2)
        draw.text((left + pw - 175, ly), label, fill="black")
    img.save(path)


def write_curve_png(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]],
                    max_error: float = CURVE_MAX_MM) -> None:
    """Cumulative error curves (label -> (x mm, %)) as a PNG: matplotlib (Agg) when installed, else Pillow."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _curve_png_pil(Path(path), curves, max_error)
        return
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=label)
    ax.set(xlim=(0, max_error), ylim=(0, 100), xlabel="Error [mm]", ylabel="Percentage of scan points")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(output: Path, results: Sequence[ItemResult], summary: dict) -> dict[str, Path]:
    """Write ``now_results.json``, ``now_results.md``, ``now_curve.png`` and ``now_distances.npz`` into ``output``.

    The npz holds no pickles: ``images`` and ``conditions`` (S,) strings of the scored images, ``offsets`` (S + 1,)
    and ``distances`` (N,) float32 mm, image i's errors being ``distances[offsets[i]:offsets[i + 1]]``.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = {name: output / name for name in ("now_results.json", "now_results.md", "now_curve.png",
                                              "now_distances.npz")}
    paths["now_results.json"].write_text(json.dumps(summary, indent=2))
    paths["now_results.md"].write_text(markdown_table(summary))
    scored = [r for r in results if r.status == "scored"]
    flat = np.concatenate([r.distances for r in scored]) if scored else np.zeros(0)
    np.savez(paths["now_distances.npz"], images=np.array([r.item.image for r in scored], dtype=str),
             conditions=np.array([r.item.condition for r in scored], dtype=str),
             offsets=np.cumsum([0] + [len(r.distances) for r in scored]).astype(np.int64),
             distances=flat.astype(np.float32))
    curves = {"all": cumulative_error_curve(flat)}
    for condition in summary["conditions"]:
        d = [r.distances for r in scored if r.item.condition == condition]
        if d:
            curves[condition] = cumulative_error_curve(np.concatenate(d))
    write_curve_png(paths["now_curve.png"], curves)
    return paths


def run_now_benchmark(cfg: NowConfig, output: Path,
                      log_table: Callable[[str], None] | None = None) -> dict:
    """The whole benchmark: check ``cfg``, read the image list, score, write the outputs. Returns the summary."""
    cfg.check()
    items = parse_image_list(Path(cfg.image_list).read_text().splitlines(), challenge=cfg.challenge)
    if not items:
        raise NowConfigError(f"now.image_list={cfg.image_list} lists no image"
                             + (f" of now.challenge={cfg.challenge}" if cfg.challenge else ""))
    results = evaluate_items(items, Path(cfg.scans), Path(cfg.scan_landmarks), Path(cfg.predictions),
                             metrical_scale=cfg.metrical_scale, iterations=cfg.iterations, workers=cfg.workers,
                             executor=cfg.executor, progress=cfg.progress)
    summary = summarise(results, metrical=cfg.metrical, unit=cfg.unit)
    summary["config"] = asdict(cfg)
    write_outputs(Path(output), results, summary)
    (log_table or log.info)(markdown_table(summary, max_listed=10))
    return summary
