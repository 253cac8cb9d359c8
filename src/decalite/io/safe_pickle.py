"""Restricted unpickling of the pickles that FLAME-format assets are stored in.

``generic_model.pkl`` (a Python-2-era pickle holding numpy arrays, a scipy sparse matrix and, in some copies,
``chumpy`` objects) and ``landmark_embedding.npy`` (an ``.npy`` file whose payload is a pickled dict holding
numpy arrays and torch tensors) are pickles. A plain ``pickle.load`` would run whatever callable such a file
names, so decalite reads them with :class:`RestrictedUnpickler`, whose ``find_class`` admits only the few
globals these files need (see :data:`ALLOWED_GLOBALS`). Anything else raises :class:`UnsafePickleError` as soon
as the global is *looked up*, i.e. before any object of the file is constructed or called.

``chumpy`` is never imported: its classes are replaced by :class:`ChumpyStandIn` subclasses that merely keep
the pickled state (the value of a plain ``Ch`` lives under ``'x'``); :func:`chumpy_to_numpy` turns them into
arrays. scipy sparse matrices are rebuilt from their pickled fields (``data``, ``indices``, ``indptr`` and the
shape) as the current scipy classes, whatever module path (``scipy.sparse.csc`` or ``scipy.sparse._csc``) the
pickle names.

Time and memory are bounded too (:class:`~decalite.io.bounded.LoadLimits`): the file's size is capped and its
opcode stream is checked by :func:`~decalite.io.pickle_scan.scan_pickle` before unpickling; the allowed
callables refuse arguments that would allocate more than the file holds (``_reconstruct`` of a non-empty shape,
numpy scalars of huge dtypes, ``set`` / ``OrderedDict`` / ``bytes`` of anything but plain containers, torch
storages whose declared size exceeds their bytes); the walks over the result visit each object once, with a
bound on objects and depth, and refuse tensors that declare more elements than their storage holds (zero
strides). Every refusal is an :class:`~decalite.errors.AssetError` naming the file (and the field where known).
"""

from __future__ import annotations

import _compat_pickle
import builtins
import importlib
import io
import logging
import math
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from decalite.errors import AssetError, UnsafePickleError
from decalite.io.bounded import DEFAULT_LIMITS, BoundedWalk, LoadLimits, check_dims, tensor_problem, to_array
from decalite.io.npy import check_npy_size, read_npy_header
from decalite.io.pathlike import PathLike
from decalite.io.pickle_scan import scan_pickle

__all__ = [
    "ALLOWED_GLOBALS",
    "ChumpyStandIn",
    "LoadLimits",
    "RestrictedUnpickler",
    "SparseStandIn",
    "chumpy_to_numpy",
    "safe_load_npy_pickle",
    "safe_load_pickle",
]

logger = logging.getLogger(__name__)


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Translate Python 2 names (``copy_reg``, ``__builtin__``, ...) as Python 3's ``fix_imports`` does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


_SPARSE_FORMATS = ("csc", "csr", "coo")
_SPARSE_MODULES = {"scipy.sparse"} | {
    f"scipy.sparse.{prefix}{fmt}" for fmt in _SPARSE_FORMATS for prefix in ("", "_")
}

# Builtins that pickles of these files use: ``object`` (the base in ``copyreg._reconstructor``), sets, and
# bytes / bytearray (how Python 3 writes them in protocols < 3); sets, bytes and bytearray are handed out
# guarded (below): they accept only plain containers, whose size the opcode count bounds.
_SAFE_BUILTINS = ("object", "complex", "slice")
#: What guarded constructors may iterate: containers the unpickler built item by item.
_PLAIN_CONTAINERS = (list, tuple, set, frozenset, dict, str, bytes, bytearray)
#: numpy scalars of these files are at most 16 bytes (complex128); structured scalars stay small.
_MAX_SCALAR_BYTES = 4096


# --------------------------------------------------------------------------------------------------------
# Stand-ins


