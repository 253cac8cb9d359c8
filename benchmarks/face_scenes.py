"""Synthetic test scenes for face detection: a real face composited into a canvas at a chosen size, rotation,
colour and contrast, with a second, smaller face beside it (the bystander of issue 9).

Used by the detection tests and ``bench_detect.py`` (beside it). The source is any photo with known 68-point
landmarks (the tests use ``skimage.data.astronaut()``, public domain); every face is the source warped by a
similarity, so the ground-truth landmarks are the source landmarks warped the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Scene:
    """One composited image and the truth about its main face.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        landmarks: (68, 2) ground-truth landmarks of the main face (pixel-index coordinates).
        centre: (2,) main face centre (mean of its landmarks).
        size: main face size in pixels (side of the dlib-style box: the predictor's mean-shape scale).
        second_centre: (2,) centre of the bystander face, or None without one.
    """

    image: np.ndarray
    landmarks: np.ndarray
    centre: np.ndarray
    size: float
    second_centre: np.ndarray | None


def face_scale(landmarks: np.ndarray) -> float:
    """Face size (pixels) of 68 landmarks: the scale of the dlib predictor's mean shape fitted to them."""
    from decalite.data.detect import fit_similarity, predictor_mean_shape

    m = fit_similarity(predictor_mean_shape(), landmarks)
    return float(np.hypot(m[0, 0], m[1, 0]))


def _placement(centre: np.ndarray, scale: float, angle_deg: float, target: np.ndarray) -> np.ndarray:
    """(2, 3) similarity taking source point ``centre`` to ``target``, scaled, rotated by ``angle_deg`` (counter-
    clockwise on screen, as cv2.getRotationMatrix2D)."""
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    return np.concatenate([rot, (target - rot @ centre)[:, None]], axis=1)


def compose_scene(source: np.ndarray, landmarks: np.ndarray, size: float, *, angle: float = 0.0,
                  second: float | None = 0.6, grey: bool = False, contrast: float = 1.0, blur: float = 0.0,
                  noise: float = 0.0, seed: int = 0) -> Scene:
    """The face of ``source`` (RGB uint8, with its 68 ``landmarks``) at ``size`` px in a new canvas.

    Args:
        size: main face size in pixels (see :func:`face_scale`).
        angle: in-plane rotation of both faces, degrees.
        second: bystander size relative to the main face (the mirrored source face, placed lower right, as a
            seated person behind), or None for no second face.
        grey: convert the whole scene to greyscale (kept as three equal channels).
        contrast: scale of the deviations from mid-grey (0.3 gives a faded, low-contrast print).
        blur: Gaussian blur sigma in units of the face size (0.02: a soft old print), applied before the noise.
        noise: standard deviation of added Gaussian grain, in grey levels (after the contrast change).
        seed: the random smooth background.
    """
    import cv2

    landmarks = np.asarray(landmarks, np.float64)
    src_size = face_scale(landmarks)
    centre = landmarks.mean(0)
    rel = second or 0.0
    width = int(np.ceil(max(2.6 * size * (1.0 + rel), 256)))
    height = int(np.ceil(max(2.8 * size, 224)))
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(60, 200, size=(6, 8, 3)).astype(np.float32)
    canvas = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    canvas += rng.normal(0, 4, canvas.shape).astype(np.float32)

    # soft round mask around the face in the source (forehead, hair and chin included)
    yy, xx = np.mgrid[: source.shape[0], : source.shape[1]]
    dist = np.hypot(xx - centre[0], (yy - (centre[1] - 0.1 * src_size)) / 1.15) / src_size
    alpha = np.clip((1.2 - dist) / 0.25, 0.0, 1.0).astype(np.float32)

    def paste(matrix: np.ndarray, image: np.ndarray, alpha: np.ndarray) -> None:
        warped = cv2.warpAffine(image.astype(np.float32), matrix, (width, height), flags=cv2.INTER_AREA
                                if matrix[0, 0] ** 2 + matrix[1, 0] ** 2 < 1 else cv2.INTER_LINEAR)
        a = cv2.warpAffine(alpha, matrix, (width, height), flags=cv2.INTER_LINEAR)[:, :, None]
        canvas[:] = canvas * (1 - a) + warped * a

    scale = size / src_size
    main_target = np.array([1.3 * size, 0.5 * height])
    main = _placement(centre, scale, angle, main_target)
    second_centre = None
    if second:
        flipped = np.ascontiguousarray(source[:, ::-1])
        fcentre = np.array([source.shape[1] - 1 - centre[0], centre[1]])
        second_centre = np.array([width - 1.3 * rel * size, 0.5 * height + 0.35 * size])
        paste(_placement(fcentre, scale * rel, angle, second_centre), flipped, np.ascontiguousarray(alpha[:, ::-1]))
    paste(main, source, alpha)
    if grey:
        canvas = np.repeat((canvas @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None], 3, axis=2)
    if blur > 0:
        canvas = cv2.GaussianBlur(canvas, (0, 0), blur * size)
    canvas = 128.0 + contrast * (canvas - 128.0)
    if noise > 0:
        grain = rng.normal(0, noise, canvas.shape[:2]).astype(np.float32)[:, :, None]
        canvas = canvas + (grain if grey else rng.normal(0, noise, canvas.shape).astype(np.float32))
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    truth = landmarks @ main[:, :2].T + main[:, 2]
    return Scene(image=image, landmarks=truth, centre=truth.mean(0), size=float(size), second_centre=second_centre)
