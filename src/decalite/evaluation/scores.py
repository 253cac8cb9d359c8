"""The synthetic benchmark: held-out synthetic identities with ground truth, scored for an encoder (no fitting).

Metrics (one number each over all held-out images):

- ``landmark_nme``: mean 2D landmark error / outer-eye-corner distance (the data's landmarks are exact here).
- ``shape_mm``: NoW-style neutral-shape error: the true neutral head (ground-truth shape, zero expression and
  pose) is sampled densely as the "scan", cropped around the face, the predicted neutral head is aligned to it
  (similarity from the 7 NoW landmarks, then refined), and the median scan-to-mesh distance is reported in mm.
- ``displacement_mm``: mean |D_pred - D_true| inside the face-eye mask, mm (the detail decoder's output).
- ``detail_consistency_mm``: the same error when each image's detail code comes from another image of the same
  person (expression and jaw stay the image's own): small when the code holds the person's static details.
- ``detail_other_identity_mm``: the same error with the detail code of another person (an image of the next
  group): larger than ``detail_consistency_mm`` when the code is about the person.
- ``expression_change_mm``: for two images of one person, the predicted displacement change when only the
  expression and jaw move from the first image's to the second's, against the true change (D_true of the second
  minus D_true of the first; static details cancel), mean |error| in the mask. ``expression_change_true_mm`` is the
  mean true change itself: the error of a model whose details ignore the expression.
- ``expression_change_pearson``: the Pearson correlation of that predicted change with the true change over
  every texel in the mask of every such pair (pooled): 1 when the details move with the expression as the
  truth does, 0 when they move unrelated to it (or not at all).
- ``shape_mean_mm``, ``shape_std_mm``: mean and standard deviation of the same scan-to-mesh distances.

``mean_face`` scores the mean shape (shape code 0) with a camera solved from the true landmarks and no details.

Besides encoders, any *predictor* (images and landmarks -> codes) can be scored: :func:`fit_predictor` wraps the
per-image fit (from the mean face or from an encoder's codes) and :func:`identity_fit_predictor` the joint fit of
each identity group (one shared shape), so encoder-only, fit-only and encoder+fit compare on the same images;
:func:`truth_predictor` gives the true coarse codes with the detail encoder's (an oracle-coarse detail run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from decalite.apps.export import NOW_LANDMARKS
from decalite.apps.fitting import FitConfig, IdentityFitConfig, fit, fit_identity, mean_face_code
from decalite.data.swaps import within_group_permutation
from decalite.data.truth import true_code
from decalite.evaluation.now import now_distances
from decalite.losses.detail import displacement_error, resize_to_mask
from decalite.losses.landmark import normalised_landmark_error
from decalite.model.deca import DECA
from decalite.types import FaceCode

#: Surface samples of each true neutral head (the synthetic "scan").
SCAN_POINTS = 6_000


@dataclass
class SyntheticScores:
    landmark_nme: float
    shape_mm: float
    displacement_mm: float | None = None
    detail_consistency_mm: float | None = None
    detail_other_identity_mm: float | None = None
    expression_change_mm: float | None = None
    expression_change_true_mm: float | None = None
    expression_change_pearson: float | None = None
    shape_mean_mm: float | None = None
    shape_std_mm: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return dict(self.__dict__)


def _scan(vertices: np.ndarray, faces: np.ndarray, seed: int) -> np.ndarray:
    """(SCAN_POINTS, 3) points sampled uniformly on the mesh surface (a deterministic synthetic scan)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    points, _ = trimesh.sample.sample_surface(mesh, SCAN_POINTS, seed=seed)
    return np.asarray(points)


#: (images (N, 3, S, S), landmarks (N, 68, 2), skin masks (N, 1, S, S) or None, identity groups G, images per
#: group K, the flattened batch with its ground truth) -> codes of the N = G * K images (group-major, as the
#: batches are flattened). Only oracles read the ground truth.
Predictor = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", int, int, dict], FaceCode]