class ChumpyStandIn:
    """Data-only stand-in for a pickled ``chumpy`` object; chumpy itself is never imported.

    Attributes:
        state: the pickled state dict (``{'x': ndarray, ...}`` for a plain ``Ch``).
        args: positional arguments, if the pickle constructed the object with any.
        pickled_module: the chumpy module named by the pickle, e.g. ``"chumpy.ch"``.
        pickled_name: the chumpy class named by the pickle, e.g. ``"Ch"``.
    """

    pickled_module: str = "chumpy"
    pickled_name: str = "?"
    args: tuple[Any, ...]
    state: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> ChumpyStandIn:
        obj = super().__new__(cls)
        obj.args = args
        obj.state = dict(kwargs)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            merged: dict[str, Any] = {}
            for part in state:
                merged.update(part or {})
            state = merged
        self.state = dict(state) if isinstance(state, dict) else {"_state": state}

    @property
    def class_path(self) -> str:
        return f"{self.pickled_module}.{self.pickled_name}"

    def __repr__(self) -> str:
        return f"<chumpy stand-in {self.class_path} keys={sorted(map(str, self.state))}>"


class SparseStandIn:
    """Holds the pickled fields of a scipy sparse matrix until it is rebuilt by :meth:`to_scipy`."""

    sparse_format: str = "csc"
    sparse_kind: str = "matrix"  # or "array"
    pickled_path: str = ""
    state: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> SparseStandIn:
        obj = super().__new__(cls)
        obj.state = {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected pickled state for {self.pickled_path}: {type(state).__name__}")
        self.state = dict(state)

    def to_scipy(self) -> Any:
        """Rebuild the matrix as the current scipy class (``csc_matrix``, ``csr_array``, ...)."""
        import scipy.sparse as sp

        st = self.state
        shape = st.get("_shape", st.get("shape"))
        if shape is None:
            raise pickle.UnpicklingError(f"pickled {self.pickled_path} has no shape")
        shape = check_dims(shape, f"the shape of pickled {self.pickled_path}", None, max_len=2)
        cls = getattr(sp, f"{self.sparse_format}_{self.sparse_kind}")
        if self.sparse_format == "coo":
            if "coords" in st and isinstance(st["coords"], (tuple, list)):
                coords = tuple(self._field(c, "coords") for c in st["coords"])
            elif "row" in st and "col" in st:
                coords = (self._field(st["row"], "row"), self._field(st["col"], "col"))
            else:
                raise pickle.UnpicklingError(f"pickled {self.pickled_path} has no row/col indices")
            return cls((self._field(st.get("data"), "data"), coords), shape=shape)
        missing = [k for k in ("data", "indices", "indptr") if k not in st]
        if missing:
            raise pickle.UnpicklingError(f"pickled {self.pickled_path} lacks {missing}")
        arrays = tuple(self._field(st[k], k) for k in ("data", "indices", "indptr"))
        return cls(arrays, shape=shape)

    def _field(self, value: Any, key: str) -> np.ndarray:
        """A pickled field of the matrix: scipy always stores ndarrays (lists could expand without bound)."""
        if not isinstance(value, np.ndarray) or value.dtype.hasobject:
            raise pickle.UnpicklingError(f"pickled {self.pickled_path} field '{key}' is a {type(value).__name__}")
        return value


# --------------------------------------------------------------------------------------------------------
# Guarded callables handed out by find_class


class _Refused(pickle.UnpicklingError):
    """An allowed global was called with arguments decalite refuses (reported as UnsafePickleError)."""

    def __init__(self, global_name: str, detail: str) -> None:
        super().__init__(detail)
        self.global_name = global_name
        self.detail = detail


class _Guarded:
    """A callable wrapper that cannot be modified by the pickle (``BUILD`` on it fails)."""

    __slots__ = ("_fn", "_name")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __setattr__(self, key: str, value: Any) -> None:
        raise _Refused(self._name, f"the pickle tried to modify {self._name}")

    def __repr__(self) -> str:
        return f"<guarded {self._name}>"


def _numpy_attr(submodule: str, name: str) -> Any:
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {submodule}.{name}")  # pragma: no cover


class _NdarrayToken(_Guarded):
    """What ``find_class`` hands out for ``numpy.ndarray``: the first argument of ``_reconstruct``.

    Calling ``np.ndarray(shape)`` would allocate whatever shape the pickle names, so the token refuses calls
    (and, not being a type, ``NEWOBJ``); :func:`_np_reconstruct` accepts it in place of ``np.ndarray``.
    """

    __slots__ = ()


def _refuse_ndarray_call(*args: Any, **kwargs: Any) -> Any:
    raise _Refused("numpy.ndarray", "numpy.ndarray(<shape>) (an allocation of whatever shape the pickle names)")


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct``: numpy pickles an empty (0,) array, then fills it with ``BUILD``."""
    if not isinstance(subtype, _NdarrayToken) and subtype is not np.ndarray:
        raise _Refused("numpy _reconstruct", f"array reconstruction of non-ndarray type {subtype!r}")
    dims = check_dims(shape if isinstance(shape, (tuple, list)) else (shape,), "an array shape", None)
    if math.prod(dims) != 0:  # the array would be allocated at this shape, with no data behind it
        raise _Refused("numpy _reconstruct", f"_reconstruct of a non-empty shape {dims} (numpy pickles use (0,))")
    return _numpy_attr("multiarray", "_reconstruct")(np.ndarray, dims, dtype)


def _np_scalar(dtype: Any, *args: Any) -> Any:
    if not isinstance(dtype, np.dtype):
        raise _Refused("numpy scalar", "numpy scalar reconstruction without a dtype")
    if dtype.itemsize > _MAX_SCALAR_BYTES:
        raise _Refused("numpy scalar", f"a numpy scalar of {dtype.itemsize:,} bytes (dtype {str(dtype)[:60]})")
    return _numpy_attr("multiarray", "scalar")(dtype, *args)


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, np.dtype):
        raise _Refused("numpy _frombuffer", "numpy buffer reconstruction without a dtype")
    return _numpy_attr("numeric", "_frombuffer")(buf, dtype, shape, order)


def _torch_load_storage(data: Any) -> Any:
    """Stand-in for ``torch.storage._load_from_bytes``: the bytes are checked, then read with ``weights_only=True``.

    The payload is a legacy-format ``torch.save`` of one storage; torch would allocate the element count its
    pickle declares before reading the data, so :func:`~decalite.io.torch_files.check_legacy_torch_bytes`
    compares the declaration with the bytes first.
    """
    import torch

    from decalite.io.torch_files import check_legacy_torch_bytes

    if not isinstance(data, (bytes, bytearray)):
        raise _Refused("torch.storage._load_from_bytes", "a torch storage payload that is not bytes")
    check_legacy_torch_bytes(bytes(data), None)
    storage = torch.load(io.BytesIO(bytes(data)), weights_only=True)
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"torch storage payload holds a {type(storage).__name__}")
    return storage


def _torch_rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any) -> Any:
    """Stand-in for ``torch._utils._rebuild_tensor(_v2)``; hooks and metadata of the pickle are ignored."""
    import torch
    from torch._utils import _rebuild_tensor

    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise _Refused("torch._utils._rebuild_tensor_v2", f"tensor rebuild from a {type(storage).__name__}")
    (offset,) = check_dims((storage_offset,), "a tensor's storage offset", None)
    size_t = check_dims(size, "a tensor's size", None)
    stride_t = check_dims(stride, "a tensor's strides", None)
    if len(size_t) != len(stride_t):
        raise pickle.UnpicklingError(f"tensor size {size_t} and strides {stride_t} differ in length")
    return _rebuild_tensor(storage, offset, size_t, stride_t)  # a view: torch checks that it fits the storage


def _plain_args(cls: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``cls(*args)`` where the iterable argument must be a plain container built by the unpickler.

    ``bytes(n)`` would allocate n bytes, and iterating a tensor or array could create millions of objects
    from a few bytes of pickle (a zero-stride tensor) or many times the file's size (an array).
    """

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise _Refused(name, f"{name.removeprefix('builtins.')}(<size>)")
        if args and not isinstance(args[0], _PLAIN_CONTAINERS):
            raise _Refused(name, f"{name.removeprefix('builtins.')}() of a {type(args[0]).__name__}")
        return cls(*args)

    return build


def _guarded_builtin(cls: type) -> _Guarded:
    return _Guarded(f"builtins.{cls.__name__}", _plain_args(cls, f"builtins.{cls.__name__}"))


def _codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    import codecs

    if not isinstance(obj, str) or encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "utf8"):
        raise _Refused("_codecs.encode", f"_codecs.encode({type(obj).__name__}, {encoding!r})")
    return codecs.encode(obj, encoding, errors)


