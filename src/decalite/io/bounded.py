"""Bounded walks over unpickled objects and bounded conversions to numpy arrays.

A small pickle can describe a huge object graph without holding its data: 60 nested lists that each hold the
level below twice are 1 kB on disk and 2**60 elements when walked as a tree or given to ``np.asarray``; a torch
tensor of shape (10**9, 3) with zero strides is 8 bytes of storage and 22 GiB once made contiguous. The tools
here never trust such a declaration:

- :class:`BoundedWalk` visits each object once (memoised by identity), counts the objects it visits and the
  nesting depth, and refuses when either exceeds its :class:`LoadLimits`;
- :func:`to_array` computes how many elements a value would have *before* converting it (memoised over shared
  references), refuses more than the caller's limit, and refuses views (tensors, arrays) that declare more
  elements than the bytes behind them hold.

Every refusal is an :class:`~decalite.errors.AssetError` that names the file, the field and the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from decalite.errors import AssetError
from decalite.io.pickle_scan import DEFAULT_MAX_OPCODES

__all__ = [
    "DEFAULT_LIMITS",
    "BoundedWalk",
    "LoadLimits",
    "check_dims",
    "describe_shape",
    "tensor_problem",
    "to_array",
]

#: numpy arrays have at most 64 dimensions; nested lists deeper than this are not arrays.
_MAX_NESTING = 64


@dataclass(frozen=True)
class LoadLimits:
    """What one pickle-based file may hold.

    Attributes:
        max_bytes: size of the file (FLAME 2020's ``generic_model.pkl`` is about 90 MB).
        max_opcodes: opcodes of its pickle (see :mod:`decalite.io.pickle_scan`).
        max_nodes: distinct objects one walk over the unpickled result may visit.
        max_depth: nesting depth of containers (a FLAME file nests 4 deep).
        max_elements: elements one array converted without a field-specific limit may have (2**27: 1 GiB
            of float64).
    """

    max_bytes: int = 1 << 30
    max_opcodes: int = DEFAULT_MAX_OPCODES
    max_nodes: int = 1_000_000
    max_depth: int = 100
    max_elements: int = 1 << 27


DEFAULT_LIMITS = LoadLimits()


def describe_shape(shape: Any) -> str:
    """A shape for messages, safe for absurd values (huge ints are not printed digit by digit)."""
    try:
        dims = list(shape)
    except TypeError:
        dims = [shape]
    text = [str(d) if isinstance(d, int) and abs(d) < 1 << 64 else "<huge>" for d in dims[:8]]
    return "(" + ", ".join(text) + (", ..." if len(dims) > 8 else "") + ("," if len(dims) == 1 else "") + ")"


def check_dims(values: Any, what: str, source: str | None, *, max_len: int = _MAX_NESTING) -> tuple[int, ...]:
    """``values`` (a shape or strides from a pickle) as a tuple of ints in [0, 2**62).

    Raises:
        AssetError: not a sequence of at most ``max_len`` such ints.
    """
    if not isinstance(values, (tuple, list)) or len(values) > max_len:
        raise AssetError(source, f"{what} is not a tuple of at most {max_len} sizes ({type(values).__name__})")
    dims = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < 1 << 62:
            raise AssetError(source, f"{what} {describe_shape(values)} holds an invalid size")
        dims.append(int(value))
    return tuple(dims)


def _extent(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> int:
    """Bytes spanned by an array view of ``shape`` / ``strides`` (0 when it is empty)."""
    if 0 in shape:
        return 0
    return itemsize + sum((n - 1) * abs(s) for n, s in zip(shape, strides))


def _array_problem(arr: np.ndarray) -> str | None:
    """Why a numpy array view declares more elements than the bytes behind it, or None."""
    if arr.dtype.hasobject or arr.size <= 1:
        return None
    if arr.nbytes > _extent(arr.shape, arr.strides, arr.itemsize):
        return (
            f"a {describe_shape(arr.shape)} {arr.dtype} view with strides {arr.strides} over "
            f"{_extent(arr.shape, arr.strides, arr.itemsize):,} bytes (overlapping or zero strides)"
        )
    return None


def tensor_problem(tensor: Any) -> str | None:
    """Why a torch tensor declares more elements than its storage holds (e.g. zero strides), or None."""
    numel = int(tensor.numel())
    if numel <= 1 or tensor.layout != _torch().strided:
        return None
    itemsize = tensor.element_size()
    available = tensor.untyped_storage().nbytes() - tensor.storage_offset() * itemsize
    if numel * itemsize > available:
        return (
            f"a {describe_shape(tuple(tensor.shape))} {str(tensor.dtype).removeprefix('torch.')} tensor "
            f"({numel:,} elements, strides {tuple(tensor.stride())}) over a storage of {max(available, 0):,} bytes"
        )
    return None


def _torch() -> Any:
    import torch

    return torch


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "untyped_storage")


def _is_sparse(value: Any) -> bool:
    return type(value).__module__.startswith("scipy.sparse") and hasattr(value, "toarray")


_NUMBER_TYPES = (bool, int, float, complex, np.number, np.bool_)


class _NestedCount:
    """Elements that ``np.asarray`` would make of nested lists / tuples, memoised over shared references."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.memo: dict[int, int] = {}
        self.active: set[int] = set()

    def count(self, value: Any, depth: int = 0) -> int:
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise ValueError(f"it holds an object array of shape {describe_shape(value.shape)}")
            return int(value.size)
        if _is_tensor(value):
            return int(value.numel())
        if isinstance(value, _NUMBER_TYPES):
            return 1
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"it holds a {type(value).__name__}, not numbers")
        key = id(value)
        if key in self.memo:
            return self.memo[key]
        if key in self.active:
            raise ValueError("a list contains itself")
        if depth >= _MAX_NESTING:
            raise ValueError(f"lists are nested more than {_MAX_NESTING} deep")
        self.active.add(key)
        total = 0
        for item in value:
            total += self.count(item, depth + 1)
            if total > self.limit:
                total = self.limit + 1  # the verdict is known: stop adding
                break
        self.active.discard(key)
        self.memo[key] = total
        return total


