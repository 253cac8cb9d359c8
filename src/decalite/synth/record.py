"""From renders to a stored sample: crop like prepared real data, and describe the sample in its meta."""

from __future__ import annotations

from typing import Any

import numpy as np

from decalite.data import shards
from decalite.data.crop import square_crop, transform_points, warp
from decalite.geometry.camera import crop_camera
from decalite.synth.config import GENERATOR_NAME, SyntheticConfig
from decalite.synth.details import DETAIL_DIM


def crop_renders(images: np.ndarray, masks: np.ndarray, lmk_px: np.ndarray, cams: np.ndarray, render_size: int,
                 size: int) -> dict[str, np.ndarray]:
    """Crop every render like prepared real data; landmarks and cameras follow into the crop frame.

    Args:
        images: (K, R, R, 3) uint8 renders. masks: (K, R, R) uint8 skin masks. lmk_px: (K, 68, 2) landmarks in
            render pixel-index coordinates. cams: (K, 3) render cameras. render_size: R. size: S, the crop side.

    Returns:
        images (K, S, S, 3), masks (K, S, S) in {0, 255}, landmarks (K, 68, 2) crop pixel indices, boxes (K, 4),
        matrices (K, 2, 3) render->crop pixel matrices, cams (K, 3) cameras of the crops.
    """
    out: dict[str, list] = {"images": [], "masks": [], "landmarks": [], "boxes": [], "matrices": [], "cams": []}
    for i in range(len(images)):
        crop = square_crop(lmk_px[i], shards.CONTEXT_SCALE, size)
        out["images"].append(warp(images[i], crop))
        out["masks"].append(np.where(warp(masks[i], crop) >= 128, 255, 0).astype(np.uint8))
        out["landmarks"].append(transform_points(lmk_px[i], crop.matrix))
        out["boxes"].append(crop.box)
        out["matrices"].append(crop.matrix)
        out["cams"].append(crop_camera(cams[i], crop.matrix, render_size, size))
    return {k: np.stack(v) for k, v in out.items()}


def sample_meta(cfg: SyntheticConfig, name: str, index: int, crops: dict[str, Any], render_cams: np.ndarray,
                head: str) -> dict[str, Any]:
    """The meta of one identity's sample (``meta.json`` in its shard); ``head`` names the FLAME-format head."""
    k = cfg.images_per_identity
    return {
        "detector": "synthetic", "landmarker": "ground-truth", "mask_source": "render",
        "sources": [f"synthetic:{cfg.seed}:{name}"] * k,
        "crop_boxes": np.round(crops["boxes"], 4).tolist(),
        "crop_matrices": np.round(crops["matrices"], 8).tolist(),
        "render_cams": np.round(render_cams.astype(np.float64), 8).tolist(),
        "render_size": cfg.render_size, "generator": GENERATOR_NAME, "head": head,
        "index": index,
        "gt_keys": {
            "shape": "(N, S) FLAME shape code (same row for every image)", "tex": "(N, T) albedo code",
            "exp": "(N, E) FLAME expression code", "pose": "(N, 6) global axis-angle 3 + jaw axis-angle 3",
            "cam": "(N, 3) orthographic (s, tx, ty) of the stored crop", "light": "(N, 9, 3) SH light",
            # The text is part of the stored bytes (kept as first written; the layout is decalite.synth's).
            "detail": f"(N, {DETAIL_DIM}) detail code (decalite.data.synthetic.DETAIL_LAYOUT)",
            "lmk3d": "(N, 68, 3) model-space 3D points of the stored 2D landmarks",
            "verts": "(N, V, 3) posed vertices", "disp": "(N, 1, U, U) UV displacement (metres)",
        },
    }