#: The allow-list: ``(module, name)`` as written in the pickle (Python 2 module names are translated
#: first) -> what ``find_class`` hands out. chumpy classes (any ``chumpy`` / ``chumpy.*`` module) and scipy
#: sparse ``csc``/``csr``/``coo`` matrix/array classes (any of their old or new module paths) are admitted
#: too, as stand-ins; ``copyreg._reconstructor`` / ``copyreg.__newobj__`` only build classes that
#: ``find_class`` itself handed out during the same load.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    **{
        (f"{pkg}.multiarray", "_reconstruct"): (lambda: _Guarded("numpy _reconstruct", _np_reconstruct))
        for pkg in ("numpy.core", "numpy._core")
    },
    **{
        (f"{pkg}.multiarray", "scalar"): (lambda: _Guarded("numpy scalar", _np_scalar))
        for pkg in ("numpy.core", "numpy._core")
    },
    **{
        (f"{pkg}.numeric", "_frombuffer"): (lambda: _Guarded("numpy _frombuffer", _np_frombuffer))
        for pkg in ("numpy.core", "numpy._core")
    },
    ("numpy", "ndarray"): lambda: _NdarrayToken("numpy.ndarray", _refuse_ndarray_call),
    ("numpy", "dtype"): lambda: np.dtype,
    ("collections", "OrderedDict"): lambda: _Guarded("OrderedDict", _plain_args(OrderedDict, "OrderedDict")),
    ("_codecs", "encode"): lambda: _Guarded("_codecs.encode", _codecs_encode),
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _Guarded("torch tensor rebuild", _torch_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): lambda: _Guarded("torch tensor rebuild", _torch_rebuild_tensor),
    ("torch.storage", "_load_from_bytes"): lambda: _Guarded("torch storage load", _torch_load_storage),
    **{("builtins", name): (lambda name=name: getattr(builtins, name)) for name in _SAFE_BUILTINS},
    **{("builtins", cls.__name__): (lambda cls=cls: _guarded_builtin(cls)) for cls in (set, frozenset, bytes, bytearray)},
}


