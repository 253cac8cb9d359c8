"""Skin masks for the photometric loss: a landmark + colour fallback, and a hook for a face-parsing network.

Fallback (:func:`skin_mask`), all from the 68 landmarks (iBUG order) and the image itself:

1. **Face region**: the convex hull of the 68 landmarks plus a forehead cap. The cap is half an ellipse
   above the brows whose width is the jaw contour's (points 0-16) and whose height is
   ``FOREHEAD_HEIGHT`` (0.6) x the face height (brow centre to chin), oriented along the face's up axis
   (chin -> brows), so it follows in-plane roll.
2. **Minus eyes and mouth**: the eye polygons (36-41, 42-47) and the inner-mouth polygon (60-67), dilated by
   ``HOLE_DILATION`` (4 %) of the face size.
3. **Skin colour**: the median YCrCb colour of three discs (both cheeks, the nose bridge; radius 6 % of the
   face width) is the reference; a pixel is skin when its chroma distance
   ``sqrt((Cr - Cr0)² + (Cb - Cb0)²) <= CHROMA_THRESHOLD`` (15, on 0-255 values) and its luma is within
   ``LUMA_THRESHOLD`` (65) of the reference (lenient enough for shaded skin, tight enough to drop
   most dark hair). This removes most hair, glasses, hands and background that the geometric region
   overlaps (hair highlights close to the skin's colour can remain).

The result is cleaned with a small morphological opening. It is a rough mask: DECA used a face-parsing
network; :class:`FaceParsingMask` plugs one in (``mask.model`` in the config).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

FOREHEAD_HEIGHT = 0.6
HOLE_DILATION = 0.04
CHROMA_THRESHOLD = 15.0
LUMA_THRESHOLD = 65.0
SAMPLE_RADIUS = 0.06

#: Classes of the CelebAMask-HQ 19-class face-parsing convention (e.g. BiSeNet face-parsing models).
CELEBAMASK_CLASSES = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
                      "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
#: Default skin classes for the photometric loss: skin and nose.
DEFAULT_SKIN_CLASSES = (1, 10)


def _forehead_cap(landmarks: np.ndarray, n: int = 15) -> np.ndarray:
    """(n, 2) points of the half-ellipse above the brows (see the module docstring)."""
    brow = landmarks[17:27].mean(0)
    chin = landmarks[8]
    up = brow - chin
    height = float(np.linalg.norm(up))
    if height < 1e-6:
        return np.zeros((0, 2))
    up /= height
    side = np.array([-up[1], up[0]])  # perpendicular to up
    lateral = (landmarks[0:17] - brow) @ side
    lo, hi = float(lateral.min()), float(lateral.max())
    centre, half = brow + side * (lo + hi) / 2.0, (hi - lo) / 2.0
    t = np.linspace(0.0, np.pi, n)
    return centre + np.outer(np.cos(t) * half, side) + np.outer(np.sin(t) * FOREHEAD_HEIGHT * height, up)


def face_region(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """(H, W) uint8 255/0: landmark hull + forehead cap minus dilated eyes and inner mouth."""
    h, w = shape
    pts = np.concatenate([landmarks, _forehead_cap(landmarks)])
    region = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(region, np.round(cv2.convexHull(pts.astype(np.float32))).astype(np.int32), 255)
    holes = np.zeros_like(region)
    for idx in (slice(36, 42), slice(42, 48), slice(60, 68)):
        cv2.fillPoly(holes, [np.round(landmarks[idx]).astype(np.int32)], 255)
    size = float(np.ptp(landmarks, axis=0).max())
    k = max(int(round(HOLE_DILATION * size)), 1)
    holes = cv2.dilate(holes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return np.where(holes > 0, 0, region).astype(np.uint8)


def reference_colour(ycrcb: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """(3,) median YCrCb of discs on both cheeks and the nose bridge; None when they fall outside the image."""
    h, w = ycrcb.shape[:2]
    width = float(np.ptp(landmarks[0:17, 0])) or 1.0
    centres = [(landmarks[2] + landmarks[31]) / 2, (landmarks[14] + landmarks[35]) / 2, landmarks[29]]
    sample = np.zeros((h, w), np.uint8)
    for c in centres:
        cv2.circle(sample, (int(round(c[0])), int(round(c[1]))), max(int(SAMPLE_RADIUS * width), 1), 255, -1)
    pixels = ycrcb[sample > 0]
    if len(pixels) == 0:
        return None
    return np.median(pixels, axis=0)


def skin_mask(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(H, W) uint8 skin mask (255 = skin) of an (H, W, 3) uint8 RGB image with (68, 2) pixel landmarks."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    region = face_region(image.shape[:2], landmarks)
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ref = reference_colour(ycrcb, landmarks)
    if ref is None:
        return region
    chroma = np.hypot(ycrcb[..., 1] - ref[1], ycrcb[..., 2] - ref[2])
    colour = (chroma <= CHROMA_THRESHOLD) & (np.abs(ycrcb[..., 0] - ref[0]) <= LUMA_THRESHOLD)
    mask = np.where(colour & (region > 0), 255, 0).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))


class FaceParsingMask:
    """Skin masks from a user-supplied face-parsing network saved as TorchScript (``mask.model``).

    The module takes a (1, 3, S, S) float tensor, RGB in [0, 1] normalised with the ImageNet mean/std
    (S = ``input_size``, 512 for the usual BiSeNet face-parsing export), and returns (1, C, S, S) class
    logits (or a tuple/list whose first item is that). Classes follow CelebAMask-HQ
    (:data:`CELEBAMASK_CLASSES`: 0 background, 1 skin, 2/3 brows, 4/5 eyes, 6 glasses, 7-9 ears, 10 nose,
    11 mouth, 12/13 lips, 14/15 neck, 16 cloth, 17 hair, 18 hat); pixels of ``skin_classes`` are skin.
    Calling it returns the same (H, W) uint8 255/0 mask as :func:`skin_mask` (landmarks are ignored).
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, path: str | os.PathLike[str], skin_classes: Sequence[int] = DEFAULT_SKIN_CLASSES,
                 input_size: int = 512, device: str = "cpu") -> None:
        import torch

        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"face-parsing model (mask.model) not found: {path}; set mask.model=null to use "
                                    f"the landmark/skin-colour fallback")
        self.path = path
        self.model = torch.jit.load(str(path), map_location=device).eval()
        self.skin_classes = tuple(int(c) for c in skin_classes)
        self.input_size = int(input_size)
        self.device = device

    @property
    def name(self) -> str:
        return f"face_parsing:{self.path.name}"

    def class_map(self, image: np.ndarray) -> np.ndarray:
        """(H, W) int64 class indices of an (H, W, 3) uint8 RGB image."""
        import torch

        h, w = image.shape[:2]
        x = cv2.resize(image, (self.input_size, self.input_size), interpolation=cv2.INTER_LINEAR)
        t = torch.from_numpy(x).permute(2, 0, 1)[None].float().div(255.0)  # (S, S, 3) -> (1, 3, S, S)
        t = (t - torch.tensor(self.MEAN)[:, None, None]) / torch.tensor(self.STD)[:, None, None]
        with torch.no_grad():
            out = self.model(t.to(self.device))
        if isinstance(out, (tuple, list)):
            out = out[0]
        classes = out[0].argmax(0).to(torch.int32).cpu().numpy()
        return cv2.resize(classes, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64)

    def __call__(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """(H, W) uint8 255/0 skin mask of an (H, W, 3) uint8 RGB image."""
        return np.where(np.isin(self.class_map(image), self.skin_classes), 255, 0).astype(np.uint8)
