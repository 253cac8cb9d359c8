"""Faces to reconstruct: detection, DECA's crop and skin masks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from decalite.data.crop import Crop, square_crop, transform_points, warp
from decalite.geometry.camera import pixels_to_normalised
from decalite.io.images import InputError
from decalite.io.inputs import InputItem

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
        return pixels_to_normalised(self.landmarks_px, self.crop.shape[0])


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
    return [face_from_landmarks(item, image, det.landmarks, scale, size, landmarker.name,
                                item.name if i == 0 and not all_faces else f"{item.name}_face{i}")
            for i, det in enumerate(detections)]


def face_from_landmarks(item: InputItem, image: np.ndarray, landmarks: np.ndarray, scale: float, size: int,
                        detector: str, name: str | None = None, crop_landmarks: np.ndarray | None = None) -> Face:
    """The Face of an image's (68, 2) pixel landmarks: DECA's square crop around them (``scale`` x their box), or
    around ``crop_landmarks`` when given (a video's smoothed track: steady crops, the frame's own landmarks)."""
    crop = square_crop(landmarks if crop_landmarks is None else crop_landmarks, scale, size)
    return Face(name or item.name, str(item.path), warp(image, crop), transform_points(landmarks, crop.matrix),
                crop.box.tolist(), detector, crop.matrix, image)


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
