"""Photos to detailed, animatable heads: detect, crop (DECA's 1.25 x landmark box), encode and/or fit, export.

Crops are S x S with S the renderer's image size (``renderer.image_size``; 224 as DECA by default), so the
encoder, the photometric fit and the renders all see the same pixels.

Every input is processed on its own terms: a bad file, a photo without a face or a failing step becomes a
failure record with the reason, and the other inputs still complete. ``run`` returns a summary whose
``failures`` list is empty when everything worked.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.utils import make_grid, save_image

from decalite.config import ReconstructConfig, SaveConfig
from decalite.data.crop import Crop, square_crop, transform_points, warp
from decalite.deca import DECA
from decalite.export import (
    extract_texture,
    now_landmarks,
    save_png,
    write_arkit_json,
    write_mesh,
    write_textured_obj,
)
from decalite.flame.arkit import is_arkit_head
from decalite.fitting import FitConfig, IdentityFitConfig, fit, fit_identity, mean_face_code
from decalite.flame.assets import FlameAssets
from decalite.geometry.camera import ndc_to_pixels, orthographic_project
from decalite.io.images import InputError
from decalite.io.inputs import InputItem, expand_inputs
from decalite.losses.landmark import normalised_landmark_error
from decalite.render.stages import draw_points
from decalite.render.uv_space import dense_detail_mesh
from decalite.types import FaceCode

log = logging.getLogger(__name__)
CROP_SCALE = 1.25


@dataclass
class Face:
    """One face to reconstruct: an S x S crop (S: the renderer's image size), its landmarks and where it came from."""

    name: str
    source: str
    crop: np.ndarray  # (S, S, 3) uint8
    landmarks_px: np.ndarray | None  # (68, 2) pixel-index coordinates in the crop
    crop_box: list[float] | None = None
    detector: str = "none"
    crop_matrix: np.ndarray | None = None  # (2, 3) photo pixel indices -> crop pixel indices
    photo: np.ndarray | None = field(default=None, repr=False)  # (H, W, 3) uint8, the photo the crop came from

    @property
    def landmarks(self) -> np.ndarray | None:
        """(68, 2) image-normalised landmarks of the crop ([-1, 1], +y down)."""
        if self.landmarks_px is None:
            return None
        return (self.landmarks_px + 0.5) / self.crop.shape[0] * 2.0 - 1.0


@dataclass
class Outcome:
    """Per-face result record for the summary."""

    name: str
    source: str
    files: list[str] = field(default_factory=list)
    landmark_error_before: float | None = None
    landmark_error_after: float | None = None


def landmarker_for(name: str):
    """The configured face detector + 68-point landmarker ("auto", "fan", "yunet", "dlib_cnn", "hog" / "dlib"),
    or None for "none"."""
    if name == "none":
        return None
    from decalite.data.detect import make_landmarker

    return make_landmarker(name)


def detect_faces(item: InputItem, image: np.ndarray, landmarker, all_faces: bool, scale: float = CROP_SCALE, *,
                 size: int) -> list[Face]:
    """size x size crops of the most prominent face (size and detector score), or of all faces, most prominent
    first; ``size`` is the renderer's image size.

    Without a landmarker the whole image is resized to the crop. Raises InputError when no face is found.
    """
    if landmarker is None:
        crop = Crop(box=np.array([0, 0, image.shape[1], image.shape[0]], float),
                    matrix=np.array([[size / image.shape[1], 0, 0], [0, size / image.shape[0], 0]]), size=size)
        return [Face(item.name, str(item.path), warp(image, crop), None, crop.box.tolist(), "none", crop.matrix, image)]
    detections = _detect_scaled(landmarker, image)
    if not detections:
        raise InputError(item.path, f"no face found by the {getattr(landmarker, 'detector', landmarker.name)} detector")
    from decalite.data.detect import most_prominent_face, rank_faces

    detections = rank_faces(detections) if all_faces else [most_prominent_face(detections)]
    faces = []
    for i, det in enumerate(detections):
        crop = square_crop(det.landmarks, scale, size)
        name = item.name if i == 0 and not all_faces else f"{item.name}_face{i}"
        faces.append(Face(name, str(item.path), warp(image, crop), transform_points(det.landmarks, crop.matrix),
                          crop.box.tolist(), landmarker.name, crop.matrix, image))
    return faces


DETECT_MAX_SIDE = 1024


def _detect_scaled(landmarker, image: np.ndarray) -> list:
    """Detect on a copy no larger than DETECT_MAX_SIDE (detectors slow down with the square of the size), then
    scale boxes and landmarks back to the full image, which is what gets cropped."""
    factor = max(image.shape[:2]) / DETECT_MAX_SIDE
    if factor <= 1.0:
        return landmarker.detect(image)
    from PIL import Image

    small = np.asarray(Image.fromarray(image).resize((round(image.shape[1] / factor), round(image.shape[0] / factor)),
                                                    Image.Resampling.BILINEAR))
    detections = landmarker.detect(small)
    for det in detections:
        det.box = np.asarray(det.box, dtype=np.float64) * factor
        det.landmarks = (np.asarray(det.landmarks, dtype=np.float64) + 0.5) * factor - 0.5
    return detections


def _skin_masks(faces: list[Face], device) -> torch.Tensor | None:
    try:
        from decalite.data.skin import skin_mask
    except ImportError:  # pragma: no cover - the data package ships it
        return None
    masks = [skin_mask(f.crop, f.landmarks_px) for f in faces]
    return torch.from_numpy(np.stack(masks)).float().div(255.0)[:, None].to(device)  # (B, H, W) -> (B, 1, H, W)


def infer(deca: DECA, faces: list[Face], trained: bool, fit_cfg: FitConfig,
          identity: bool = False) -> tuple[FaceCode, torch.Tensor | None, torch.Tensor | None]:
    """Codes for a batch of faces: the encoder's (when trained), refined by fitting when there are landmarks.

    ``identity``: the faces are one person: :func:`~decalite.fitting.fit_identity` (one shape and albedo for all,
    ``fit_cfg``'s steps, learning rate and weights after a first stage on camera and head pose).

    Returns the code and the normalised landmark errors before and after fitting (None without landmarks).
    """
    device = next(deca.parameters()).device
    images = torch.from_numpy(np.stack([f.crop for f in faces])).permute(0, 3, 1, 2).float().div(255.0).to(device)
    have_lmk = all(f.landmarks is not None for f in faces)
    lmk = torch.from_numpy(np.stack([f.landmarks for f in faces])).float().to(device) if have_lmk else None
    with torch.no_grad():
        code = deca.encode(images, detail=trained) if trained else None
    if lmk is None:
        if code is None:
            raise ValueError("no landmarks (landmarks=none) and no trained checkpoint: nothing to reconstruct from")
        return code, None, None
    if code is None:
        code = mean_face_code(deca, lmk)
    if fit_cfg.steps <= 0:
        with torch.no_grad():
            err = normalised_landmark_error(deca.geometry(code)[1], lmk)
        return code, err, err
    masks = _skin_masks(faces, device) if fit_cfg.terms.get("photometric", 0.0) > 0 else None
    if identity:
        id_cfg = IdentityFitConfig(steps=fit_cfg.steps, lr=fit_cfg.lr, terms=dict(fit_cfg.terms),
                                   photometric_after=fit_cfg.photometric_after)
        result = fit_identity(deca, images, lmk, masks, cfg=id_cfg, init=code if trained else None)
    else:
        result = fit(deca, images, lmk, masks, init=code, cfg=fit_cfg)
    return result.code, result.error_before, result.error_after


def _vis_grid(face: Face, image: torch.Tensor, out, deca: DECA, code: FaceCode, b: int) -> torch.Tensor:
    """input | landmarks (detected green, fitted red) | coarse shape | detailed shape | rendered image."""
    size = deca.renderer.image_size
    fitted = ndc_to_pixels(orthographic_project(out.landmarks2d_model[b : b + 1], code.cam[b : b + 1])[..., :2], size, size)
    with_lmk = image[None]
    if face.landmarks_px is not None:
        detected = torch.from_numpy(face.landmarks_px + 0.5).float()[None] * (size / face.crop.shape[0])
        with_lmk = draw_points(with_lmk, detected, color=(0.1, 0.9, 0.1))
    with_lmk = draw_points(with_lmk, fitted.cpu().float(), color=(0.9, 0.1, 0.1))
    verts, cam = out.vertices[b : b + 1], code.cam[b : b + 1]
    coarse = deca.renderer.render_shape(verts, cam, background=image[None].to(verts.device))
    disp = out.displacement[b : b + 1] if out.displacement is not None else None
    detailed = deca.renderer.render_shape(verts, cam, displacement=disp, background=image[None].to(verts.device)) \
        if disp is not None else coarse
    rendered = out.render.image[b : b + 1].clamp(0, 1)
    alpha = out.render.alpha[b : b + 1]
    rendered = rendered * alpha + image[None].to(alpha.device) * (1 - alpha)
    return make_grid(torch.cat([image[None].cpu(), with_lmk.cpu(), coarse.cpu(), detailed.cpu(), rendered.cpu()]),
                     nrow=5, padding=2, pad_value=1.0)


def crop_to_photo(points_px: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(..., 2) crop pixel indices -> photo pixel indices, through the inverse of the 2x3 photo -> crop ``matrix``."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    return transform_points(points_px, inverse)


def normalised_to_pixels(points: np.ndarray, size: int) -> np.ndarray:
    """(..., 2) image-normalised points ([-1, 1], +y down) of a size x size image -> pixel indices (centres at
    integers), the inverse of :attr:`Face.landmarks`."""
    return (points + 1.0) * 0.5 * size - 0.5


def photo_landmarks(face: Face, landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) crop-normalised landmarks of ``face`` -> pixel indices of the photo it was cropped from."""
    return crop_to_photo(normalised_to_pixels(landmarks, face.crop.shape[0]), face.crop_matrix)


def paste_render(photo: np.ndarray, render: torch.Tensor, alpha: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """A crop's render composited over the full photo (DECA's ``render_orig``): the (3, S, S) render and its
    (1, S, S) alpha are warped back through the inverse of the photo -> crop ``matrix`` (kornia). Returns
    (3, H, W) in [0, 1]; pixels the render does not cover keep the photo's values."""
    import kornia

    h, w = photo.shape[:2]
    m = kornia.geometry.transform.invert_affine_transform(torch.from_numpy(matrix).float()[None])
    rgba = torch.cat([render.detach().float().cpu(), alpha.detach().float().cpu()])[None]
    back = kornia.geometry.transform.warp_affine(rgba, m, (h, w), mode="bilinear", padding_mode="zeros",
                                                 align_corners=True)[0]
    image = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1).float().div(255.0)  # (H, W, 3) -> (3, H, W)
    a = back[3:].clamp(0, 1)
    return back[:3].clamp(0, 1) * a + image * (1 - a)


