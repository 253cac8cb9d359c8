"""Numerical precision of geometry under mixed precision.

Under ``torch.autocast`` (bf16 on GPU or CPU) matrix products run in reduced precision. The networks gain from
that, but FLAME's blend shapes and skinning, the barycentric landmarks and the SH shading lose millimetres and
shading accuracy (bf16 keeps 8 bits of mantissa: shading errors up to 0.014 were measured). Functions decorated
with :func:`full_precision` run with autocast off and their reduced-precision float inputs cast to float32.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)

_LOW = (torch.float16, torch.bfloat16)


def _to_fp32(value):
    if isinstance(value, torch.Tensor) and value.dtype in _LOW:
        return value.float()
    return value


def _device_type(args, kwargs) -> str:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device.type
    return "cpu"


def full_precision(fn: F) -> F:
    """Run ``fn`` outside autocast, with float16 / bfloat16 tensor arguments cast to float32.

    Float64 and float32 inputs pass unchanged, so float64 gradchecks still run in float64.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = _device_type(args, kwargs)
        if not torch.is_autocast_enabled(device) and not any(
            isinstance(v, torch.Tensor) and v.dtype in _LOW for v in (*args, *kwargs.values())
        ):
            return fn(*args, **kwargs)
        with torch.autocast(device_type=device, enabled=False):
            return fn(*(_to_fp32(a) for a in args), **{k: _to_fp32(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]
