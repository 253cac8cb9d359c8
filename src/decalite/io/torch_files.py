"""Checks of ``torch.save`` files (checkpoints, network weights) that run before ``torch.load`` reads them.

``torch.load(weights_only=True)`` runs no code from a file, but it trusts sizes written in it:

- the current (zip) format: a deflated record is inflated to the size its zip header declares, so a 4 MB file
  can make torch allocate 4 GB (torch does compare each record with the storage that the pickle declares);
- the legacy format (``_use_new_zipfile_serialization=False``, and the storages inside FLAME-era pickles):
  torch allocates every storage with the element count its pickle declares before reading any data.

:func:`check_torch_file` and :func:`check_legacy_torch_bytes` compare these declared sizes with the bytes that
are actually in the file and raise an :class:`~decalite.errors.AssetError` naming the file and the storage.
Their own reading is bounded: pickles are checked with :func:`~decalite.io.pickle_scan.scan_pickle` and then
read by an unpickler that resolves no global (every class becomes an inert stub) and calls nothing.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import struct
import warnings
import zipfile
from typing import Any

from decalite.errors import AssetError
from decalite.io.pathlike import PathLike
from decalite.io.pickle_scan import scan_pickle

__all__ = ["check_legacy_torch_bytes", "check_torch_file"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_ZIP_MAGIC = b"PK\x03\x04"
#: Distinct globals a scanned pickle may name (a checkpoint names a few dozen).
_MAX_GLOBALS = 10_000


# --------------------------------------------------------------------------------------------------------
# An unpickler that only records


class _Stub:
    """An inert object standing for whatever a pickle constructs; it accepts any state and any items."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StorageRef:
    """What a persistent id ``('storage', type, key, location, numel, ...)`` resolves to while scanning."""

    def __init__(self, type_name: str, key: str, numel: int) -> None:
        self.type_name, self.key, self.numel = type_name, key, numel


class _ScanUnpickler(pickle.Unpickler):
    """Reads a checked pickle without resolving any global: classes become :class:`_Stub` subclasses.

    Attributes:
        storages: ``key -> _StorageRef`` for every storage the pickle declares.
    """

    def __init__(self, file: io.BytesIO, source: str | None) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source
        self.storages: dict[str, _StorageRef] = {}
        self._classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> type:
        key = (str(module)[:200], str(name)[:200])
        if key not in self._classes:
            if len(self._classes) >= _MAX_GLOBALS:
                raise AssetError(self.source, f"the pickle names more than {_MAX_GLOBALS:,} different globals")
            self._classes[key] = type(key[1], (_Stub,), {"pickled_module": key[0]})
        return self._classes[key]

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise AssetError(self.source, f"unknown persistent id in the pickle: {str(pid)[:80]}")
        type_name, key, numel = getattr(pid[1], "__name__", "?"), str(pid[2]), pid[4]
        if not isinstance(numel, int) or isinstance(numel, bool) or not 0 <= numel < 1 << 62:
            raise AssetError(self.source, f"storage '{key}' declares an invalid size {str(numel)[:40]}")
        ref = _StorageRef(type_name, key, numel)
        self.storages.setdefault(key, ref)
        return ref


def _load_checked(data: Any, start: int, source: str | None) -> tuple[Any, int, dict[str, _StorageRef]]:
    """Scan, then stub-unpickle, the pickle at ``data[start]``: (object, end offset, declared storages)."""
    end = scan_pickle(data, start, source=source).end
    unpickler = _ScanUnpickler(io.BytesIO(data[start:end]), source)
    try:
        obj = unpickler.load()
    except AssetError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed pickle
        raise AssetError(source, f"unreadable torch pickle ({type(exc).__name__}: {str(exc)[:200]})") from None
    return obj, end, unpickler.storages


