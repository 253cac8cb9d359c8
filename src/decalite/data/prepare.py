"""Photos / videos of many identities -> decalite's identity-grouped shards (see :mod:`decalite.data.shards`).

Input layouts (``layout``):

``vggface2``   ``root/<identity>/*.jpg|png`` (images directly inside each identity folder).
``bupt``       ``root/.../<identity>/*.jpg`` at any depth (e.g. ``root/<race>/<identity>/``): the identity is
               the image's parent folder name (folders of the same name at different places are merged), the
               path relative to ``root`` identifies the image.
``voxceleb2``  ``root/<identity>/<video>/*.mp4`` (frames 0, n, 2n, ... with n = ``every_n_frames``, read with
               imageio's ffmpeg plugin) or ``root/<identity>/<video>/`` folders of frame images (every n-th
               image of each folder, sorted by name).

A *source* is a path relative to ``root`` (a string) or, for a video frame, a ``(path, frame index)`` pair;
both are JSON serialisable (a pair becomes a 2-list).

Per source: read (8-bit RGB whatever the file's mode; EXIF orientation applied), detect, keep the largest
face, crop ``CONTEXT_SCALE`` x the landmark box to ``size`` x ``size``, move the landmarks into the crop and
compute the skin mask on the crop. Any failure becomes a record ``{"file", "reason"}`` (plus ``"frame"`` for
a video frame) and processing goes on.

Shards: identities sorted by name, ``identities_per_shard`` per shard, shard i is ``prepared-{i:06d}.tar``.
An identity's usable images are split evenly into chunks of at most ``max_images_per_sample`` (one sample
each); identities with fewer than ``min_images`` usable images are kept but flagged ``few_images``.

Resuming: each shard's *fingerprint* hashes its identities, their sources (with file size and mtime) and the
settings that change its content. A shard whose fingerprint matches the manifest's and whose file on disk
still has the recorded sha256 is skipped (its failures and flags are kept). Adding identities that sort after
the existing ones only adds shards; an identity inserted in the middle shifts the grouping so every shard
from that point on is rebuilt (its fingerprint changes). Shard files no longer in the plan are deleted.
The manifest is rewritten after every finished shard, so an interruption loses only the shards in flight.

Across a cluster (``part=i parts=N``): every part discovers the same inputs and plans the same shards; part ``i``
builds every N-th of them (shard index ``j`` with ``j % N == i``, names unchanged) into its own folder
``output/parts/part-<i>-of-<N>/`` (resumable as above), so a SLURM array or a Hydra multirun (``-m part=0,1,2,3
parts=4``) prepares one dataset in parallel. :func:`merge_parts` (``decalite-prepare merge=true output=DIR``)
then checks that every part finished with the same settings and links their shards and records into ``output``:
the same shards and manifest as one run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from decalite.data.shards import (
    CONTEXT_SCALE,
    DEFAULT_SIZE,
    FORMAT_VERSION,
    IdentitySample,
    ShardInfo,
    read_manifest,
    sha256_file,
    write_manifest,
    write_shard,
)
from decalite.io.images import InputError, load_image, to_rgb8  # noqa: F401 (to_rgb8 re-exported)
from decalite.io.inputs import check_video_size

log = logging.getLogger(__name__)

Source = Union[str, tuple[str, int]]
LAYOUTS = ("vggface2", "bupt", "voxceleb2")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"}
SHARD_PATTERN = "prepared-{:06d}.tar"
FAILURES = "failures.jsonl"
PARTS_DIR = "parts"
PART_PATTERN = "part-{:04d}-of-{:04d}"


class ConfigError(ValueError):
    """The configuration cannot run (missing input root, unknown layout or landmarker, absent weights)."""


class SourceError(Exception):
    """One source could not be turned into a face crop; the message is the failure's reason."""


@dataclass
class MaskConfig:
    """Skin masks: a TorchScript face-parsing network (CelebAMask-HQ classes), or None for the landmark +
    skin-colour fallback; the parsing classes counted as skin; the network's input side."""

    model: str | None = None
    skin_classes: tuple[int, ...] = (1, 10)
    input_size: int = 512


