"""The synthetic benchmark: held-out synthetic identities with ground truth, scored for an encoder (no fitting).

Metrics (one number each over all held-out images):

- ``landmark_nme``: mean 2D landmark error / outer-eye-corner distance (the data's landmarks are exact here).
- ``shape_mm``: NoW-style neutral-shape error: the true neutral head (ground-truth shape, zero expression and
  pose) is sampled densely as the "scan", cropped around the face, the predicted neutral head is aligned to it
  (similarity from the 7 NoW landmarks, then refined), and the median scan-to-mesh distance is reported in mm.
- ``displacement_mm``: mean |D_pred - D_true| inside the face-eye mask, mm (the detail decoder's output).
- ``detail_consistency_mm``: the same error when each image's detail code comes from another image of the same
  person (expression and jaw stay the image's own): small when the code holds the person's static details.

``mean_face`` scores the mean shape (shape code 0) with a camera solved from the true landmarks and no details.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from decalite.data.swaps import within_group_permutation
from decalite.deca import DECA
from decalite.evaluation.now import now_distances
from decalite.export import NOW_LANDMARKS
from decalite.fitting import mean_face_code
from decalite.losses.landmark import normalised_landmark_error

#: Surface samples of each true neutral head (the synthetic "scan").
SCAN_POINTS = 6_000


@dataclass
class SyntheticScores:
    landmark_nme: float
    shape_mm: float
    displacement_mm: float | None = None
    detail_consistency_mm: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return dict(self.__dict__)


def _scan(vertices: np.ndarray, faces: np.ndarray, seed: int) -> np.ndarray:
    """(SCAN_POINTS, 3) points sampled uniformly on the mesh surface (a deterministic synthetic scan)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    points, _ = trimesh.sample.sample_surface(mesh, SCAN_POINTS, seed=seed)
    return np.asarray(points)


def _displacement_error(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) mean |pred - true| inside the mask (metres). pred, true: (N, 1, U, U); mask (1, 1, U, U)."""
    if true.shape[-1] != pred.shape[-1]:
        true = F.interpolate(true, size=pred.shape[-2:], mode="bilinear", align_corners=False)
    return ((pred - true).abs() * mask).sum((1, 2, 3)) / mask.sum().clamp_min(1.0)


class _Scorer:
    """Accumulates per-image errors of one model variant."""

    def __init__(self) -> None:
        self.nme: list[float] = []
        self.shape: list[np.ndarray] = []
        self.disp: list[float] = []
        self.consistency: list[float] = []

    def result(self) -> SyntheticScores:
        return SyntheticScores(
            landmark_nme=float(np.mean(self.nme)),
            shape_mm=1000.0 * float(np.median(np.concatenate(self.shape))),
            displacement_mm=1000.0 * float(np.mean(self.disp)) if self.disp else None,
            detail_consistency_mm=1000.0 * float(np.mean(self.consistency)) if self.consistency else None,
        )


@torch.no_grad()
def evaluate_synthetic(models: dict[str, DECA], batches: Iterable[dict], detail: bool = True,
                       mean_face: bool = True, seed: int = 0) -> dict[str, SyntheticScores]:
    """Score each model (encoder only) and the mean face on identity-group batches with ground truth.

    Args:
        models: name -> DECA (on the CPU, eval mode); they must share FLAME and the renderer's UV size.
        batches: identity-group batches (B, K, ...) with ``shape`` and ``disp`` ground truth (synthetic data,
            evaluation loader: centre crops, no jitter).
        detail: also score the detail networks (displacement and detail consistency).
        mean_face: add a ``"mean_face"`` entry.
        seed: for the scan sampling and the consistency swaps.
    """
    scorers = {name: _Scorer() for name in models}
    if mean_face:
        scorers["mean_face"] = _Scorer()
    reference = next(iter(models.values()))
    flame, faces = reference.flame, reference.flame.faces.cpu().numpy()
    mask = reference.renderer.face_eye_mask
    generator = torch.Generator().manual_seed(seed)
    image_index = 0
    for batch in batches:
        groups, k = batch["images"].shape[:2]
        images = batch["images"].flatten(0, 1)  # (B, K, 3, S, S) -> (N, 3, S, S)
        target = batch["landmarks"].flatten(0, 1)
        true_shape = batch["shape"].flatten(0, 1)[:, : flame.n_shape]
        true_neutral = flame(shape=true_shape)
        true_disp = batch["disp"].flatten(0, 1) if "disp" in batch else None
        perm = within_group_permutation(groups, k, generator)
        scans = [_scan(v, faces, seed + image_index + i) for i, v in enumerate(true_neutral.vertices.numpy())]
        lmk_true = true_neutral.landmarks3d[:, list(NOW_LANDMARKS)].numpy()
        codes = {name: deca.encode(images, detail=detail) for name, deca in models.items()}
        if mean_face:
            codes["mean_face"] = mean_face_code(reference, target)
        for name, code in codes.items():
            deca = models.get(name, reference)
            scorer = scorers[name]
            projected = deca.geometry(code)[1]
            scorer.nme.extend(normalised_landmark_error(projected, target).tolist())
            neutral = flame(shape=code.shape)
            lmk_pred = neutral.landmarks3d[:, list(NOW_LANDMARKS)].numpy()
            for i in range(images.shape[0]):
                scorer.shape.append(now_distances(neutral.vertices[i].numpy(), faces, lmk_pred[i], scans[i], lmk_true[i]))
            if true_disp is None or not detail:
                continue
            if name == "mean_face":  # no details: D = 0
                flat = torch.zeros(true_disp.shape[0], 1, *mask.shape[-2:], dtype=true_disp.dtype)
                scorer.disp.extend(_displacement_error(flat, true_disp, mask).tolist())
                continue
            scorer.disp.extend(_displacement_error(deca.displacement(code), true_disp, mask).tolist())
            swapped = code.map(lambda t: t)
            swapped.detail = code.detail[perm]
            scorer.consistency.extend(_displacement_error(deca.displacement(swapped), true_disp, mask).tolist())
        image_index += images.shape[0]
    return {name: scorer.result() for name, scorer in scorers.items()}