# --------------------------------------------------------------------------------------------------------
# The unpickler


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only :data:`ALLOWED_GLOBALS` (plus stand-ins).

    Args:
        file: a binary stream positioned at the start of the pickle.
        source: the file name used in error messages.
        encoding: how Python 2 ``str`` objects are decoded (``"latin1"`` keeps numpy buffers intact).
    """

    def __init__(self, file: IO[bytes], *, source: str | None = None, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self._source = source
        self._handed_out: dict[tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        module, name = _python3_name(module, name)
        key = (module, name)
        if key in self._handed_out:
            return self._handed_out[key]
        obj = self._resolve(module, name)
        self._handed_out[key] = obj
        return obj

    def _resolve(self, module: str, name: str) -> Any:
        if (module == "chumpy" or module.startswith("chumpy.")) and name.isidentifier():
            attrs = {"pickled_module": module, "pickled_name": name, "__module__": __name__}
            return type(name, (ChumpyStandIn,), attrs)
        if module in _SPARSE_MODULES:
            fmt, _, kind = name.partition("_")
            suffix = module[len("scipy.sparse") :].lstrip(".").lstrip("_")
            fmt_ok = fmt in _SPARSE_FORMATS and suffix in ("", fmt)
            if fmt_ok and kind in ("matrix", "array"):
                attrs = {"sparse_format": fmt, "sparse_kind": kind, "pickled_path": f"{module}.{name}"}
                return type(name, (SparseStandIn,), {**attrs, "__module__": __name__})
        if module == "copyreg" and name in ("_reconstructor", "__newobj__"):
            fn = self._reconstructor if name == "_reconstructor" else self._newobj
            return _Guarded(f"copyreg.{name}", fn)
        factory = ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            logger.debug("Refused pickle global %s.%s in %s", module, name, self._source)
            raise UnsafePickleError(self._source, f"{module}.{name}")
        return factory()

    def _check_handed_class(self, cls: Any) -> None:
        if not isinstance(cls, type) or not any(cls is obj for obj in self._handed_out.values()):
            raise _Refused("copyreg", f"object construction of {cls!r}")

    def _reconstructor(self, cls: Any, base: Any, state: Any) -> Any:
        self._check_handed_class(cls)
        if base is not object or state is not None:
            raise _Refused("copyreg._reconstructor", f"copyreg._reconstructor with base {base!r}")
        if not issubclass(cls, (ChumpyStandIn, SparseStandIn)):
            raise _Refused("copyreg._reconstructor", f"copyreg._reconstructor of {cls!r}")
        return cls.__new__(cls)

    def _newobj(self, cls: Any, *args: Any) -> Any:
        self._check_handed_class(cls)
        return cls.__new__(cls, *args)


# --------------------------------------------------------------------------------------------------------
# Post-processing


class _Finalize(BoundedWalk):
    """Replaces :class:`SparseStandIn` objects by scipy matrices in place and refuses over-declared tensors.

    Each object is visited once (shared references and cycles included), within the walk's node and depth
    bounds.
    """

    def visit(self, obj: Any) -> Any:
        oid = id(obj)
        if oid in self.memo:
            return self.memo[oid]
        if isinstance(obj, (str, bytes, int, float, bool, type(None))):
            return obj
        self.visit_node()
        if isinstance(obj, SparseStandIn):
            self.memo[oid] = result = obj.to_scipy()
            return result
        self.memo[oid] = obj
        if isinstance(obj, (dict, list)):
            self._children(obj, obj.items() if isinstance(obj, dict) else enumerate(obj))
        elif isinstance(obj, tuple):
            items = [self._child(i, v) for i, v in enumerate(obj)]
            if any(a is not b for a, b in zip(items, obj)):
                self.memo[oid] = obj = tuple(items)
        elif isinstance(obj, np.ndarray) and obj.dtype.hasobject:
            for idx in np.ndindex(obj.shape):
                new = self._child(idx, obj[idx])
                if new is not obj[idx]:
                    obj[idx] = new
        elif isinstance(obj, ChumpyStandIn):
            self._child("state", obj.state)
        elif type(obj).__module__.startswith("torch") and hasattr(obj, "untyped_storage"):
            problem = tensor_problem(obj)
            if problem:
                raise self.error(f"is {problem}: it declares more data than the file holds")
        return obj

    def _children(self, container: dict | list, items: Any) -> None:
        for key, value in list(items):
            new = self._child(key, value)
            if new is not value:
                container[key] = new


def _read_bounded(stream: IO[bytes], source: str, max_bytes: int) -> bytes:
    """The rest of ``stream``, refused when longer than ``max_bytes`` (read at most ``max_bytes + 1`` bytes)."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise AssetError(source, f"it is larger than {max_bytes:,} bytes, the limit for this file")
    return data


