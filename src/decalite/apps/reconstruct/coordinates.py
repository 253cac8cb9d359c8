"""Between the crop and the photo it came from: landmarks in photo pixels, a render pasted back."""

from __future__ import annotations

import numpy as np
import torch

from decalite.apps.reconstruct.faces import Face
from decalite.data.crop import transform_points
from decalite.geometry.camera import normalised_to_pixels


def crop_to_photo(points_px: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(..., 2) crop pixel indices -> photo pixel indices, through the inverse of the 2x3 photo -> crop ``matrix``."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    return transform_points(points_px, inverse)


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