def encoder_predictor(deca: DECA, detail: bool = True) -> Predictor:
    """The encoders alone (no fitting)."""
    return lambda images, landmarks, masks, groups, k, truth: deca.encode(images, detail=detail)


def truth_predictor(deca: DECA) -> Predictor:
    """An oracle: the data's true coarse codes (:func:`decalite.data.truth.true_code`) with the detail encoder's
    code, so only the detail networks are scored."""

    def predict(images, landmarks, masks, groups, k, truth):
        sizes = deca.sizes
        code = true_code(truth, sizes.n_shape, sizes.n_exp, sizes.n_tex)
        code.detail = deca.detail_encoder(images)
        return code

    return predict


def fit_predictor(deca: DECA, cfg: FitConfig | None = None, from_encoder: bool = True) -> Predictor:
    """The per-image fit (:func:`decalite.apps.fitting.fit`), started from the encoder's codes or from the mean face."""

    def predict(images, landmarks, masks, groups, k, truth):
        init = deca.encode(images, detail=True) if from_encoder else None
        with torch.enable_grad():
            return fit(deca, images, landmarks, masks=masks, init=init, cfg=cfg).code

    return predict


def identity_fit_predictor(deca: DECA, cfg: IdentityFitConfig | None = None, from_encoder: bool = True) -> Predictor:
    """The joint fit of each identity group (:func:`decalite.apps.fitting.fit_identity`: one shape per person)."""

    def predict(images, landmarks, masks, groups, k, truth):
        init = deca.encode(images, detail=True) if from_encoder else None
        codes = []
        for g in range(groups):
            rows = slice(g * k, (g + 1) * k)
            start = init.map(lambda t: t[rows]) if init is not None else None
            with torch.enable_grad():
                codes.append(fit_identity(deca, images[rows], landmarks[rows],
                                          masks=None if masks is None else masks[rows], cfg=cfg, init=start).code)
        return FaceCode(**{f: None if getattr(codes[0], f) is None else torch.cat([getattr(c, f) for c in codes])
                           for f in codes[0].__dict__})

    return predict


class _Scorer:
    """Accumulates per-image errors of one model variant."""

    def __init__(self) -> None:
        self.nme: list[float] = []
        self.shape: list[np.ndarray] = []
        self.disp: list[float] = []
        self.consistency: list[float] = []
        self.other: list[float] = []
        self.change: list[float] = []
        self.change_true: list[float] = []
        self.correlation = torch.zeros(6, dtype=torch.float64)  # sums of w, wx, wy, wxx, wyy, wxy (Pearson)

    def add_change(self, change: torch.Tensor, true_change: torch.Tensor, mask: torch.Tensor) -> None:
        """Pool (N, 1, U, U) predicted and true displacement changes inside the (1, 1, U, U) mask."""
        w = mask.expand_as(change).double().flatten()
        x, y = change.double().flatten(), true_change.double().flatten()
        self.correlation += torch.stack([w.sum(), (w * x).sum(), (w * y).sum(), (w * x * x).sum(),
                                         (w * y * y).sum(), (w * x * y).sum()])

    def pearson(self) -> float | None:
        """Pearson correlation of the pooled changes (None before any; 0 when either side is constant)."""
        n, sx, sy, sxx, syy, sxy = self.correlation.tolist()
        if n <= 0:
            return None
        vx, vy = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
        if vx <= 1e-30 or vy <= 1e-30:
            return 0.0
        return (sxy / n - sx * sy / n**2) / (vx * vy) ** 0.5

    def distances_mm(self) -> np.ndarray:
        """All scan-to-mesh distances, mm."""
        return 1000.0 * np.concatenate(self.shape)

    def result(self) -> SyntheticScores:
        mm = lambda values: 1000.0 * float(np.mean(values)) if values else None  # noqa: E731
        distances = self.distances_mm()
        return SyntheticScores(
            landmark_nme=float(np.mean(self.nme)), shape_mm=float(np.median(distances)),
            displacement_mm=mm(self.disp), detail_consistency_mm=mm(self.consistency),
            detail_other_identity_mm=mm(self.other), expression_change_mm=mm(self.change),
            expression_change_true_mm=mm(self.change_true), expression_change_pearson=self.pearson(),
            shape_mean_mm=float(distances.mean()), shape_std_mm=float(distances.std()),
        )


