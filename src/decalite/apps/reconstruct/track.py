"""Video with a stable track (``decalite-reconstruct input=clip.mp4 track=true``): one person followed through the
frames, one shape, albedo and detail code for the whole clip, and smooth motion.

1. **Track**: the face is detected in the first frame (the most prominent one); in each next frame dlib's predictor
   runs on the box its mean shape fits to the previous frame's landmarks (:func:`decalite.data.detect.
   track_landmarks`), with no detector, so the same person is followed. The detector runs again when the track is
   lost (landmarks leave the frame or the face's size jumps) or when the landmarker has no dlib predictor (FAN).
   The crops follow the landmarks smoothed over time (one-euro, :data:`CROP_SMOOTHING`), so they do not shake with
   the landmarks' noise; each frame keeps its own landmarks as the fit's targets.
2. **Fit**: all frames as one person (:func:`decalite.apps.fitting.fit_identity`, as ``identity=true`` does for
   photos): one shape and albedo code, each frame keeping its expression, pose, camera and light; a trained detail
   code is averaged over the frames.
3. **Smooth**: expression, pose (head and jaw) and camera filtered over time with the one-euro filter
   (:func:`decalite.apps.smoothing.one_euro`; ``smooth_min_cutoff`` Hz, ``smooth_beta``; ``smooth=false`` keeps
   the per-frame fit).

Writes ``<clip>_track.mp4`` (the face crop beside the textured and the shape render), ``<clip>_codes.npz`` (one row
per frame, with each frame's crop matrix), ``<clip>_neutral.obj``, ``<clip>.glb`` with the motion as its animation
clip (when ``save.gltf``), and ``<clip>_track.json``: frames, re-detections, and the jitter (mean frame-to-frame
motion of the 68 landmarks, photo pixels) before and after smoothing.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from decalite.apps.animate import write_animation
from decalite.apps.export import write_mesh
from decalite.apps.fitting import FitConfig
from decalite.apps.reconstruct.coordinates import crop_to_photo, photo_landmarks
from decalite.apps.reconstruct.faces import Face, detect_faces, face_from_landmarks
from decalite.apps.reconstruct.inference import infer
from decalite.apps.reconstruct.writers import check_output_dir
from decalite.apps.smoothing import one_euro
from decalite.config import ReconstructConfig
from decalite.flame.assets import FlameAssets
from decalite.io.codes import save_codes
from decalite.io.images import InputError
from decalite.io.inputs import InputItem, expand_inputs, video_fps
from decalite.model.deca import DECA
from decalite.types import FaceCode

log = logging.getLogger(__name__)

#: A tracked face whose landmark box grows or shrinks by more than this factor in one frame is re-detected.
MAX_SCALE_JUMP = 1.5
#: The frame rate assumed for a folder of frames or a video that declares none.
DEFAULT_FPS = 25.0
#: The one-euro filter (min_cutoff Hz, beta per pixel/s) of the landmarks the crops are placed on.
CROP_SMOOTHING = (1.0, 0.01)


@dataclass
class Track:
    """The tracked faces (one per frame, in order), the frames that failed, and the frames re-detected."""

    faces: list[Face]
    failures: list[dict[str, str]]
    detections: list[int]


def _lost(landmarks: np.ndarray, previous: np.ndarray, image: np.ndarray) -> bool:
    """Whether a tracked face is lost: its landmarks leave the frame, or its size jumps."""
    h, w = image.shape[:2]
    if (landmarks < -0.05 * w).any() or (landmarks[:, 0] > 1.05 * w).any() or (landmarks[:, 1] > 1.05 * h).any():
        return True
    size = lambda p: float(np.ptp(p, axis=0).max())  # noqa: E731
    ratio = size(landmarks) / max(size(previous), 1e-6)
    return not (1.0 / MAX_SCALE_JUMP < ratio < MAX_SCALE_JUMP)


def track_faces(items: list[InputItem], landmarker, scale: float, size: int, fps: float = DEFAULT_FPS) -> Track:
    """Follow one face through ``items`` (frames in order, ``fps``): detect once, then track, then crop on the
    smoothed track (see the module's docs)."""
    from decalite.data.detect import track_landmarks

    found_in: list[tuple[InputItem, np.ndarray, np.ndarray]] = []
    failures, detections = [], []
    previous: np.ndarray | None = None
    for item in items:
        try:
            image = item.load()
            found = track_landmarks(landmarker, image, previous) if previous is not None else None
            if found is None or _lost(found, previous, image):
                face = detect_faces(item, image, landmarker, False, scale, size=size)[0]
                found = crop_to_photo(face.landmarks_px, face.crop_matrix)
                detections.append(len(found_in))
            found_in.append((item, image, found))
            previous = found
        except InputError as err:
            failures.append({"file": f"{err.path}#frame{item.frame}" if item.frame is not None else str(err.path),
                             "reason": err.reason})
            previous = None  # detect again in the next frame
    if not found_in:
        return Track([], failures, detections)
    track = torch.from_numpy(np.stack([f for _, _, f in found_in]).reshape(len(found_in), -1)).double()
    steady = one_euro(track, fps, *CROP_SMOOTHING).reshape(-1, 68, 2).numpy()
    name = getattr(landmarker, "name", "none")
    faces = [face_from_landmarks(item, image, found, scale, size, name, crop_landmarks=steady[t])
             for t, (item, image, found) in enumerate(found_in)]
    return Track(faces, failures, detections)


def smooth_code(code: FaceCode, fps: float, min_cutoff: float, beta: float) -> FaceCode:
    """The code (T frames) with expression, pose and camera filtered over time (one-euro); the rest unchanged."""
    out = code.map(lambda t: t.clone())
    for name in ("exp", "pose", "cam"):
        value = getattr(code, name)
        setattr(out, name, one_euro(value.detach().double().cpu(), fps, min_cutoff, beta).to(value))
    return out


def landmark_jitter(points: np.ndarray) -> float:
    """Mean frame-to-frame motion (T, 68, 2) -> pixels: the mean over frames and landmarks of |p_t - p_(t-1)|."""
    if len(points) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(points, axis=0), axis=-1).mean())


