"""Temporal smoothing of per-frame codes: the one-euro filter (Casiez, Roussel and Vogel, "1 Euro Filter: A Simple
Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012), written from the paper.

An exponential low-pass filter whose cutoff rises with the signal's speed: ``cutoff = min_cutoff + beta * |dx/dt|``,
so a still head loses its jitter (low cutoff) and a moving one keeps up (high cutoff). Pure functions over (T, D)
sequences, each column filtered on its own.
"""

from __future__ import annotations

import math

import torch


def _alpha(cutoff: torch.Tensor | float, dt: float) -> torch.Tensor | float:
    """The smoothing factor of a first-order low-pass filter with this cutoff (Hz) at sampling period dt (s)."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(x: torch.Tensor, fps: float, min_cutoff: float = 1.0, beta: float = 0.0,
             derivative_cutoff: float = 1.0) -> torch.Tensor:
    """Filter a sequence (T, D) sampled at ``fps`` frames per second; returns (T, D), the first frame unchanged.

    Args:
        min_cutoff: the cutoff (Hz) of a still signal: lower removes more jitter and lags more.
        beta: how fast the cutoff rises with speed (per unit of the signal per second): higher lags less on motion.
        derivative_cutoff: the cutoff (Hz) of the filtered speed.
    """
    if x.ndim != 2:
        raise ValueError(f"one_euro filters (T, D) sequences; got shape {tuple(x.shape)}")
    if fps <= 0 or min_cutoff <= 0 or derivative_cutoff <= 0 or beta < 0:
        raise ValueError(f"one_euro needs fps, min_cutoff, derivative_cutoff > 0 and beta >= 0; got fps={fps}, "
                         f"min_cutoff={min_cutoff}, derivative_cutoff={derivative_cutoff}, beta={beta}")
    dt = 1.0 / fps
    out = [x[0]]
    speed = torch.zeros_like(x[0])
    a_d = _alpha(derivative_cutoff, dt)
    for t in range(1, x.shape[0]):
        raw_speed = (x[t] - out[-1]) / dt
        speed = a_d * raw_speed + (1 - a_d) * speed
        a = _alpha(min_cutoff + beta * speed.abs(), dt)
        out.append(a * x[t] + (1 - a) * out[-1])
    return torch.stack(out)
