"""Reading user images robustly: any mode PIL opens (greyscale, CMYK, 16-bit, palette, RGBA) becomes 8-bit RGB,
EXIF orientation is applied, very large images are downscaled, and every failure names the file and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
#: Images whose longer side exceeds this are downscaled on load (faces need far less; memory stays bounded).
MAX_SIDE = 4096
Image.MAX_IMAGE_PIXELS = 40_000 * 40_000  # allow big photos; we downscale them right away


class InputError(Exception):
    """One input could not be used. ``path`` names it; the message says why and what to do."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


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


def load_image(path: str | os.PathLike[str], max_side: int = MAX_SIDE) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB. Raises InputError with the reason and a hint."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes); re-copy or re-download it")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
            if min(img.size) < 2:
                raise InputError(path, f"image too small ({img.size[0]} x {img.size[1]})")
            if max(img.size) > max_side:
                img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return to_rgb8(img)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(path, "not an image PIL can read (unknown or corrupt format); convert it to JPEG or PNG") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(path, f"unreadable or truncated image ({exc}); re-export it as JPEG or PNG") from None