def _vis_original(face: Face, out, b: int) -> torch.Tensor:
    """(3, H, W) photo with the face's render pasted back and the fitted (red) and detected (green) landmarks."""
    render = out.render.image[b].clamp(0, 1)
    image = paste_render(face.photo, render, out.render.alpha[b], face.crop_matrix)[None]
    radius = max(1, round(max(face.photo.shape[:2]) / 400))
    if face.landmarks_px is not None:
        detected = crop_to_photo(face.landmarks_px, face.crop_matrix) + 0.5
        image = draw_points(image, torch.from_numpy(detected).float()[None], color=(0.1, 0.9, 0.1), radius=radius)
    fitted = photo_landmarks(face, out.landmarks2d[b].detach().cpu().numpy()) + 0.5
    return draw_points(image, torch.from_numpy(fitted).float()[None], color=(0.9, 0.1, 0.1), radius=radius)[0]


def write_face(out_dir: Path, face: Face, deca: DECA, assets: FlameAssets, code: FaceCode, out, b: int, save: SaveConfig,
               now: bool) -> list[str]:
    """Write every requested output of face ``b`` of a decoded batch. Returns the files written."""
    folder = out_dir / face.name
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    name = face.name
    verts = out.vertices[b].detach().cpu().numpy()
    faces_np = deca.renderer.faces.cpu().numpy()
    image = torch.from_numpy(face.crop).permute(2, 0, 1).float().div(255.0)
    uv = deca.renderer.uv
    with torch.no_grad():
        v = out.vertices[b : b + 1]
        uv_pos, uv_norm = deca.renderer.coarse_uv_maps(v)
        disp = out.displacement[b : b + 1] if out.displacement is not None else torch.zeros_like(uv_pos[:, :1])
    if save.obj:
        with torch.no_grad():
            proj = orthographic_project(uv_pos.permute(0, 2, 3, 1).reshape(1, -1, 3), code.cam[b : b + 1])
            proj = proj.reshape(1, *uv_pos.shape[2:], 3).permute(0, 3, 1, 2)  # (1, U*U, 3) -> (1, 3, U, U)
            tex, visible = extract_texture(image[None].to(v.device), proj, uv_norm, uv.valid)
            if out.albedo is not None:
                tex = tex + out.albedo[b : b + 1] * (1 - visible)
        normal_map = out.render.uv_detail_normals[b] if out.render.uv_detail_normals is not None else uv_norm[0]
        files.append(folder / f"{name}.obj")
        write_textured_obj(files[-1], verts, assets.uv, tex[0], normal_map)
    if save.ply:
        files.append(folder / f"{name}.ply")
        write_mesh(files[-1], verts, faces_np)
    if save.dense:
        with torch.no_grad():
            detailed, _ = deca.renderer.detailed_uv_positions(v, disp)
        valid = (deca.renderer.face_eye_mask[0, 0] > 0.5) & (uv.valid[0, 0] > 0)
        dv, df, _ = dense_detail_mesh(detailed[0], valid, uv_norm[0])
        files.append(folder / f"{name}_detail.obj")
        write_mesh(files[-1], dv, df)
    if save.codes:
        files.append(folder / f"{name}_codes.npz")
        arrays = {k: getattr(code, k)[b].detach().cpu().numpy() for k in ("shape", "tex", "exp", "pose", "cam", "light")}
        if code.detail is not None:
            arrays["detail"] = code.detail[b].detach().cpu().numpy()
        if face.crop_matrix is not None and face.photo is not None:
            arrays["crop_matrix"] = np.asarray(face.crop_matrix, dtype=np.float64)  # photo pixels -> crop pixels
            arrays["photo_size"] = np.array(face.photo.shape[:2], dtype=np.int64)  # (height, width)
        np.savez(files[-1], **arrays)
    if save.landmarks:
        files.append(folder / f"{name}_lmk2d.txt")
        np.savetxt(files[-1], out.landmarks2d[b].detach().cpu().numpy(), fmt="%.6f",
                   header="68 x (x, y), image-normalised [-1, 1], +y down")
        files.append(folder / f"{name}_lmk3d.txt")
        np.savetxt(files[-1], out.landmarks3d[b].detach().cpu().numpy(), fmt="%.6f", header="68 x (x, y, z), metres")
        if face.crop_matrix is not None:
            files.append(folder / f"{name}_lmk2d_image.txt")
            np.savetxt(files[-1], photo_landmarks(face, out.landmarks2d[b].detach().cpu().numpy()), fmt="%.4f",
                       header="68 x (x, y), pixels of the original photo (pixel centres at integers), +y down")
    if save.vis:
        files.append(folder / f"{name}_vis.png")
        save_image(_vis_grid(face, image, out, deca, code, b), files[-1])
    if save.vis_original and face.crop_matrix is not None and face.photo is not None:
        files.append(folder / f"{name}_vis_original.png")
        with torch.no_grad():
            save_png(files[-1], _vis_original(face, out, b))
    if save.depth:
        depth, alpha = out.render.depth[b, 0], out.render.alpha[b, 0] > 0
        d = torch.zeros_like(depth)
        if alpha.any():
            lo, hi = depth[alpha].min(), depth[alpha].max()
            d[alpha] = 0.1 + 0.9 * (depth[alpha] - lo) / (hi - lo).clamp_min(1e-9)
        files.append(folder / f"{name}_depth.png")
        save_png(files[-1], d[None].repeat(3, 1, 1))
    if save.arkit and is_arkit_head(assets.model.expression_names) and assets.model.jaw_open_angle:
        files.append(folder / f"{name}_arkit.json")
        write_arkit_json(files[-1], code.exp[b : b + 1].detach().cpu(), assets.model.expression_names,
                         code.pose[b : b + 1, 3:6].detach().cpu(), assets.model.jaw_open_angle)
    if now:
        with torch.no_grad():
            neutral = deca.flame(shape=code.shape[b : b + 1])
        files.append(folder / f"{name}_now.obj")
        write_mesh(files[-1], neutral.vertices[0].cpu().numpy(), faces_np)
        files.append(folder / f"{name}_now_lmk7.npy")
        np.save(files[-1], now_landmarks(neutral.landmarks3d[0].cpu().numpy()))
    return [str(f) for f in files]


