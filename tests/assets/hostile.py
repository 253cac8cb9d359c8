"""Crafted hostile files for the bounded-loading tests (builders only; the tests are in test_hostile_files.py and
test_fuzz_loaders.py). Each builder returns bytes or writes a file that is small on disk but declares, references
or expands to far more than it holds."""

from __future__ import annotations

import collections
import importlib
import io
import pickle
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib import format as npy_format

MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
_MULTIARRAY = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")


class Reduce:
    """Pickles as ``func(*args)``: a way to write any allowed call with any arguments."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def nested_shared_lists(levels: int = 60) -> list:
    """``levels`` nested lists, each holding the level below twice: 2**levels leaves, ``levels`` lists."""
    value: list = [1.0]
    for _ in range(levels):
        value = [value, value]
    return value


def nested_lists_model() -> bytes:
    """The issue's ~1 kB generic_model.pkl whose every field is :func:`nested_shared_lists`."""
    shared = nested_shared_lists()
    return pickle.dumps({key: shared for key in MODEL_KEYS}, protocol=2)


def zero_stride_model() -> bytes:
    """A generic_model.pkl whose fields are an 8-byte storage declared as (10**9, 3) float64 (zero strides)."""
    view = torch.zeros(1, dtype=torch.float64).expand(10**9, 3)
    return pickle.dumps({key: view for key in MODEL_KEYS}, protocol=2)


def huge_header_npy(count: int = 10**11) -> bytes:
    """An .npy whose header declares ``count`` float64 values, followed by 64 bytes."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (count,)})
    return buf.getvalue() + bytes(64)


def memo_bomb() -> bytes:
    """``LONG_BINPUT 2**31 - 1``: the C unpickler would grow (and zero) a memo of 2**32 slots."""
    return b"\x80\x02]r\xff\xff\xff\x7f."


def bytearray8_bomb() -> bytes:
    """``BYTEARRAY8`` declaring 2**40 bytes: allocated before reading."""
    return b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b"xyz."


def binbytes8_bomb() -> bytes:
    return b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"xyz."


def reconstruct_bomb() -> bytes:
    """``numpy _reconstruct(ndarray, (10**10,), 'b')``: numpy allocates the shape before ``BUILD`` fills it."""
    return pickle.dumps(Reduce(_MULTIARRAY._reconstruct, np.ndarray, (10**10,), b"b"), protocol=2)


def ndarray_call_bomb() -> bytes:
    """``numpy.ndarray((10**10,))`` through ``REDUCE``."""
    return pickle.dumps(Reduce(np.ndarray, (10**10,)), protocol=2)


def scalar_bomb() -> bytes:
    """A numpy scalar of a (10**8,) float64 subarray dtype without data: numpy allocates and zeroes 800 MB."""
    return pickle.dumps(Reduce(_MULTIARRAY.scalar, np.dtype(("f8", (10**8,)))), protocol=2)


def set_of_zero_stride_tensor() -> bytes:
    """``set(t)`` for a 1-element storage viewed as 10**9 elements: a billion 0-d tensors."""
    return pickle.dumps(Reduce(set, torch.zeros(1).expand(10**9)), protocol=2)


def deep_nesting(levels: int = 100_000) -> bytes:
    """``levels`` lists nested in one another (2 bytes per level)."""
    return b"\x80\x02" + b"]" * levels + b"a" * (levels - 1) + b"."


def many_opcodes(count: int = 1_500_000) -> bytes:
    """A list of ``count`` Nones: one opcode per object."""
    return b"\x80\x02(" + b"N" * count + b"l."


def _legacy_storage_bytes(tensor: torch.Tensor) -> bytes:
    """The legacy ``torch.save`` stream of a tensor's storage, as pickles hold it (``_load_from_bytes`` payload)."""
    with warnings.catch_warnings():  # TypedStorage is deprecated, but it is what pickled tensors hold
        warnings.simplefilter("ignore")
        return tensor.storage().__reduce_ex__(2)[1][0]


def _declare_numel(stream: bytes, old: int, new: int) -> bytes:
    """Patch the element count in the storage's persistent id (``..., 'cpu', <numel>, None)``)."""
    marker = b"cpu"
    at = stream.index(marker)
    old_op = b"K" + bytes([old]) + b"N"
    pos = stream.index(old_op, at)
    return stream[:pos] + b"J" + struct.pack("<i", new) + b"N" + stream[pos + len(old_op) :]


def lying_storage_pickle() -> bytes:
    """A pickled tensor whose storage payload declares 2e9 float elements (8 GB) and holds 3."""
    payload = _declare_numel(_legacy_storage_bytes(torch.arange(3.0)), 3, 2_000_000_000)
    return pickle.dumps(Reduce(torch.storage._load_from_bytes, payload), protocol=2)


def legacy_checkpoint(path: Path) -> None:
    """A legacy-format checkpoint whose storage declares 2e9 float elements and holds 3."""
    buf = io.BytesIO()
    torch.save({"w": torch.arange(3.0)}, buf, _use_new_zipfile_serialization=False)
    path.write_bytes(_declare_numel(buf.getvalue(), 3, 2_000_000_000))


class _StorageRef:
    pass


def _data_pkl(numel: int) -> bytes:
    """A checkpoint's data.pkl: {"w": float tensor (numel,)} over storage "0" of ``numel`` elements."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if isinstance(obj, _StorageRef) else None

    hooks = collections.OrderedDict()
    rebuild = Reduce(torch._utils._rebuild_tensor_v2, _StorageRef(), 0, (numel,), (1,), False, hooks)
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump({"w": rebuild})
    return buf.getvalue()


def _zip(records: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip archive from (name, stored bytes, method, uncompressed size, crc32) records."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, size, crc in records:
        offset, raw_name = out.tell(), name.encode()
        fields = (20, 0, method, 0, 0, crc, len(data), size, len(raw_name), 0)
        out.write(struct.pack("<4s5HL2L2H", b"PK\x03\x04", *fields) + raw_name + data)
        central.write(struct.pack("<4s6HL2L5H2L", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, offset) + raw_name)
    start, directory = out.tell(), central.getvalue()
    out.write(directory)
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(records), len(records), len(directory), start, 0))
    return out.getvalue()


def deflate_bomb_checkpoint(path: Path, gib: int = 2) -> None:
    """A zip-format checkpoint of ~2 MB whose one record inflates to ``gib`` GiB of zeros (a valid archive)."""
    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)  # independent of what precedes it
    n_chunks = gib << 10
    data = block * n_chunks + compressor.flush()
    crc = 0
    for _ in range(n_chunks):
        crc = zlib.crc32(chunk, crc)
    small = [("archive/version", b"3\n"), ("archive/byteorder", b"little")]
    records = [("archive/data.pkl", _data_pkl(n_chunks << 18), 0, 0, 0)]
    records += [(name, payload, 0, len(payload), zlib.crc32(payload)) for name, payload in small]
    records[0] = (*records[0][:3], len(records[0][1]), zlib.crc32(records[0][1]))
    records.append(("archive/data/0", data, zipfile.ZIP_DEFLATED, n_chunks << 20, crc))
    path.write_bytes(_zip(records))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` greyscale pixels and holds one tiny IDAT chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")