def _unpickle_bytes(data: bytes, source: str, encoding: str, limits: LoadLimits) -> Any:
    """Check the opcode stream of ``data``, unpickle it with :class:`RestrictedUnpickler`, then finalize it."""
    try:
        end = scan_pickle(data, source=source, max_opcodes=limits.max_opcodes).end
        obj = RestrictedUnpickler(io.BytesIO(data[:end] if end < len(data) else data), source=source,
                                  encoding=encoding).load()
        return _Finalize(source, "the pickled object", limits).visit(obj)
    except AssetError as exc:
        raise exc.add_context(path=source)
    except _Refused as exc:
        problem = f"refused to unpickle it: it calls {exc.detail}, which decalite does not allow; nothing was executed"
        raise UnsafePickleError(source, exc.global_name, problem=problem) from exc
    except Exception as exc:
        raise AssetError(source, f"unreadable or truncated pickle ({type(exc).__name__}: {str(exc)[:300]})") from exc


def _describe(fileobj_or_path: Any, source: str | None) -> str:
    if source is not None:
        return source
    if isinstance(fileobj_or_path, (str, os.PathLike)):
        return os.fspath(fileobj_or_path)
    return str(getattr(fileobj_or_path, "name", "<stream>"))


def _open_binary(path: PathLike) -> IO[bytes]:
    try:
        return open(path, "rb")
    except FileNotFoundError as exc:
        raise AssetError(path, "file not found") from exc
    except OSError as exc:
        raise AssetError(path, f"cannot open it ({exc.strerror or exc})") from exc


