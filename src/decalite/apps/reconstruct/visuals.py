"""The per-face pictures: the comparison grid and the render over the original photo."""

from __future__ import annotations

import torch
from torchvision.utils import make_grid

from decalite.apps.reconstruct.coordinates import crop_to_photo, paste_render, photo_landmarks
from decalite.apps.reconstruct.faces import Face
from decalite.geometry.camera import normalised_to_pixels
from decalite.model.deca import DECA
from decalite.render.stages import draw_points
from decalite.types import FaceCode


def _vis_grid(face: Face, image: torch.Tensor, out, deca: DECA, code: FaceCode, b: int) -> torch.Tensor:
    """input | landmarks (detected green, fitted red) | coarse shape | detailed shape | rendered image."""
    size = deca.renderer.image_size
    fitted = normalised_to_pixels(out.landmarks2d[b : b + 1], size) + 0.5  # continuous pixels (centres at + 0.5)
    with_lmk = image[None]
    if face.landmarks_px is not None:
        detected = torch.from_numpy(face.landmarks_px + 0.5).float()[None] * (size / face.crop.shape[0])
        with_lmk = draw_points(with_lmk, detected, color=(0.1, 0.9, 0.1))
    with_lmk = draw_points(with_lmk, fitted.cpu().float(), color=(0.9, 0.1, 0.1))
    verts, cam = out.vertices[b : b + 1], code.cam[b : b + 1]
    disp = out.displacement[b : b + 1] if out.displacement is not None else None
    shapes = deca.renderer.render_shape(verts, cam, displacement=disp, background=image[None].to(verts.device))
    coarse, detailed = shapes.coarse, shapes.best
    rendered = out.render.image[b : b + 1].clamp(0, 1)
    alpha = out.render.alpha[b : b + 1]
    rendered = rendered * alpha + image[None].to(alpha.device) * (1 - alpha)
    return make_grid(torch.cat([image[None].cpu(), with_lmk.cpu(), coarse.cpu(), detailed.cpu(), rendered.cpu()]),
                     nrow=5, padding=2, pad_value=1.0)


def _vis_original(face: Face, out, b: int) -> torch.Tensor:
    """(3, H, W) photo with the face's render pasted back and the fitted (red) and detected (green) landmarks."""
    render = out.render.image[b].clamp(0, 1)
    image = paste_render(face.photo, render, out.render.alpha[b], face.crop_matrix)[None]
    radius = max(1, round(max(face.photo.shape[:2]) / 400))
    if face.landmarks_px is not None:
        detected = crop_to_photo(face.landmarks_px, face.crop_matrix) + 0.5
        image = draw_points(image, torch.from_numpy(detected).float()[None], color=(0.1, 0.9, 0.1), radius=radius)
    fitted = photo_landmarks(face, out.landmarks2d[b].detach().cpu().numpy()) + 0.5
    return draw_points(image, torch.from_numpy(fitted).float()[None], color=(0.9, 0.1, 0.1), radius=radius)[0]