def check_output_dir(out_dir: Path) -> None:
    """Raise InputError naming the folder when it cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise InputError(out_dir, f"output folder is not writable ({exc.strerror}); choose another output=") from None


def run(deca: DECA, assets: FlameAssets, landmarker, cfg: ReconstructConfig) -> dict[str, Any]:
    """Reconstruct every input of ``cfg.input`` into ``cfg.output``; returns (and writes) the summary."""
    from tqdm import tqdm

    out_dir = Path(cfg.output)
    check_output_dir(out_dir)
    trained = bool(cfg.model.checkpoint)
    fit_cfg = FitConfig(steps=cfg.fit_steps, lr=cfg.fit_lr, lr_end=cfg.fit_lr_end, fit_detail=cfg.fit_detail,
                        terms=dict(cfg.fit_loss.terms))
    items, failures = expand_inputs(cfg.input, every_n_frames=cfg.every_n_frames)
    outcomes: list[Outcome] = []
    timings: list[float] = []
    pending: list[Face] = []
    identity_files: list[str] = []  # identity=true: the shared neutral shape

    def flush() -> None:
        if not pending:
            return
        start = time.perf_counter()
        try:
            code, before, after = infer(deca, pending, trained, fit_cfg, identity=cfg.identity)
            if cfg.identity:
                with torch.no_grad():
                    neutral = deca.flame(shape=code.shape[:1])
                identity_files.append(str(out_dir / f"{Path(str(cfg.input)).stem or 'identity'}_neutral.obj"))
                write_mesh(identity_files[-1], neutral.vertices[0].cpu().numpy(), deca.renderer.faces.cpu().numpy())
            with torch.no_grad():
                out = deca.decode(code, detail=trained and code.detail is not None)
        except Exception as exc:  # noqa: BLE001 - one failing batch must not stop the run
            log.debug(traceback.format_exc())
            failures.extend({"file": f.source, "reason": f"reconstruction failed: {exc}"} for f in pending)
            pending.clear()
            return
        timings.append((time.perf_counter() - start) / len(pending))
        for b, face in enumerate(pending):
            try:
                files = write_face(out_dir, face, deca, assets, code, out, b, cfg.save, cfg.now)
            except Exception as exc:  # noqa: BLE001
                log.debug(traceback.format_exc())
                failures.append({"file": face.source, "reason": f"writing outputs failed: {exc}"})
                continue
            outcomes.append(Outcome(face.name, face.source, files,
                                    None if before is None else float(before[b]), None if after is None else float(after[b])))
        pending.clear()

    for item in tqdm(items, desc="reconstruct", unit="image", disable=not cfg.progress):
        try:
            image = item.load()
            pending.extend(detect_faces(item, image, landmarker, cfg.all_faces, cfg.crop_scale,
                                        size=deca.renderer.image_size))
        except InputError as err:
            failures.append({"file": err.path if item.frame is None else f"{err.path}#frame{item.frame}",
                             "reason": err.reason})
            continue
        except Exception as exc:  # noqa: BLE001
            failures.append({"file": str(item.path), "reason": f"{type(exc).__name__}: {exc}"})
            continue
        if len(pending) >= cfg.batch_size and not cfg.identity:  # identity=true: all faces in one fit
            flush()
    flush()
    summary = {
        "output": str(out_dir),
        "reconstructed": [o.__dict__ for o in outcomes],
        "failures": failures,
        **({"identity": identity_files} if cfg.identity else {}),
        "seconds_per_face": round(float(np.mean(timings)), 4) if timings else None,
        "landmark_error_before": _mean([o.landmark_error_before for o in outcomes]),
        "landmark_error_after": _mean([o.landmark_error_after for o in outcomes]),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(float(np.mean(vals)), 5) if vals else None


def codes_for_input(deca: DECA, landmarker, spec: str | Path,
                    cfg: ReconstructConfig) -> tuple[FaceCode, list[str], list[dict[str, str]]]:
    """Codes of the largest face of every image / video frame of ``spec`` (in order), their names and the
    failures. Used by animation and expression transfer."""
    trained = bool(cfg.model.checkpoint)
    fit_cfg = FitConfig(steps=cfg.fit_steps, lr=cfg.fit_lr, lr_end=cfg.fit_lr_end,
                        terms={**cfg.fit_loss.terms, "photometric": 0.0})
    items, failures = expand_inputs(spec, every_n_frames=cfg.every_n_frames)
    codes, names = [], []
    for item in items:
        try:
            face = detect_faces(item, item.load(), landmarker, False, cfg.crop_scale,
                                size=deca.renderer.image_size)[0]
            code, _, _ = infer(deca, [face], trained, fit_cfg)
        except InputError as err:
            failures.append({"file": err.path, "reason": err.reason})
            continue
        codes.append(code)
        names.append(face.name)
    if not codes:
        raise InputError(spec, "no usable face in the input" + (f" ({failures[0]['reason']})" if failures else ""))
    fields = {k: torch.cat([getattr(c, k) for c in codes]) for k in ("shape", "tex", "exp", "pose", "cam", "light")}
    detail = torch.cat([c.detail for c in codes]) if all(c.detail is not None for c in codes) else None
    return FaceCode(**fields, detail=detail), names, failures