@dataclass
class PrepareConfig:
    """Settings of a prepare run (``decalite-prepare``; ``conf/prepare.yaml`` sets only what differs from these).

    Attributes:
        input: the dataset root. output: the shard folder.
        layout: "vggface2" (root/<id>/*.jpg), "bupt" (root/**/<id>/*.jpg) or "voxceleb2" (root/<id>/<video>/*.mp4
            or frame folders).
        landmarker: "auto" (FAN when its weights are in ``$TORCH_HOME/hub/checkpoints``, else "yunet"), "fan",
            "yunet", "dlib_cnn" or "hog" (= "dlib"). fan_detector: FAN's face detector, "sfd" or "blazeface".
        device: FAN / face-parsing device.
        size: stored crop side (pixels); crops cover :data:`CONTEXT_SCALE` x the landmark box.
        workers: processes (spawn), each with its own landmarker; 0: in this process.
        identities_per_shard: identities per tar.
        min_images: identities with fewer usable images are kept but flagged "few_images".
        max_images_per_sample: an identity's images are split into samples of at most this many.
        every_n_frames: video / frame-folder sampling (voxceleb2).
        mask: skin masks (:class:`MaskConfig`; no model: the landmark + skin-colour fallback).
        progress: a progress bar.
        part, parts: with ``parts > 1`` this run prepares every ``parts``-th shard, from shard ``part``, into
            :func:`part_folder` (a SLURM array: ``part=$SLURM_ARRAY_TASK_ID``); :func:`merge_parts` joins them.
    """

    input: str
    output: str
    layout: str = "vggface2"
    landmarker: str = "auto"
    fan_detector: str = "sfd"
    device: str = "cpu"
    size: int = DEFAULT_SIZE
    workers: int = 2
    identities_per_shard: int = 100
    min_images: int = 4
    max_images_per_sample: int = 32
    every_n_frames: int = 10
    mask: MaskConfig = field(default_factory=MaskConfig)
    progress: bool = True
    part: int = 0
    parts: int = 1


@dataclass
class PrepareSummary:
    """What a run produced (totals over the whole output folder, kept shards included)."""

    manifest: Path
    images: int
    identities: int
    failures: list[dict[str, Any]]
    flagged: list[dict[str, Any]]
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    processed_images: int = 0


# ----------------------------------------------------------------------------------------------- discovery


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _files(folder: Path, extensions: set[str], recursive: bool) -> list[Path]:
    """Sorted visible files of ``folder`` (recursively or not) whose suffix is in ``extensions``."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in extensions
                  and all(_visible(part) for part in p.relative_to(folder).parts))


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames of a video (imageio / ffmpeg); raises on an unreadable file."""
    import imageio.v2 as iio

    with iio.get_reader(str(path), format="FFMPEG") as reader:
        return int(reader.count_frames())


def _voxceleb_sources(identity_dir: Path, root: Path, every_n: int) -> list[Source]:
    """Sampled video frames and frame-folder images of one VoxCeleb2 identity folder."""
    sources: list[Source] = []
    for video in _files(identity_dir, VIDEO_EXTENSIONS, recursive=True):
        try:
            n = count_video_frames(video)
        except Exception as exc:  # noqa: BLE001 - any decoder error: keep one source that fails with the reason
            log.debug("cannot count frames of %s: %s", video, exc)
            n = 1
        sources += [(_rel(video, root), i) for i in range(0, n, every_n)]
    by_folder: dict[Path, list[Path]] = {}
    for image in _files(identity_dir, IMAGE_EXTENSIONS, recursive=True):
        by_folder.setdefault(image.parent, []).append(image)
    for folder in sorted(by_folder):
        sources += [_rel(p, root) for p in sorted(by_folder[folder])[::every_n]]
    return sources


