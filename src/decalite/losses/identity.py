"""DECA's identity loss: one minus the cosine similarity of face-recognition embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def identity_loss(emb_pred: torch.Tensor, emb_target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the batch of ``1 - cos(emb_pred[b], emb_target[b])`` (DECA's L_id).

    Args:
        emb_pred: (B, D) embeddings of the rendered images.
        emb_target: (B, D) embeddings of the input images (usually computed under ``torch.no_grad()``).
        eps: lower bound on each embedding's norm, as in ``torch.nn.functional.cosine_similarity``.

    Returns:
        A scalar in [0, 2]: 0 for parallel embeddings, 1 for orthogonal ones, 2 for opposite ones.

    Raises:
        ValueError: the inputs are not both (B, D) with the same shape, or B or D is 0.
    """
    if emb_pred.ndim != 2 or emb_pred.shape != emb_target.shape:
        raise ValueError(
            f"identity_loss expects two (B, D) embeddings of the same shape, got {tuple(emb_pred.shape)} and "
            f"{tuple(emb_target.shape)}"
        )
    if emb_pred.shape[0] == 0 or emb_pred.shape[1] == 0:
        raise ValueError(f"identity_loss got empty embeddings of shape {tuple(emb_pred.shape)}")
    return (1.0 - F.cosine_similarity(emb_pred, emb_target, dim=1, eps=eps)).mean()