def safe_load_pickle(
    fileobj_or_path: PathLike | IO[bytes],
    *,
    encoding: str = "latin1",
    source: str | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
) -> Any:
    """Unpickle a file with :class:`RestrictedUnpickler`, within ``limits``.

    Args:
        fileobj_or_path: a path, or a binary stream positioned at the pickle (read to its end).
        encoding: decoding of Python 2 ``str`` objects; ``"latin1"`` as FLAME's loaders use.
        source: the name used in error messages (default: the path or the stream's ``name``).
        limits: size, opcode, object and depth bounds (see :class:`~decalite.io.bounded.LoadLimits`).

    Returns:
        The unpickled object. scipy sparse matrices are current scipy classes; chumpy objects are
        :class:`ChumpyStandIn` instances (see :func:`chumpy_to_numpy`). Every array and tensor in it is backed
        by bytes of the file.

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list (nothing was executed).
        AssetError: the file is missing, unreadable, truncated, or exceeds ``limits``.
    """
    name = _describe(fileobj_or_path, source)
    if isinstance(fileobj_or_path, (str, os.PathLike)):
        with _open_binary(fileobj_or_path) as stream:
            data = _read_bounded(stream, name, limits.max_bytes)
    else:
        data = _read_bounded(fileobj_or_path, name, limits.max_bytes)
    return _unpickle_bytes(data, name, encoding, limits)