def discover(root: str | os.PathLike[str], layout: str, every_n_frames: int = 10) -> dict[str, list[Source]]:
    """Identities -> their sources (paths relative to ``root``, or (video, frame) pairs), sorted by name.

    Raises ConfigError for a missing root or an unknown layout.
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not root.is_dir():
        raise ConfigError(f"input root {str(root)!r} is not a folder")
    if every_n_frames < 1:
        raise ConfigError(f"every_n_frames must be >= 1, got {every_n_frames}")
    out: dict[str, list[Source]] = {}
    if layout == "bupt":
        for image in _files(root, IMAGE_EXTENSIONS, recursive=True):
            if image.parent == root:
                log.warning("ignoring %s: images need an identity folder", image)
                continue
            out.setdefault(image.parent.name, []).append(_rel(image, root))
    else:
        for identity_dir in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p.name)):
            if layout == "vggface2":
                sources: list[Source] = [_rel(p, root) for p in _files(identity_dir, IMAGE_EXTENSIONS, False)]
            else:
                sources = _voxceleb_sources(identity_dir, root, every_n_frames)
            if sources:
                out[identity_dir.name] = sources
    return {k: sorted(out[k], key=_source_sort_key) for k in sorted(out)}


def _source_sort_key(source: Source) -> tuple[str, int]:
    return (source, -1) if isinstance(source, str) else (source[0], int(source[1]))


def source_name(source: Source) -> str:
    """A readable name: ``path`` or ``path@frame``."""
    return source if isinstance(source, str) else f"{source[0]}@{int(source[1])}"


# ----------------------------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (see :func:`decalite.io.images.load_image`). Raises SourceError."""
    try:
        return load_image(path)
    except InputError as err:
        raise SourceError(err.reason) from None


class VideoFrames:
    """Reads frames of videos, keeping the last video open (sources of one video come in a row)."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._reader = None

    def read(self, path: str | os.PathLike[str], index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame ``index`` of a video. Raises SourceError with the reason."""
        import imageio.v2 as iio

        try:
            if self._path != str(path):
                self.close()
                self._reader = iio.get_reader(str(path), format="FFMPEG")
                self._path = str(path)
                check_video_size(self._reader, Path(path))  # frame size checked before any frame is decoded
            frame = np.asarray(self._reader.get_data(int(index)))
        except InputError as err:
            self.close()
            raise SourceError(err.reason) from None
        except Exception as exc:  # noqa: BLE001 - ffmpeg errors come in many types
            self.close()
            raise SourceError(f"cannot decode video frame {index} ({type(exc).__name__}: {exc})") from None
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001
                pass
        self._reader, self._path = None, None