def _photo_points(deca: DECA, faces: list[Face], code: FaceCode) -> np.ndarray:
    """(T, 68, 2) the code's landmarks in each frame's pixels."""
    with torch.no_grad():
        lmk = deca.geometry(code)[1].cpu().numpy()
    return np.stack([photo_landmarks(f, lmk[t]) for t, f in enumerate(faces)])


def run_tracked(deca: DECA, assets: FlameAssets, landmarker, cfg: ReconstructConfig) -> dict[str, Any]:
    """``track=true``: reconstruct ``cfg.input`` (a video, or a folder of frames in name order) as one tracked
    person into ``cfg.output``; returns (and writes) the summary."""
    out_dir = Path(cfg.output)
    check_output_dir(out_dir)
    if landmarker is None:
        raise InputError(cfg.input, "track=true follows landmarks: set landmarks= to a detector (not none)")
    items, failures = expand_inputs(cfg.input, every_n_frames=cfg.every_n_frames)
    fps = (video_fps(Path(str(cfg.input))) or DEFAULT_FPS) / cfg.every_n_frames
    start = time.perf_counter()
    track = track_faces(items, landmarker, cfg.crop_scale, deca.renderer.image_size, fps)
    failures += track.failures
    stem = Path(str(cfg.input)).stem or "clip"
    summary: dict[str, Any] = {"output": str(out_dir), "frames": len(track.faces), "failures": failures,
                               "detections": len(track.detections), "reconstructed": []}
    if len(track.faces) < 2:
        raise InputError(cfg.input, f"track=true needs at least 2 frames with the face; found {len(track.faces)}")
    trained = bool(cfg.model.checkpoint)
    fit_cfg = FitConfig(steps=cfg.fit_steps, lr=cfg.fit_lr, lr_end=cfg.fit_lr_end, terms=dict(cfg.fit_loss.terms))
    code, before, after = infer(deca, track.faces, trained, fit_cfg, identity=True)
    if code.detail is not None:  # one detail code for the person
        code.detail = code.detail.mean(0, keepdim=True).expand_as(code.detail).clone()
    raw_points = _photo_points(deca, track.faces, code)
    if cfg.smooth:
        code = smooth_code(code, fps, cfg.smooth_min_cutoff, cfg.smooth_beta)
    points = _photo_points(deca, track.faces, code)
    files = _write_outputs(deca, assets, track.faces, code, out_dir, stem, fps, trained, cfg)
    summary.update({
        "fps": fps, "seconds": round(time.perf_counter() - start, 2), "files": [str(f) for f in files],
        "landmark_error_before": None if before is None else round(float(before.mean()), 5),
        "landmark_error_after": None if after is None else round(float(after.mean()), 5),
        "jitter_px_fit": round(landmark_jitter(raw_points), 4),
        "jitter_px": round(landmark_jitter(points), 4),
        "smoothing": {"on": cfg.smooth, "min_cutoff": cfg.smooth_min_cutoff, "beta": cfg.smooth_beta},
    })
    summary["reconstructed"] = [{"name": stem, "source": str(cfg.input), "files": summary["files"]}]
    (out_dir / f"{stem}_track.json").write_text(json.dumps(summary, indent=1))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _write_outputs(deca: DECA, assets: FlameAssets, faces: list[Face], code: FaceCode, out_dir: Path, stem: str,
                   fps: float, trained: bool, cfg: ReconstructConfig) -> list[Path]:
    files = [save_codes(out_dir / f"{stem}_codes.npz", code,
                        extra={"crop_matrix": np.stack([f.crop_matrix for f in faces]).astype(np.float64)})]
    with torch.no_grad():
        neutral = deca.flame(shape=code.shape[:1])
    files.append(out_dir / f"{stem}_neutral.obj")
    write_mesh(files[-1], neutral.vertices[0].cpu().numpy(), deca.renderer.faces.cpu().numpy())
    frames = []
    for first in range(0, len(faces), cfg.batch_size):
        part = code.map(lambda t: t[first : first + cfg.batch_size])
        crops = torch.from_numpy(np.stack([f.crop for f in faces[first : first + cfg.batch_size]]))
        crops = crops.permute(0, 3, 1, 2).float().div(255.0).to(part.exp.device)
        with torch.no_grad():
            out = deca.decode(part, detail=trained and part.detail is not None, background=crops)
            image = out.render.image if out.render.image_detail is None else out.render.image_detail
            shape = deca.renderer.render_shape(out.vertices, part.cam, out.displacement, crops,
                                               fragments=out.render.fragments).best
        strip = torch.cat([crops, image.clamp(0, 1), shape], dim=3)  # (B, 3, S, 3S)
        frames.append((strip.permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8))
    files += write_animation(np.concatenate(frames), out_dir / f"{stem}_track", fps=fps, gif=False)
    if cfg.save.gltf:
        from decalite.apps.gltf import export_animation_glb

        files.append(export_animation_glb(out_dir / f"{stem}.glb", deca, assets.uv, code, fps, trained,
                                          assets.model.expression_names))
    return files
