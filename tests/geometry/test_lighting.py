"""Tests of decalite.geometry.lighting (DECA's SH shading)."""

from __future__ import annotations

import math

import pytest
import torch

from decalite.geometry.lighting import SH_CONSTANTS, sh_basis, sh_shading, white_light


def _unit(shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    n = torch.randn(*shape, 3, generator=gen, dtype=dtype)
    return n / n.norm(dim=-1, keepdim=True)


def test_constants_match_formulas_and_values() -> None:
    pi = math.pi
    expected = [
        1 / math.sqrt(4 * pi),
        *[(2 * pi / 3) * math.sqrt(3 / (4 * pi))] * 3,
        *[(pi / 4) * 3 * math.sqrt(5 / (12 * pi))] * 3,
        (pi / 4) * (3 / 2) * math.sqrt(5 / (12 * pi)),
        (pi / 4) * (1 / 2) * math.sqrt(5 / (4 * pi)),
    ]
    rounded = [0.2821, 1.0233, 1.0233, 1.0233, 0.8581, 0.8581, 0.8581, 0.4290, 0.2477]
    assert len(SH_CONSTANTS) == 9
    for c, e, r in zip(SH_CONSTANTS, expected, rounded):
        assert c == pytest.approx(e, abs=1e-12)
        assert c == pytest.approx(r, abs=1e-4)


def test_basis_shape_and_dc() -> None:
    n = _unit((2, 4, 5))
    b = sh_basis(n)
    assert b.shape == (2, 4, 5, 9)
    torch.testing.assert_close(b[..., 0], torch.full((2, 4, 5), SH_CONSTANTS[0], dtype=n.dtype))


@pytest.mark.parametrize("shape", [(3, 50), (2, 4, 6)])
@pytest.mark.parametrize("intensity", [1.0, 0.7])
def test_white_light_uniform(shape: tuple[int, ...], intensity: float) -> None:
    n = _unit(shape, torch.float32)
    light = white_light(shape[0], intensity=intensity)
    assert light.shape == (shape[0], 9, 3)
    s = sh_shading(n, light)
    assert s.shape == (*shape, 3)
    torch.testing.assert_close(s, torch.full_like(s, intensity))


def _single_light(k: int, value: float) -> torch.Tensor:
    light = torch.zeros(1, 9, 3, dtype=torch.float64)
    light[:, k, :] = value
    return light


@pytest.mark.parametrize(
    ("normal", "k", "value", "expected"),
    [
        ((0.0, 0.0, 1.0), 3, 1.0, 1.0233),
        ((1.0, 0.0, 0.0), 7, 1.0, 0.4290),
        ((0.0, 0.0, 1.0), 8, 1.0, 0.2477 * 2),
    ],
)
def test_pinned_values(
    normal: tuple[float, float, float], k: int, value: float, expected: float
) -> None:
    n = torch.tensor([[normal]], dtype=torch.float64)  # (1, 1, 3)
    s = sh_shading(n, _single_light(k, value))
    assert s.shape == (1, 1, 3)
    torch.testing.assert_close(s, torch.full_like(s, expected), atol=1e-4, rtol=0)


def test_channels_independent() -> None:
    n = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64)
    light = torch.zeros(1, 9, 3, dtype=torch.float64)
    light[0, 3] = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
    s = sh_shading(n, light)
    expected = SH_CONSTANTS[3] * torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(s[0, 0], expected)


def test_gradcheck() -> None:
    n = _unit((2, 3)).requires_grad_(True)
    gen = torch.Generator().manual_seed(1)
    light = torch.randn(2, 9, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sh_shading, (n, light))


def test_bad_light_shape() -> None:
    with pytest.raises(ValueError):
        sh_shading(_unit((1, 2)), torch.zeros(1, 4, 3, dtype=torch.float64))