def to_array(value: Any, *, name: str, source: str | None, max_elements: int, why: str = "") -> np.ndarray:
    """``value`` as an ndarray, refused before any allocation when it would be too large.

    Accepts numpy arrays, nested lists / tuples of numbers or arrays, scipy sparse matrices (densified), torch
    tensors and numbers. Arrays and tensors are returned without a copy where possible.

    Args:
        value: the object to convert.
        name: the field it is (e.g. ``"shapedirs"``), for messages.
        source: the file it came from, for messages.
        max_elements: the most elements the result may have.
        why: where that limit comes from, for messages (e.g. ``"5,023 vertices x 3 x at most 1,000 components"``).

    Returns:
        An ndarray with at most ``max_elements`` elements whose data is backed by distinct bytes.

    Raises:
        AssetError: naming ``source``, ``name`` and the limit: more elements than ``max_elements``, a view
            that declares more elements than the bytes behind it, or nested lists that are cyclic, too deep
            or hold something other than numbers.
    """
    limit = f"the {max_elements:,} allowed for it" + (f" ({why})" if why else "")

    def refuse(problem: str) -> AssetError:
        return AssetError(source, f"key '{name}' {problem}")

    if _is_sparse(value):
        count = math.prod(int(s) for s in value.shape)
        if count > max_elements:
            raise refuse(
                f"is a sparse {describe_shape(value.shape)} matrix: {count:,} elements when dense, more than {limit}"
            )
        return np.asarray(value.toarray())
    if _is_tensor(value):
        problem = tensor_problem(value)
        if problem:
            raise refuse(f"is {problem}: it declares more data than the file holds")
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        try:
            count = _NestedCount(max_elements).count(value)
        except ValueError as exc:
            raise refuse(f"is a nested list that is not an array: {exc}") from None
        if count > max_elements:
            raise refuse(
                f"is a nested list of more elements than {limit}; lists that share references count each time "
                "they appear"
            )
    arr = np.asarray(value)
    if arr.size > max_elements:
        raise refuse(f"has shape {describe_shape(arr.shape)}: {arr.size:,} elements, more than {limit}")
    problem = _array_problem(arr)
    if problem:
        raise refuse(f"is {problem}: it declares more data than the file holds")
    return arr


class BoundedWalk:
    """Base of walks over an unpickled object graph: memo by identity, node count, depth and a readable path.

    Subclasses call :meth:`push` / :meth:`pop` around each child they visit and :meth:`visit_node` for each
    distinct object; :meth:`error` builds an AssetError naming the file and the path (e.g.
    ``'J_regressor'['data']``).

    Attributes:
        source: the file, for messages.
        limits: the bounds.
        memo: ``id(obj) -> result`` of the objects visited so far.
    """

    def __init__(self, source: str | None, root: str, limits: LoadLimits = DEFAULT_LIMITS) -> None:
        self.source = source
        self.limits = limits
        self.memo: dict[int, Any] = {}
        self._path: list[str] = [root]
        self._nodes = 0

    def where(self) -> str:
        """The path to the object being visited, e.g. ``'J_regressor'['data']`` (middle elided when deep)."""
        path = self._path if len(self._path) <= 12 else [*self._path[:6], "[...]", *self._path[-5:]]
        return "".join(path)

    def error(self, problem: str) -> AssetError:
        return AssetError(self.source, f"{self.where()} {problem}")

    def push(self, key: Any) -> None:
        """Step into the child ``key`` (a dict key or an index); refuses nesting deeper than the limit."""
        text = repr(key) if isinstance(key, (str, bytes, int)) else f"<{type(key).__name__}>"
        self._path.append(f"[{text[:40]}]")
        if len(self._path) > self.limits.max_depth:
            raise self.error(f"is nested more than {self.limits.max_depth} levels deep (the limit)")

    def pop(self) -> None:
        self._path.pop()

    def visit(self, value: Any) -> Any:
        """Subclasses: convert or check ``value`` (and walk into it through :meth:`_child`)."""
        raise NotImplementedError

    def _child(self, key: Any, value: Any) -> Any:
        """:meth:`visit` the child ``key`` with the path stepped into it."""
        self.push(key)
        result = self.visit(value)
        self.pop()
        return result

    def visit_node(self) -> None:
        """Count one distinct object; refuses more than ``limits.max_nodes``."""
        self._nodes += 1
        if self._nodes > self.limits.max_nodes:
            raise AssetError(
                self.source, f"at {self.where()}: it holds more than {self.limits.max_nodes:,} objects (the limit)"
            )