@torch.no_grad()
def evaluate_synthetic(models: dict[str, DECA], batches: Iterable[dict], detail: bool = True,
                       mean_face: bool = True, seed: int = 0,
                       predictors: dict[str, Predictor] | None = None,
                       distances: dict[str, np.ndarray] | None = None) -> dict[str, SyntheticScores]:
    """Score each model (encoder only, or through ``predictors``) and the mean face on identity-group batches with
    ground truth.

    Args:
        models: name -> DECA (on the CPU, eval mode); they must share FLAME and the renderer's UV size.
        predictors: name -> how that entry's codes are made (default :func:`encoder_predictor`); an entry's
            geometry and details are decoded by ``models[name]``.
        batches: identity-group batches (B, K, ...) with ``shape`` and ``disp`` ground truth (synthetic data,
            evaluation loader: centre crops, no jitter).
        detail: also score the detail networks (displacement and detail consistency).
        mean_face: add a ``"mean_face"`` entry.
        seed: for the scan sampling and the consistency swaps.
        distances: if given, filled with each entry's scan-to-mesh distances (mm; for error curves).
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
        true_disp = resize_to_mask(batch["disp"].flatten(0, 1), mask) if "disp" in batch else None
        perm = within_group_permutation(groups, k, generator)
        other = (torch.arange(groups * k) + k) % (groups * k)  # the same slot in the next group: another person
        scans = [_scan(v, faces, seed + image_index + i) for i, v in enumerate(true_neutral.vertices.numpy())]
        lmk_true = true_neutral.landmarks3d[:, list(NOW_LANDMARKS)].numpy()
        masks = batch["masks"].flatten(0, 1) if "masks" in batch else None
        truth = {key: value.flatten(0, 1) for key, value in batch.items()
                 if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[:2] == (groups, k)}
        codes = {name: (predictors or {}).get(name, encoder_predictor(deca, detail))(images, target, masks, groups, k,
                                                                                    truth)
                 for name, deca in models.items()}
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
                scorer.disp.extend(displacement_error(flat, true_disp, mask).tolist())
                continue
            predicted = deca.displacement(code)
            scorer.disp.extend(displacement_error(predicted, true_disp, mask).tolist())
            swapped = code.map(lambda t: t)
            swapped.detail = code.detail[perm]
            scorer.consistency.extend(displacement_error(deca.displacement(swapped), true_disp, mask).tolist())
            if groups > 1:
                swapped.detail = code.detail[other]
                scorer.other.extend(displacement_error(deca.displacement(swapped), true_disp, mask).tolist())
            if k > 1:  # image i keeps its detail code and takes the expression and jaw of image perm[i]
                moved = code.map(lambda t: t)
                moved.exp, moved.pose = code.exp[perm], torch.cat([code.pose[:, :3], code.pose[perm, 3:]], -1)
                change = deca.displacement(moved) - predicted
                true_change = true_disp[perm] - true_disp
                scorer.change.extend(displacement_error(change, true_change, mask).tolist())
                scorer.change_true.extend(displacement_error(torch.zeros_like(true_change), true_change, mask).tolist())
                scorer.add_change(change, true_change, mask)
        image_index += images.shape[0]
    if distances is not None:
        distances.update({name: scorer.distances_mm() for name, scorer in scorers.items()})
    return {name: scorer.result() for name, scorer in scorers.items()}
