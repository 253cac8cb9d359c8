"""Training callbacks: image grids of what the model learns, and the non-finite-step counter in the progress bar."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from decalite.geometry.camera import normalised_to_pixels
from decalite.render.stages import draw_points

log = logging.getLogger(__name__)


def _landmark_pixels(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 68, 2) image-normalised ([-1, 1], +y down) -> continuous pixel (col, row), as draw_points takes."""
    return normalised_to_pixels(landmarks, size) + 0.5


def _displacement_image(displacement: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1, U, U) metres -> (N, 3, size, size) grey image, 0.5 at zero, +-1 mm saturating."""
    grey = (displacement / 2e-3 + 0.5).clamp(0.0, 1.0)
    grey = torch.nn.functional.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False)
    return grey.expand(-1, 3, -1, -1)


def training_grid(pl_module, visuals: dict[str, torch.Tensor], rows: int = 4) -> torch.Tensor:
    """One row per image: input | target (green) vs predicted (red) landmarks | render | coarse shape |
    detailed shape | displacement (the columns a stage has). Returns a (3, H', W') grid."""
    images = visuals["input"][:rows].float().cpu()
    size = images.shape[-1]
    columns = [images]
    if "landmarks" in visuals:
        marked = draw_points(images, _landmark_pixels(visuals["target_landmarks"][:rows].float().cpu(), size),
                             color=(0.1, 0.9, 0.1))
        columns.append(draw_points(marked, _landmark_pixels(visuals["landmarks"][:rows].float().cpu(), size),
                                   color=(0.9, 0.1, 0.1)))
    if "render" in visuals:
        columns.append(visuals["render"][:rows].float().clamp(0, 1).cpu())
    renderer = pl_module.deca.renderer
    with torch.no_grad():
        verts, cam = visuals["vertices"][:rows].float(), visuals["cam"][:rows].float()
        disp = visuals["displacement"][:rows].float() if "displacement" in visuals else None
        shapes = renderer.render_shape(verts, cam, displacement=disp, background=images.to(verts.device))
        for shape in (shapes.coarse, shapes.detailed):
            if shape is not None:
                columns.append(torch.nn.functional.interpolate(shape.cpu(), size=(size, size), mode="bilinear"))
        if disp is not None:
            columns.append(_displacement_image(disp.cpu(), size))
    tiles = torch.stack(columns, 1).flatten(0, 1)  # (rows, C, 3, S, S) -> (rows*C, 3, S, S)
    return make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)


class ImageGridCallback(pl.Callback):
    """Every ``every_n_steps`` training steps (rank zero), log :func:`training_grid` to every logger that takes
    images (wandb, TensorBoard) and save it as a PNG under ``<output_dir>/images/``.

    Args:
        every_n_steps: steps between grids (0 disables).
        output_dir: folder for the PNGs (None: the trainer's default_root_dir).
        rows: images per grid.
    """

    def __init__(self, every_n_steps: int = 500, output_dir: str | None = None, rows: int = 4) -> None:
        self.every_n_steps, self.output_dir, self.rows = int(every_n_steps), output_dir, int(rows)

    @rank_zero_only
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps <= 0 or step % self.every_n_steps != 0 or not getattr(pl_module, "last_visuals", None):
            return
        grid = training_grid(pl_module, pl_module.last_visuals, self.rows)
        folder = Path(self.output_dir or trainer.default_root_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{pl_module.stage}_step{step:07d}.png"
        save_image(grid, path)
        for logger in trainer.loggers:
            kind = type(logger).__name__
            if kind == "WandbLogger":
                logger.log_image(key=f"train/{pl_module.stage}_grid", images=[grid], step=step)
            elif kind == "TensorBoardLogger":
                logger.experiment.add_image(f"train/{pl_module.stage}_grid", grid, step)
        log.debug("wrote %s", path)
