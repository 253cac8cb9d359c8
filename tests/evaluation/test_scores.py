"""The synthetic benchmark's pooled Pearson correlation of expression-driven displacement changes."""

from __future__ import annotations

import pytest
import torch

from decalite.evaluation.scores import _Scorer


def _pearson(change: torch.Tensor, true: torch.Tensor, mask: torch.Tensor, chunks: int = 1) -> float | None:
    scorer = _Scorer()
    for a, b in zip(change.chunk(chunks), true.chunk(chunks)):
        scorer.add_change(a, b, mask)
    return scorer.pearson()


def test_pearson_of_changes_matches_the_textbook_value_inside_the_mask() -> None:
    g = torch.Generator().manual_seed(0)
    true = torch.randn(6, 1, 8, 8, generator=g)
    noisy = 0.5 * true + 0.3 * torch.randn(6, 1, 8, 8, generator=g)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 1:7] = 1.0
    inside = mask.expand_as(true).bool()
    expected = torch.corrcoef(torch.stack([noisy[inside], true[inside]]).double())[0, 1]
    assert _pearson(noisy, true, mask) == pytest.approx(float(expected), abs=1e-9)
    assert _pearson(noisy, true, mask, chunks=3) == pytest.approx(float(expected), abs=1e-9)  # pooled over batches
    assert _pearson(2 * true + 1, true, mask) == pytest.approx(1.0)
    assert _pearson(-true, true, mask) == pytest.approx(-1.0)
    assert _pearson(torch.zeros_like(true), true, mask) == 0.0  # details that ignore the expression
    # Outside the mask nothing counts.
    outside = noisy.clone()
    outside[~inside] = 100.0
    assert _pearson(outside, true, mask) == pytest.approx(float(expected), abs=1e-9)
    assert _Scorer().pearson() is None