def _element_size(type_name: str, source: str | None) -> int:
    """Bytes per element of a storage class named in a pickle (``FloatStorage`` -> 4)."""
    import torch

    if type_name == "UntypedStorage":
        return 1
    with warnings.catch_warnings():  # the legacy storage classes warn that TypedStorage is deprecated
        warnings.simplefilter("ignore")
        cls = getattr(torch, type_name, None) if type_name.endswith("Storage") else None
        dtype = getattr(cls, "dtype", None)
    if not isinstance(dtype, torch.dtype):
        raise AssetError(source, f"unknown storage type '{type_name}'")
    return torch._utils._element_size(dtype)  # noqa: SLF001 - the size torch itself uses when loading


# --------------------------------------------------------------------------------------------------------
# Legacy format


def check_legacy_torch_bytes(data: Any, source: str | None, start: int = 0) -> None:
    """Check a legacy-format ``torch.save`` stream held in ``data`` (bytes or an ``mmap``).

    The stream is: magic number, protocol version and system-info pickles, the main pickle (whose persistent
    ids declare each storage's type and element count), the list of storage keys, then per key an 8-byte
    element count and the data. Every storage must declare exactly what its block holds, and every block must
    fit in ``data``.

    Raises:
        AssetError: a malformed stream, or a storage declaring more data than the stream holds.
    """
    magic, pos, _ = _load_checked(data, start, source)
    if magic != _LEGACY_MAGIC:
        raise AssetError(source, "not a torch.save file (wrong magic number)")
    for _ in range(2):  # protocol version, system info
        _, pos, _ = _load_checked(data, pos, source)
    _, pos, storages = _load_checked(data, pos, source)
    keys, pos, _ = _load_checked(data, pos, source)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise AssetError(source, "the list of storage keys is malformed")
    for key in keys:
        pos = _check_storage_block(data, pos, storages.get(key), key, source)


def _check_storage_block(data: Any, pos: int, ref: _StorageRef | None, key: str, source: str | None) -> int:
    """Check one ``<int64 count><data>`` block of a legacy stream; the offset just past it."""
    if ref is None:
        raise AssetError(source, f"storage '{key}' has data but is not declared in the pickle")
    if pos + 8 > len(data):
        raise AssetError(source, f"the data of storage '{key}' is missing: the file is truncated")
    count = struct.unpack_from("<q", data, pos)[0]
    nbytes = ref.numel * _element_size(ref.type_name, source)
    available = len(data) - pos - 8
    if count != ref.numel or nbytes > available:
        raise AssetError(
            source,
            f"storage '{key}' ({ref.type_name}) declares {ref.numel:,} elements ({nbytes:,} bytes), but its block "
            f"says {count:,} and only {available:,} bytes follow: the file is truncated or crafted",
        )
    return pos + 8 + nbytes


# --------------------------------------------------------------------------------------------------------
# Files


def _zip_entries(path: str) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise AssetError(path, f"unreadable zip archive ({exc})") from None


def _check_zip(path: str, size: int) -> None:
    """Refuse a zip-format file whose records declare more bytes than the file holds (deflate bombs)."""
    total = 0
    for info in _zip_entries(path):
        total += info.file_size
        if total > size:
            raise AssetError(
                path,
                f"its records declare {total:,}+ bytes (record '{info.filename}': {info.file_size:,} bytes after "
                f"inflating {info.compress_size:,}), more than the file's {size:,} bytes; torch.save writes "
                "uncompressed records, so this one was recompressed or crafted: re-save it with torch.save",
            )


def check_torch_file(path: PathLike) -> None:
    """Check a ``torch.save`` file before ``torch.load`` reads it (see the module docstring).

    Files in neither the zip nor the legacy format are left to ``torch.load``, which refuses them.

    Raises:
        AssetError: naming the file and the record or storage that declares more data than the file holds.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            size = os.fstat(fh.fileno()).st_size
            if head == _ZIP_MAGIC:
                _check_zip(path, size)
            elif head[:1] == b"\x80":
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    check_legacy_torch_bytes(data, path)
    except OSError as exc:
        raise AssetError(path, f"cannot read it ({exc.strerror or exc})") from None
