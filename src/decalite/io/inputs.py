"""Expanding a user's ``input=`` into items: an image, a folder, a list file (one path per line), a video
(sampled every n frames) or a camera (``webcam`` or ``webcam:N``: :data:`WEBCAM_SECONDS` of the N-th camera).
Problems with one input become failure records; the others go on.

Videos are bounded like images: a frame size beyond :data:`~decalite.io.images.MAX_PIXELS` is refused before any
frame is decoded, and at most :data:`MAX_VIDEO_BYTES` of sampled frames are kept per video."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from decalite.io.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, InputError, load_image, pixel_problem

log = logging.getLogger(__name__)

#: Decoded frames kept per video (1080p: about 340 frames); later frames are skipped with a warning.
MAX_VIDEO_BYTES = 2 << 30
#: How long ``input=webcam`` records (seconds of the camera's frames, before every_n_frames sampling).
WEBCAM_SECONDS = 10.0


def webcam_index(spec: str | Path) -> int | None:
    """The camera index of ``webcam`` (0) or ``webcam:N``; None for any other input."""
    text = str(spec)
    if text == "webcam":
        return 0
    if text.startswith("webcam:") and text[7:].isdigit():
        return int(text[7:])
    return None


def webcam_frames(index: int, every_n_frames: int = 1, seconds: float = WEBCAM_SECONDS,
                  fps_fallback: float = 25.0) -> list[tuple[int, np.ndarray]]:
    """Record ``seconds`` from camera ``index`` (ffmpeg's video4linux2 device ``/dev/video<index>`` on Linux) as
    (index, (H, W, 3) uint8) every n-th frame. Raises InputError naming the device when there is no camera."""
    import imageio.v2 as imageio

    device = Path(f"/dev/video{index}")
    if Path("/dev").is_dir() and not device.exists():
        raise InputError(f"webcam:{index}", f"no camera at {device}: connect one, or pass a video file (input=clip.mp4)")
    try:
        reader = imageio.get_reader(f"<video{index}>", "ffmpeg")
    except Exception as exc:  # noqa: BLE001 - imageio raises many types for devices
        raise InputError(f"webcam:{index}", f"the camera cannot be opened ({type(exc).__name__}: {exc})") from None
    frames = []
    try:
        total = int(seconds * float(reader.get_meta_data().get("fps") or fps_fallback))
        for i, frame in enumerate(reader):
            if i >= total:
                break
            if i % every_n_frames == 0:
                frames.append((i, np.asarray(frame)[..., :3].astype(np.uint8)))
    finally:
        reader.close()
    if not frames:
        raise InputError(f"webcam:{index}", "the camera gave no frames")
    return frames


@dataclass
class InputItem:
    """One image to process: a file, or a frame of a video (``frame`` set, pixels decoded in ``array``)."""

    name: str
    path: Path
    frame: int | None = None
    array: np.ndarray | None = None

    def load(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB. Raises InputError."""
        return self.array if self.array is not None else load_image(self.path)


def check_video_size(reader: Any, path: Path) -> None:
    """Refuse a video whose declared frame size is beyond MAX_PIXELS, before a frame is decoded (InputError)."""
    size = reader.get_meta_data().get("size")
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise InputError(path, "the video declares no frame size; re-encode it as H.264 MP4")
    problem = pixel_problem((int(size[0]), int(size[1])))
    if problem:
        raise InputError(path, f"video frames: {problem}")


def video_frames(path: Path, every_n_frames: int = 10) -> list[tuple[int, np.ndarray]]:
    """Decode every n-th frame of a video as (index, (H, W, 3) uint8). Raises InputError (no frames, unreadable,
    frames too large); keeps at most MAX_VIDEO_BYTES of frames (a warning names the video when it stops early)."""
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(str(path), "ffmpeg")
    except Exception as exc:  # noqa: BLE001 - imageio raises many types for bad videos
        raise InputError(path, f"unreadable video ({type(exc).__name__}: {exc}); re-encode it as H.264 MP4") from None
    frames, kept = [], 0
    try:
        check_video_size(reader, path)
        for i, frame in enumerate(reader):
            if i % every_n_frames:
                continue
            if kept >= MAX_VIDEO_BYTES:
                log.warning("%s: kept the first %d sampled frames (%d bytes, the limit); raise every_n_frames to "
                            "cover the whole video", path, len(frames), MAX_VIDEO_BYTES)
                break
            frames.append((i, np.asarray(frame)[..., :3].astype(np.uint8)))
            kept += frames[-1][1].nbytes
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated stream ends the video; keep what decoded
        log.warning("%s: video decoding stopped at a broken frame (%s)", path, exc)
    finally:
        reader.close()
    if not frames:
        raise InputError(path, "the video has no decodable frames")
    return frames


def video_fps(path: Path) -> float | None:
    """The frame rate a video declares, or None (not a video, unreadable, or none declared)."""
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        return None
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(str(path), "ffmpeg")
    except Exception:  # noqa: BLE001 - expand_inputs reports unreadable videos
        return None
    try:
        fps = reader.get_meta_data().get("fps")
    finally:
        reader.close()
    return float(fps) if fps else None


def _files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)


def expand_inputs(spec: str | Path, every_n_frames: int = 10) -> tuple[list[InputItem], list[dict[str, str]]]:
    """Items to process and failure records ({"file", "reason"}) for inputs that cannot be expanded."""
    camera = webcam_index(spec)
    if camera is not None:
        try:
            return [InputItem(name=f"webcam{camera}_f{i:06d}", path=Path(f"webcam{camera}"), frame=i, array=frame)
                    for i, frame in webcam_frames(camera, every_n_frames)], []
        except InputError as err:
            return [], [{"file": str(err.path), "reason": err.reason}]
    spec = Path(spec)
    failures: list[dict[str, str]] = []
    if spec.is_dir():
        paths = _files_in(spec)
        if not paths:
            failures.append({"file": str(spec), "reason": f"no images or videos ({', '.join(IMAGE_SUFFIXES)}) in folder"})
    elif spec.suffix.lower() in (".txt", ".lst", ".list"):
        if not spec.is_file():
            return [], [{"file": str(spec), "reason": "list file not found"}]
        paths = [Path(line.strip()) for line in spec.read_text().splitlines() if line.strip() and not line.startswith("#")]
        paths = [p if p.is_absolute() else spec.parent / p for p in paths]
    else:
        paths = [spec]
    items: list[InputItem] = []
    for p in paths:
        if p.suffix.lower() in VIDEO_SUFFIXES:
            try:
                for index, frame in video_frames(p, every_n_frames):
                    items.append(InputItem(name=f"{p.stem}_f{index:06d}", path=p, frame=index, array=frame))
            except InputError as err:
                failures.append({"file": str(p), "reason": err.reason})
        elif not p.exists():
            failures.append({"file": str(p), "reason": "file not found"})
        else:
            items.append(InputItem(name=p.stem, path=p))
    names: dict[str, int] = {}
    for item in items:  # keep output names unique (same stem in different folders)
        count = names.get(item.name, 0)
        names[item.name] = count + 1
        if count:
            item.name = f"{item.name}_{count}"
    return items, failures
