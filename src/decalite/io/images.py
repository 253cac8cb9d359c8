"""Reading user images robustly: any mode PIL opens (greyscale, CMYK, 16-bit, palette, RGBA) becomes 8-bit RGB,
EXIF orientation is applied, very large images are downscaled, and every failure names the file and the fix.

Memory stays bounded for hostile files: an image's declared size is checked before it is decoded. PIL's own
decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, left at PIL's default) refuses absurd sizes when the file
is opened; JPEGs are then decoded at a reduced scale when that still leaves :data:`MAX_SIDE` pixels; and no
image is decoded at more than :data:`MAX_PIXELS` pixels.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from decalite.errors import AssetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
#: Images whose longer side exceeds this are downscaled on load (faces need far less; memory stays bounded).
MAX_SIDE = 4096
#: Most pixels an image (or video frame) is decoded at: 8192 x 8192. Larger JPEGs are decoded at 1/2, 1/4 or 1/8
#: scale first; other formats beyond it are refused (PIL would need up to 4 bytes per pixel, 16-bit images 8).
MAX_PIXELS = 8192 * 8192


class InputError(AssetError):
    """One input could not be used. ``path`` names it; the message says why and what to do.

    An :class:`~decalite.errors.AssetError`, so that every refused file is one; ``str(err)`` stays
    ``"<path>: <reason>"``.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(str(path), reason, what="input")
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.path, self.reason))


def pixel_problem(size: tuple[int, int], max_pixels: int | None = None) -> str | None:
    """Why an image that declares ``size`` (width, height) must not be decoded (more than ``max_pixels``,
    default :data:`MAX_PIXELS`), or None when it may."""
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    width, height = size
    if width * height > max_pixels:
        return (
            f"it declares {width} x {height} pixels ({width * height:,}), more than the {max_pixels:,} decalite "
            "decodes (a decompression bomb, or an image to downscale first)"
        )
    return None


def open_image(fp: str | os.PathLike[str] | IO[bytes]) -> Image.Image:
    """``Image.open`` (reads the header only) without PIL's warning for images between its warning and error
    limits: callers check the size with :func:`pixel_problem` before decoding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(fp)


def to_rgb8(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a PIL image of any mode (grey, palette, CMYK, RGBA, 16-bit, float)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0.0) > 255 else 255.0
        if img.mode == "F":
            top = 1.0 if arr.max(initial=0.0) <= 1.0 else 255.0
        grey = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy


def _decode(path: Path, img: Image.Image, max_side: int) -> np.ndarray:
    """Check the declared size (after JPEG's reduced-scale decoding), then decode, orient and downscale."""
    if img.format == "JPEG" and max(img.size) > max_side:  # decode at the smallest 1/2^k scale keeping max_side
        longest = max(img.size)
        img.draft(None, tuple(-(-max_side * side // longest) for side in img.size))
    problem = pixel_problem(img.size)
    if problem:
        raise InputError(path, f"{problem}; downscale it")
    img = ImageOps.exif_transpose(img)
    img.load()
    if min(img.size) < 2:
        raise InputError(path, f"image too small ({img.size[0]} x {img.size[1]})")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return to_rgb8(img)


def load_image(path: str | os.PathLike[str], max_side: int = MAX_SIDE) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB. Raises InputError with the reason and a hint."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes); re-copy or re-download it")
    try:
        with open_image(path) as img:
            return _decode(path, img, max_side)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(path, "not an image PIL can read (unknown or corrupt format); convert it to JPEG or PNG") from None
    except Image.DecompressionBombError as exc:
        raise InputError(path, f"refused as a decompression bomb by PIL ({exc}); downscale it") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"unreadable or truncated image ({exc}); re-export it as JPEG or PNG") from None
