"""Writing reconstructions: textured OBJ (+ MTL, texture and normal-map PNGs), PLY, the dense detailed mesh,
codes, landmarks, depth maps, and NoW-benchmark submissions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from PIL import Image

from decalite.flame.asset_writer import write_obj_with_uvs
from decalite.types import UVLayout

#: iBUG-68 indices of NoW's 7 landmarks: eye corners 36, 39, 42, 45; nose bottom 33; mouth corners 48, 54.
NOW_LANDMARKS = (36, 39, 42, 45, 33, 48, 54)


def to_uint8_image(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def save_png(path: Path, image: torch.Tensor) -> None:
    """Save a (3, H, W) image in [0, 1] as PNG."""
    Image.fromarray(to_uint8_image(image)).save(path)


def write_textured_obj(path: Path, vertices: np.ndarray, layout: UVLayout, texture: torch.Tensor,
                       normal_map: torch.Tensor | None = None) -> None:
    """OBJ with UVs + MTL referencing ``<stem>_texture.png`` (and ``<stem>_normals.png`` as bump map).

    Args:
        vertices: (V, 3). texture: (3, U, U) in [0, 1], row 0 at v = 1. normal_map: (3, U, U) unit normals or None.
    """
    stem = path.stem
    save_png(path.with_name(f"{stem}_texture.png"), texture)
    lines = ["newmtl material0", "Ka 1 1 1", "Kd 1 1 1", "Ks 0 0 0", f"map_Kd {stem}_texture.png"]
    if normal_map is not None:
        save_png(path.with_name(f"{stem}_normals.png"), normal_map * 0.5 + 0.5)
        lines.append(f"map_Bump {stem}_normals.png")
    path.with_suffix(".mtl").write_text("\n".join(lines) + "\n")
    write_obj_with_uvs(path, replace(layout, vertices=np.asarray(vertices, dtype=np.float64)), material=f"{stem}.mtl")


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Any format trimesh writes (by suffix: .ply, .obj, ...), without processing the vertices."""
    trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), process=False).export(path)


def extract_texture(image: torch.Tensor, uv_positions_ndc: torch.Tensor, uv_normals: torch.Tensor,
                    valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the photo into UV space where the surface faces the camera (DECA's texture extraction).

    Args:
        image: (B, 3, H, W) in [0, 1]. uv_positions_ndc: (B, 3, U, U) projected positions (NDC, +y up).
        uv_normals: (B, 3, U, U) unit normals (camera looks down -z). valid: (1 or B, 1, U, U) chart coverage.

    Returns:
        texture (B, 3, U, U) and visibility (B, 1, U, U) in [0, 1].
    """
    grid = torch.stack([uv_positions_ndc[:, 0], -uv_positions_ndc[:, 1]], -1)  # NDC -> grid_sample (y down)
    texture = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    visible = (uv_normals[:, 2:3] > 0.1).to(image.dtype) * valid
    return texture * visible, visible


def now_landmarks(landmarks3d: np.ndarray) -> np.ndarray:
    """(68, 3) full 3D landmarks -> NoW's (7, 3)."""
    return np.asarray(landmarks3d)[list(NOW_LANDMARKS)]


def write_arkit_json(path: Path, expression: torch.Tensor, expression_names, jaw_pose: torch.Tensor,
                     jaw_open_angle: float, eye_pose: torch.Tensor | None = None) -> None:
    """Write ARKit's 52 blendshape weights of one face as JSON: ``{"blendshapes": {name: weight}, ...}``.

    Args:
        expression: (1, E) coefficients of an ARKit-named head. jaw_pose: (1, 3). eye_pose: (1, 6) or None
        (DECA predicts no eye pose: the eyeLook weights are then 0). See :func:`decalite.flame.arkit.arkit_weights`.
    """
    import json

    from decalite.flame.arkit import ARKIT_NAMES, EYE_LOOK_FULL_DEG, arkit_weights

    weights = arkit_weights(expression, expression_names, jaw_pose, jaw_open_angle, eye_pose)[0]
    content = {
        "blendshapes": {n: round(float(w), 6) for n, w in zip(ARKIT_NAMES, weights)},
        "convention": "Apple ARKit ARFaceAnchor.BlendShapeLocation names, weights in [0, 1]; jawOpen = jaw rotation / "
                      f"{jaw_open_angle:.6f} rad (the ICT head's jawOpen); eyeLook* = eye rotation / "
                      f"{EYE_LOOK_FULL_DEG:g} degrees (0 without an eye pose); browInnerUp and cheekPuff are the mean "
                      "of ICT's two sides; tongueOut is always 0",
    }
    Path(path).write_text(json.dumps(content, indent=1))
