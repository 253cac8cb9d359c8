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
"""

from __future__ import annotations

import _compat_pickle
import builtins
import importlib
import io
import logging
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable
from typing import IO, Any, BinaryIO

import numpy as np

from decalite.errors import AssetError, UnsafePickleError
from decalite.io.pathlike import PathLike

__all__ = [
    "ALLOWED_GLOBALS",
    "ChumpyStandIn",
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
# bytes / bytearray (how Python 3 writes them in protocols < 3); bytes(n) / bytearray(n) are refused below.
_SAFE_BUILTINS = ("object", "set", "frozenset", "complex", "slice")


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
        shape = tuple(int(s) for s in shape)
        cls = getattr(sp, f"{self.sparse_format}_{self.sparse_kind}")
        if self.sparse_format == "coo":
            if "coords" in st:
                coords = tuple(np.asarray(c) for c in st["coords"])
            elif "row" in st and "col" in st:
                coords = (np.asarray(st["row"]), np.asarray(st["col"]))
            else:
                raise pickle.UnpicklingError(f"pickled {self.pickled_path} has no row/col indices")
            return cls((np.asarray(st["data"]), coords), shape=shape)
        missing = [k for k in ("data", "indices", "indptr") if k not in st]
        if missing:
            raise pickle.UnpicklingError(f"pickled {self.pickled_path} lacks {missing}")
        arrays = (np.asarray(st["data"]), np.asarray(st["indices"]), np.asarray(st["indptr"]))
        return cls(arrays, shape=shape)


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


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise _Refused("numpy _reconstruct", f"array reconstruction of non-ndarray type {subtype!r}")
    return _numpy_attr("multiarray", "_reconstruct")(subtype, shape, dtype)


def _np_scalar(dtype: Any, *args: Any) -> Any:
    if not isinstance(dtype, np.dtype):
        raise _Refused("numpy scalar", "numpy scalar reconstruction without a dtype")
    return _numpy_attr("multiarray", "scalar")(dtype, *args)


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, np.dtype):
        raise _Refused("numpy _frombuffer", "numpy buffer reconstruction without a dtype")
    return _numpy_attr("numeric", "_frombuffer")(buf, dtype, shape, order)


def _torch_load_storage(data: Any) -> Any:
    """Stand-in for ``torch.storage._load_from_bytes``: the bytes are read with ``weights_only=True``."""
    import torch

    if not isinstance(data, (bytes, bytearray)):
        raise _Refused("torch.storage._load_from_bytes", "a torch storage payload that is not bytes")
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
    try:
        offset = int(storage_offset)
        size_t = tuple(int(s) for s in size)
        stride_t = tuple(int(s) for s in stride)
    except (TypeError, ValueError) as exc:
        raise pickle.UnpicklingError(f"bad tensor geometry in pickle: {exc}") from exc
    return _rebuild_tensor(storage, offset, size_t, stride_t)


def _make_bytes_like(cls: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise _Refused(f"builtins.{cls.__name__}", f"{cls.__name__}(<size>)")
        return cls(*args)

    return build


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
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("collections", "OrderedDict"): lambda: OrderedDict,
    ("_codecs", "encode"): lambda: _Guarded("_codecs.encode", _codecs_encode),
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _Guarded("torch tensor rebuild", _torch_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): lambda: _Guarded("torch tensor rebuild", _torch_rebuild_tensor),
    ("torch.storage", "_load_from_bytes"): lambda: _Guarded("torch storage load", _torch_load_storage),
    **{("builtins", name): (lambda name=name: getattr(builtins, name)) for name in _SAFE_BUILTINS},
    ("builtins", "bytes"): lambda: _Guarded("builtins.bytes", _make_bytes_like(bytes)),
    ("builtins", "bytearray"): lambda: _Guarded("builtins.bytearray", _make_bytes_like(bytearray)),
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


def _finalize(obj: Any, seen: dict[int, Any]) -> Any:
    """Replace :class:`SparseStandIn` objects by scipy matrices, walking containers (cycle-safe)."""
    oid = id(obj)
    if oid in seen:
        return seen[oid]
    if isinstance(obj, SparseStandIn):
        seen[oid] = result = obj.to_scipy()
        return result
    if isinstance(obj, dict):
        seen[oid] = obj
        for k, v in list(obj.items()):
            new = _finalize(v, seen)
            if new is not v:
                obj[k] = new
        return obj
    if isinstance(obj, list):
        seen[oid] = obj
        for i, v in enumerate(obj):
            new = _finalize(v, seen)
            if new is not v:
                obj[i] = new
        return obj
    if isinstance(obj, tuple):
        seen[oid] = obj
        items = [_finalize(v, seen) for v in obj]
        if any(a is not b for a, b in zip(items, obj)):
            seen[oid] = obj = tuple(items)
        return obj
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        seen[oid] = obj
        for idx in np.ndindex(obj.shape):
            v = obj[idx]
            new = _finalize(v, seen)
            if new is not v:
                obj[idx] = new
        return obj
    if isinstance(obj, ChumpyStandIn):
        seen[oid] = obj
        _finalize(obj.state, seen)
        return obj
    return obj


def _unpickle_stream(stream: IO[bytes], source: str, encoding: str) -> Any:
    try:
        obj = RestrictedUnpickler(stream, source=source, encoding=encoding).load()
        return _finalize(obj, {})
    except AssetError as exc:
        raise exc.add_context(path=source)
    except _Refused as exc:
        problem = f"refused to unpickle it: it calls {exc.detail}, which decalite does not allow; nothing was executed"
        raise UnsafePickleError(source, exc.global_name, problem=problem) from exc
    except Exception as exc:
        raise AssetError(source, f"unreadable or truncated pickle ({type(exc).__name__}: {exc})") from exc


def _describe(fileobj_or_path: Any, source: str | None) -> str:
    if source is not None:
        return source
    if isinstance(fileobj_or_path, (str, os.PathLike)):
        return os.fspath(fileobj_or_path)
    return str(getattr(fileobj_or_path, "name", "<stream>"))


def _open_binary(path: PathLike) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError as exc:
        raise AssetError(path, "file not found") from exc
    except OSError as exc:
        raise AssetError(path, f"cannot open it ({exc.strerror or exc})") from exc


def safe_load_pickle(
    fileobj_or_path: PathLike | IO[bytes], *, encoding: str = "latin1", source: str | None = None
) -> Any:
    """Unpickle a file with :class:`RestrictedUnpickler`.

    Args:
        fileobj_or_path: a path, or a binary stream positioned at the pickle.
        encoding: decoding of Python 2 ``str`` objects; ``"latin1"`` as FLAME's loaders use.
        source: the name used in error messages (default: the path or the stream's ``name``).

    Returns:
        The unpickled object. scipy sparse matrices are current scipy classes; chumpy objects are
        :class:`ChumpyStandIn` instances (see :func:`chumpy_to_numpy`).

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list (nothing was executed).
        AssetError: the file is missing, unreadable or truncated.
    """
    name = _describe(fileobj_or_path, source)
    if isinstance(fileobj_or_path, (str, os.PathLike)):
        with _open_binary(fileobj_or_path) as stream:
            return _unpickle_stream(stream, name, encoding)
    return _unpickle_stream(fileobj_or_path, name, encoding)


def safe_load_npy_pickle(path: PathLike, *, encoding: str = "latin1") -> np.ndarray:
    """Read an ``.npy`` file; an object-dtype payload is unpickled with :class:`RestrictedUnpickler`.

    Returns what ``np.load(path, allow_pickle=True)`` would, without its risk: an ``np.ndarray`` (for a
    dict saved with ``np.save``, a 0-d object array; use ``arr[()]`` or ``arr.item()`` to get the dict).
    Non-object arrays are read with ``np.load(..., allow_pickle=False)``.

    Raises:
        UnsafePickleError: the payload names a global outside the allow-list (nothing was executed).
        AssetError: the file is missing, not an ``.npy`` file, unreadable or truncated.
    """
    from numpy.lib import format as npy_format

    source = os.fspath(path)
    with _open_binary(path) as stream:
        try:
            version = npy_format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, OSError, EOFError, SyntaxError) as exc:
            raise AssetError(source, f"not a readable .npy file ({exc})") from exc
        if not dtype.hasobject:
            stream.seek(0)
            try:
                return np.load(stream, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise AssetError(source, f"unreadable or truncated .npy file ({exc})") from exc
        logger.debug("Unpickling object .npy payload of %s (shape %s)", source, shape)
        arr = _unpickle_stream(stream, source, encoding)
    if not isinstance(arr, np.ndarray):
        raise AssetError(source, f"the .npy payload is a pickled {type(arr).__name__}, not an array")
    return arr


# --------------------------------------------------------------------------------------------------------
# chumpy -> numpy


def chumpy_to_numpy(obj: Any, *, name: str = "value", source: str | None = None) -> Any:
    """Turn chumpy stand-ins into numpy arrays, recursing into dict, list and tuple values.

    A plain ``Ch`` becomes ``np.asarray(state['x'])``. Other objects (arrays, scalars, sparse matrices)
    are returned unchanged.

    Args:
        obj: anything returned by :func:`safe_load_pickle`.
        name: what ``obj`` is (e.g. the dict key), for error messages.
        source: the file it came from, for error messages.

    Raises:
        AssetError: a chumpy object without a stored value ``'x'`` (a derived expression such as
            ``Select``), naming ``name``.
    """
    if isinstance(obj, ChumpyStandIn):
        if "x" not in obj.state:
            raise AssetError(
                source,
                f"'{name}' is a derived chumpy expression ({obj.class_path}) without a stored value 'x'; "
                "re-save the file with plain numpy arrays",
            )
        return np.asarray(chumpy_to_numpy(obj.state["x"], name=name, source=source))
    if isinstance(obj, dict):
        return type(obj)((k, chumpy_to_numpy(v, name=f"{name}[{k!r}]", source=source)) for k, v in obj.items())
    if isinstance(obj, list):
        return [chumpy_to_numpy(v, name=f"{name}[{i}]", source=source) for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(chumpy_to_numpy(v, name=f"{name}[{i}]", source=source) for i, v in enumerate(obj))
    return obj