def load_source(root: Path, source: Source, videos: VideoFrames | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of one source. Raises SourceError with the reason."""
    if isinstance(source, str):
        return read_image(root / source)
    path, index = source
    return (videos or VideoFrames()).read(root / path, int(index))


# ----------------------------------------------------------------------------------------------- one face


@dataclass
class FaceCrop:
    """One prepared image: (S, S, 3) crop, (68, 2) crop landmarks, (S, S) mask, source box, detection."""

    image: np.ndarray
    landmarks: np.ndarray
    mask: np.ndarray
    crop_box: list[float]
    detection_box: list[float]
    score: float
    faces: int


MaskFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def crop_face(image: np.ndarray, landmarker, size: int, mask_fn: MaskFn) -> FaceCrop:
    """Detect the largest face of an (H, W, 3) uint8 image and crop it. Raises SourceError without a face."""
    from decalite.data.crop import square_crop, transform_points, warp
    from decalite.data.detect import largest_face

    try:
        detections = landmarker.detect(image)
    except Exception as exc:  # noqa: BLE001 - a detector crash fails this image only
        raise SourceError(f"{landmarker.name} detector failed ({type(exc).__name__}: {exc})") from None
    det = largest_face(detections)
    if det is None:
        raise SourceError(f"no face detected ({landmarker.name})")
    crop = square_crop(det.landmarks, CONTEXT_SCALE, size)
    cropped = warp(image, crop)
    lmk = transform_points(det.landmarks.astype(np.float64), crop.matrix).astype(np.float32)
    return FaceCrop(image=cropped, landmarks=lmk, mask=mask_fn(cropped, lmk), crop_box=crop.box.tolist(),
                    detection_box=[float(v) for v in det.box], score=float(det.score), faces=len(detections))


# ----------------------------------------------------------------------------------------------- planning


@dataclass
class ShardTask:
    """One shard to build: its name and identities with their sources, plus the settings workers need."""

    name: str
    identities: list[tuple[str, list[Source]]]
    fingerprint: str


def plan_shards(identities: dict[str, list[Source]], per_shard: int) -> list[tuple[str, list[str]]]:
    """Sorted identities grouped ``per_shard`` at a time: [(shard name, identities)]."""
    if per_shard < 1:
        raise ConfigError(f"identities_per_shard must be >= 1, got {per_shard}")
    names = sorted(identities)
    return [(SHARD_PATTERN.format(i // per_shard), names[i : i + per_shard]) for i in range(0, len(names), per_shard)]


def part_folder(output: str | os.PathLike[str], part: int, parts: int) -> Path:
    """Where part ``part`` of ``parts`` writes its shards and manifest: ``output/parts/part-<i>-of-<N>``."""
    return Path(output) / PARTS_DIR / PART_PATTERN.format(part, parts)


def check_part(part: int, parts: int) -> None:
    """ConfigError unless ``0 <= part < parts``."""
    if int(parts) < 1 or not 0 <= int(part) < int(parts):
        raise ConfigError(f"part={part} parts={parts}: parts must be >= 1 and 0 <= part < parts "
                          "(a SLURM array: part=$SLURM_ARRAY_TASK_ID parts=<array size>)")


def _file_stamp(path: Path) -> list[int]:
    try:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return [-1, -1]


def shard_fingerprint(root: Path, identities: list[tuple[str, list[Source]]], settings: dict[str, Any]) -> str:
    """sha256 over the shard's identities, sources (with size/mtime of their files) and content settings."""
    stamps: dict[str, list[int]] = {}
    items = []
    for identity, sources in identities:
        for s in sources:
            path = s if isinstance(s, str) else s[0]
            if path not in stamps:
                stamps[path] = _file_stamp(root / path)
        items.append([identity, [[source_name(s), *stamps[s if isinstance(s, str) else s[0]]] for s in sources]])
    blob = json.dumps({"format_version": FORMAT_VERSION, "settings": settings, "identities": items}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def content_settings(cfg: PrepareConfig, landmarker: str) -> dict[str, Any]:
    """The settings that change what a shard holds (part of every fingerprint and of the manifest)."""
    return {"layout": cfg.layout, "landmarker": landmarker,
            "fan_detector": cfg.fan_detector if landmarker == "fan" else None, "size": int(cfg.size),
            "context_scale": CONTEXT_SCALE, "min_images": int(cfg.min_images),
            "max_images_per_sample": int(cfg.max_images_per_sample), "every_n_frames": int(cfg.every_n_frames),
            "mask_model": str(cfg.mask.model) if cfg.mask.model else None,
            "mask_classes": [int(c) for c in cfg.mask.skin_classes] if cfg.mask.model else None}


# ----------------------------------------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


def _init_worker(cfg: PrepareConfig, landmarker: str, threads: int | None = 1) -> None:
    """Per-process state: a landmarker, the mask function and a video reader (also used in-process)."""
    from decalite.data.detect import make_landmarker
    from decalite.data.skin import FaceParsingMask, skin_mask

    if threads:
        import torch

        torch.set_num_threads(threads)
    _WORKER["landmarker"] = make_landmarker(landmarker, device=cfg.device, fan_detector=cfg.fan_detector)
    if cfg.mask.model:
        parser = FaceParsingMask(cfg.mask.model, cfg.mask.skin_classes, cfg.mask.input_size, device=cfg.device)
        _WORKER["mask"], _WORKER["mask_source"] = parser, parser.name
    else:
        _WORKER["mask"], _WORKER["mask_source"] = skin_mask, "landmarks+skin_colour"
    _WORKER["videos"] = VideoFrames()
    _WORKER["cfg"] = cfg


def _failure(source: Source, reason: str) -> dict[str, Any]:
    if isinstance(source, str):
        return {"file": source, "reason": reason}
    return {"file": source[0], "frame": int(source[1]), "reason": reason}


def _identity_samples(identity: str, faces: list[tuple[Source, FaceCrop]], cfg: PrepareConfig,
                      flags: list[str]) -> Iterator[IdentitySample]:
    """The usable images of one identity split evenly into chunks of at most ``max_images_per_sample``."""
    lm = _WORKER["landmarker"]
    n_chunks = -(-len(faces) // max(int(cfg.max_images_per_sample), 1))
    for chunk, part in enumerate(np.array_split(np.arange(len(faces)), n_chunks)):
        items = [faces[i] for i in part]
        meta = {
            "sources": [list(s) if not isinstance(s, str) else s for s, _ in items],
            "crop_boxes": [f.crop_box for _, f in items],
            "detection_boxes": [f.detection_box for _, f in items],
            "detection_scores": [f.score for _, f in items],
            "faces_found": [f.faces for _, f in items],
            "detector": getattr(lm, "detector", lm.name),
            "landmarker": lm.name,
            "mask_source": _WORKER["mask_source"],
            "context_scale": CONTEXT_SCALE,
            "flags": list(flags),
            "chunks": n_chunks,
            "identity_images": len(faces),
        }
        yield IdentitySample(identity=identity, images=np.stack([f.image for _, f in items]),
                             landmarks=np.stack([f.landmarks for _, f in items]),
                             masks=np.stack([f.mask for _, f in items]), meta=meta, chunk=chunk)


def build_shard(task: ShardTask, root: str, output: str) -> dict[str, Any]:
    """Build one shard in this process (after :func:`_init_worker`). Returns its record for the manifest."""
    cfg: PrepareConfig = _WORKER["cfg"]
    failures: list[dict[str, Any]] = []
    flagged: list[dict[str, Any]] = []
    counts = {"processed": 0}
    start = time.perf_counter()

    def samples() -> Iterator[IdentitySample]:
        for identity, sources in task.identities:
            faces = []
            for source in sources:
                counts["processed"] += 1
                try:
                    image = load_source(Path(root), source, _WORKER["videos"])
                    faces.append((source, crop_face(image, _WORKER["landmarker"], int(cfg.size), _WORKER["mask"])))
                except SourceError as exc:
                    failures.append(_failure(source, str(exc)))
                except Exception as exc:  # noqa: BLE001 - never let one file stop the run
                    failures.append(_failure(source, f"unexpected error ({type(exc).__name__}: {exc})"))
            flags = ["few_images"] if len(faces) < int(cfg.min_images) else []
            if flags:
                flagged.append({"identity": identity, "images": len(faces), "flags": flags})
            if faces:
                yield from _identity_samples(identity, faces, cfg, flags)

    info = write_shard(Path(output) / task.name, samples())
    _WORKER["videos"].close()
    return {"info": asdict(info), "fingerprint": task.fingerprint, "identities": [i for i, _ in task.identities],
            "failures": failures, "flagged": flagged, "processed": counts["processed"],
            "seconds": time.perf_counter() - start}


def _build_in_worker(args: tuple[ShardTask, str, str]) -> dict[str, Any]:
    return build_shard(*args)


# ----------------------------------------------------------------------------------------------- driver


def resolve_landmarker(cfg: PrepareConfig) -> str:
    """The landmarker name to build: ``fan``, or the configured dlib-predictor one (``auto`` without FAN's weights:
    ``yunet``); ConfigError when FAN is asked for without weights."""
    from decalite.data.detect import LANDMARKERS, fan_checkpoint_dir, missing_fan_weights

    if cfg.landmarker not in LANDMARKERS:
        raise ConfigError(f"landmarker must be one of {LANDMARKERS}, got {cfg.landmarker!r}")
    if cfg.landmarker not in ("auto", "fan"):
        return "dlib" if cfg.landmarker == "hog" else cfg.landmarker  # one name per detector: resumes match
    missing = missing_fan_weights(cfg.fan_detector)
    if not missing:
        log.info("landmarker: FAN (%s detector)", cfg.fan_detector)
        return "fan"
    names = ", ".join(p.name for p in missing)
    if cfg.landmarker == "fan":
        raise ConfigError(f"landmarker=fan but FAN weights are missing from {fan_checkpoint_dir()} "
                          f"($TORCH_HOME/hub/checkpoints): {names}")
    log.info("landmarker=auto: YuNet + dlib predictor (FAN weights not in %s: %s)", fan_checkpoint_dir(), names)
    return "yunet"


def _kept_shards(output: Path, plan: list[ShardTask], old: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Records of planned shards already on disk unchanged (same fingerprint and sha256)."""
    old_info = {s["name"]: s for s in old.get("shards", [])}
    old_records = old.get("shard_records", {})
    kept = {}
    for task in plan:
        info, record = old_info.get(task.name), old_records.get(task.name)
        path = output / task.name
        if (info and record and record.get("fingerprint") == task.fingerprint and path.is_file()
                and sha256_file(path) == info["sha256"]):
            kept[task.name] = {**record, "info": info}
    return kept


def _remove_stale(output: Path, plan: list[ShardTask]) -> None:
    """Delete shard files that are not in the plan and half-written temporaries of an interrupted run."""
    planned = {t.name for t in plan}
    for path in sorted(output.glob("prepared-*.tar")):
        if path.name not in planned:
            log.info("removing %s: no longer in the shard plan", path.name)
            path.unlink()
    for path in sorted(output.glob(".prepared-*.tar.tmp-*")):  # left by a killed run
        path.unlink()


def _save(output: Path, records: dict[str, dict[str, Any]], input_root: str, settings: dict[str, Any],
          part: dict[str, Any] | None = None) -> Path:
    """Write manifest.json and failures.jsonl for the finished shards (``part``: a part's number, count and
    planned shards, recorded in its manifest for :func:`merge_parts`)."""
    names = sorted(records)
    failures = [f for n in names for f in records[n]["failures"]]
    flagged = [f for n in names for f in records[n]["flagged"]]
    extra = {"source": "prepare", "input": input_root, "settings": settings,
             "shard_records": {n: {k: v for k, v in records[n].items() if k != "info"} for n in names}}
    if part is not None:
        extra["part"] = part
    path = write_manifest(output, [ShardInfo(**records[n]["info"]) for n in names], failures, flagged, extra)
    tmp = output / f".{FAILURES}.tmp-{os.getpid()}"
    tmp.write_text("".join(json.dumps(f, sort_keys=True) + "\n" for f in failures))
    os.replace(tmp, output / FAILURES)
    return path


def _run_tasks(todo: list[ShardTask], cfg: PrepareConfig, landmarker: str, output: Path) -> Iterator[dict[str, Any]]:
    """Build shards in-process (workers=0) or in a spawn pool; yields records as shards finish."""
    args = [(t, str(cfg.input), str(output)) for t in todo]
    workers = min(int(cfg.workers), len(todo))
    if workers <= 0:
        _init_worker(cfg, landmarker, threads=None)
        for a in args:
            yield _build_in_worker(a)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, landmarker, 1)) as pool:
        yield from pool.imap_unordered(_build_in_worker, args)


def prepare(cfg: PrepareConfig) -> PrepareSummary:
    """Turn ``cfg.input`` into shards under ``cfg.output`` (resumable), or its part ``cfg.part`` of ``cfg.parts``
    into :func:`part_folder`. Raises ConfigError for bad settings."""
    from tqdm import tqdm

    start = time.perf_counter()
    check_part(cfg.part, cfg.parts)
    split = int(cfg.parts) > 1
    root = Path(cfg.input)
    output = part_folder(cfg.output, cfg.part, cfg.parts) if split else Path(cfg.output)
    identities = discover(root, cfg.layout, int(cfg.every_n_frames))
    if int(cfg.size) < 16:
        raise ConfigError(f"size must be >= 16, got {cfg.size}")
    if cfg.mask.model and not Path(cfg.mask.model).expanduser().is_file():
        raise ConfigError(f"mask.model {cfg.mask.model!r} does not exist (null: landmark/skin-colour fallback)")
    landmarker = resolve_landmarker(cfg)
    settings = content_settings(cfg, landmarker)
    plan = [ShardTask(name, [(i, identities[i]) for i in names],
                      shard_fingerprint(root, [(i, identities[i]) for i in names], settings))
            for name, names in plan_shards(identities, int(cfg.identities_per_shard))]
    part = None
    if split:  # every parts-th shard of the whole plan, names unchanged
        plan = plan[int(cfg.part)::int(cfg.parts)]
        part = {"part": int(cfg.part), "parts": int(cfg.parts), "planned": [t.name for t in plan]}
        log.info("part %d of %d: %d shard(s) into %s", cfg.part, cfg.parts, len(plan), output)
    input_root = str(root.resolve())
    output.mkdir(parents=True, exist_ok=True)
    records = _kept_shards(output, plan, read_manifest(output))
    _remove_stale(output, plan)
    todo = [t for t in plan if t.name not in records]
    log.info("%d identities, %d sources in %d shards: %d to build, %d kept from an earlier run",
             len(identities), sum(len(s) for s in identities.values()), len(plan), len(todo), len(records))
    manifest = _save(output, records, input_root, settings, part)
    written, processed = [], 0
    with tqdm(total=len(todo), unit="shard", desc="prepare", disable=not cfg.progress) as bar:
        for record in _run_tasks(todo, cfg, landmarker, output):
            name = record["info"]["name"]
            records[name] = record
            written.append(name)
            processed += record["processed"]
            manifest = _save(output, records, input_root, settings, part)
            bar.update(1)
    failures = [f for n in sorted(records) for f in records[n]["failures"]]
    flagged = [f for n in sorted(records) for f in records[n]["flagged"]]
    data = read_manifest(output)
    summary = PrepareSummary(manifest=manifest, images=int(data["images"]), identities=int(data["identities"]),
                             failures=failures, flagged=flagged, written=sorted(written),
                             skipped=sorted(n for n in records if n not in written),
                             seconds=time.perf_counter() - start, processed_images=processed)
    log.info("%d images, %d identities, %d failures (see %s)", summary.images, summary.identities,
             len(failures), manifest)
    return summary


def merge_parts(output: str | os.PathLike[str]) -> PrepareSummary:
    """Merge the parts under ``output/parts/`` (see :func:`prepare` with ``parts > 1``) into ``output``: their
    shards hard-linked (copied across file systems) and one manifest and failures list, as one run would write.

    Raises:
        ConfigError: no parts, a part missing or unfinished, or parts prepared from other inputs or settings; the
            message names the part and the command that finishes it.
    """
    start = time.perf_counter()
    output = Path(output)
    folders = sorted(p for p in (output / PARTS_DIR).glob("part-*-of-*") if p.is_dir())
    if not folders:
        raise ConfigError(f"{output / PARTS_DIR} holds no parts: prepare them first with part=i parts=N "
                          f"output={output}")
    manifests = {f: read_manifest(f) for f in folders}
    counts = {m.get("part", {}).get("parts") for m in manifests.values()}
    if len(counts) != 1 or None in counts:
        raise ConfigError(f"{output / PARTS_DIR}: parts of different splits ({sorted(f.name for f in folders)}); "
                          "delete the folders of the old split")
    parts = counts.pop()
    done = {m["part"]["part"]: (f, m) for f, m in manifests.items()}
    missing = [i for i in range(parts) if i not in done]
    if missing:
        raise ConfigError(f"{output / PARTS_DIR}: part(s) {missing} of {parts} not prepared: run decalite-prepare "
                          f"part=<i> parts={parts} output={output} (same input and settings) for each")
    first = done[0][1]
    records: dict[str, dict[str, Any]] = {}
    for i in range(parts):
        folder, manifest = done[i]
        for key in ("input", "settings"):
            if manifest.get(key) != first.get(key):
                raise ConfigError(f"{folder}: prepared with another {key} than part 0 ({manifest.get(key)!r} vs "
                                  f"{first.get(key)!r}); rerun this part with part 0's")
        finished = {s["name"] for s in manifest["shards"]}
        unfinished = [n for n in manifest["part"]["planned"] if n not in finished]
        if unfinished:
            raise ConfigError(f"{folder}: {len(unfinished)} of {len(manifest['part']['planned'])} shards unfinished "
                              f"(e.g. {unfinished[0]}): rerun decalite-prepare part={i} parts={parts} "
                              f"output={output} with the same input (it resumes)")
        for info in manifest["shards"]:
            records[info["name"]] = {**manifest["shard_records"][info["name"]], "info": info}
    expected = [SHARD_PATTERN.format(j) for j in range(len(records))]
    if sorted(records) != expected:
        raise ConfigError(f"{output / PARTS_DIR}: the parts' shards are not one plan ({len(records)} shards, names "
                          f"{sorted(records)[:3]}...); prepare every part from the same input")
    for name in expected:
        part_file = done[expected.index(name) % parts][0] / name
        _link(part_file, output / name)
    _remove_stale(output, [ShardTask(n, [], "") for n in expected])
    manifest = _save(output, records, first["input"], first["settings"])
    failures = [f for n in expected for f in records[n]["failures"]]
    flagged = [f for n in expected for f in records[n]["flagged"]]
    data = read_manifest(output)
    log.info("merged %d part(s): %d shards, %d images, %d identities into %s", parts, len(expected), data["images"],
             data["identities"], output)
    return PrepareSummary(manifest=manifest, images=int(data["images"]), identities=int(data["identities"]),
                          failures=failures, flagged=flagged, written=expected, seconds=time.perf_counter() - start)


def _link(source: Path, target: Path) -> None:
    """``target`` becomes the same file as ``source`` (a hard link; a copy across file systems), atomically."""
    import shutil

    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