def safe_load_npy_pickle(
    path: PathLike, *, encoding: str = "latin1", limits: LoadLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """Read an ``.npy`` file; an object-dtype payload is unpickled with :class:`RestrictedUnpickler`.

    Returns what ``np.load(path, allow_pickle=True)`` would, without its risk: an ``np.ndarray`` (for a
    dict saved with ``np.save``, a 0-d object array; use ``arr[()]`` or ``arr.item()`` to get the dict).
    Non-object arrays are read with ``np.load(..., allow_pickle=False)`` once the size their header declares
    is known to be in the file (and within ``limits.max_bytes``).

    Raises:
        UnsafePickleError: the payload names a global outside the allow-list (nothing was executed).
        AssetError: the file is missing, not an ``.npy`` file, unreadable, truncated, declares more data than
            it holds, or exceeds ``limits``.
    """
    source = os.fspath(path)
    with _open_binary(path) as stream:
        header = read_npy_header(stream, source)
        if not header.dtype.hasobject:
            available = os.fstat(stream.fileno()).st_size - header.offset
            check_npy_size(header, available, source, name="the array", max_bytes=limits.max_bytes)
            stream.seek(0)
            try:
                return np.load(stream, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise AssetError(source, f"unreadable or truncated .npy file ({exc})") from exc
        logger.debug("Unpickling object .npy payload of %s (shape %s)", source, header.shape)
        data = _read_bounded(stream, source, limits.max_bytes)
    arr = _unpickle_bytes(data, source, encoding, limits)
    if not isinstance(arr, np.ndarray):
        raise AssetError(source, f"the .npy payload is a pickled {type(arr).__name__}, not an array")
    return arr


# --------------------------------------------------------------------------------------------------------
# chumpy -> numpy


class _ChumpyToNumpy(BoundedWalk):
    """Converts chumpy stand-ins to arrays, rebuilding dicts, lists and tuples around them.

    Shared references are converted once (the result shares them too); a chumpy value that contains itself
    is refused.
    """

    _ACTIVE = object()

    def __init__(self, source: str | None, name: str, limits: LoadLimits) -> None:
        super().__init__(source, f"'{name}'", limits)
        self.name = name

    def visit(self, obj: Any) -> Any:
        if not isinstance(obj, (ChumpyStandIn, dict, list, tuple)):
            return obj
        oid = id(obj)
        if oid in self.memo:
            if self.memo[oid] is self._ACTIVE:
                raise self.error("refers to itself")
            return self.memo[oid]
        self.visit_node()
        if isinstance(obj, dict):
            self.memo[oid] = out = type(obj)()
            for key, value in obj.items():
                out[key] = self._child(key, value)
            return out
        if isinstance(obj, list):
            self.memo[oid] = out_list = []
            out_list.extend(self._child(i, v) for i, v in enumerate(obj))
            return out_list
        self.memo[oid] = self._ACTIVE
        if isinstance(obj, tuple):
            result: Any = tuple(self._child(i, v) for i, v in enumerate(obj))
        else:
            result = self._chumpy(obj)
        self.memo[oid] = result
        return result

    def _chumpy(self, obj: ChumpyStandIn) -> np.ndarray:
        if "x" not in obj.state:
            raise self.error(
                f"is a derived chumpy expression ({obj.class_path}) without a stored value 'x'; "
                "re-save the file with plain numpy arrays"
            )
        value = self._child("x", obj.state["x"])
        field = self.name + self.where()[len(self.name) + 2 :]  # e.g. v_template, or J['x'] for nested values
        return to_array(value, name=field, source=self.source, max_elements=self.limits.max_elements)


def chumpy_to_numpy(
    obj: Any, *, name: str = "value", source: str | None = None, limits: LoadLimits = DEFAULT_LIMITS
) -> Any:
    """Turn chumpy stand-ins into numpy arrays, recursing into dict, list and tuple values.

    A plain ``Ch`` becomes its stored value ``state['x']`` as an array. Other objects (arrays, scalars, sparse
    matrices) are returned unchanged. Each object is visited once, however often it is referenced, within the
    node and depth bounds of ``limits``.

    Args:
        obj: anything returned by :func:`safe_load_pickle`.
        name: what ``obj`` is (e.g. the dict key), for error messages.
        source: the file it came from, for error messages.
        limits: the bounds of the walk; ``limits.max_elements`` bounds each chumpy value.

    Raises:
        AssetError: a chumpy object without a stored value ``'x'`` (a derived expression such as
            ``Select``), a value that contains itself, or a bound exceeded; the message names ``name``.
    """
    return _ChumpyToNumpy(source, name, limits).visit(obj)
