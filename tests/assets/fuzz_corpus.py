"""The fuzz corpus of test_fuzz_loaders.py and the child process that loads it under a memory cap.

Run as ``python -c "import fuzz_corpus; fuzz_corpus.main(FOLDER, BUDGET)"`` with this folder on ``sys.path``: it
builds the seeded corpus (files under FOLDER, the rest in memory), caps its address space at BUDGET bytes above
what its imports use (RLIMIT_AS), loads every case with the loader it targets and prints one JSON record per
case: its name, whether it must be refused, the outcome (``loaded``, ``AssetError`` or the type of any other
exception), the message, and whether an allocation failed anywhere in the exception chain.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import pickletools
import random
import resource
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hostile
import numpy as np

SEED = 20_240_611
N_RANDOM_STREAMS = 2000
N_MUTATIONS = 2000
N_NPY_TRUNCATIONS = 40

#: Globals random streams name: allowed ones (with any arguments) and refused ones.
_GLOBALS = [
    b"numpy ndarray", b"numpy dtype", b"numpy.core.multiarray _reconstruct", b"numpy._core.multiarray scalar",
    b"numpy.core.numeric _frombuffer", b"collections OrderedDict", b"__builtin__ set", b"builtins frozenset",
    b"builtins bytes", b"__builtin__ bytearray", b"_codecs encode", b"copy_reg _reconstructor", b"copyreg __newobj__",
    b"__builtin__ object", b"builtins complex", b"builtins slice", b"chumpy.ch Ch", b"scipy.sparse.csc csc_matrix",
    b"scipy.sparse._coo coo_matrix", b"torch._utils _rebuild_tensor_v2", b"torch.storage _load_from_bytes",
    b"posix system", b"builtins eval", b"builtins getattr", b"subprocess call",
]  # fmt: skip
_OPCODES = [op for op in pickletools.opcodes if op.name not in ("PROTO", "STOP")]
_ALLOC_MARKERS = ("Unable to allocate", "can't allocate memory", "DefaultCPUAllocator", "std::bad_alloc")


@dataclass(frozen=True)
class Case:
    """One input: ``loader`` reads ``target`` (a path, or bytes read through a stream named ``name``).

    ``label`` is its short name in the records (the path inside the corpus folder for files).
    """

    name: str
    loader: str
    target: Any
    must_refuse: bool
    label: str = ""


# --------------------------------------------------------------------------------------------------------
# Random opcode streams and mutations


def _length_prefixed(rng: random.Random, fmt: str, payload: bytes) -> bytes:
    declared = len(payload)
    if rng.random() < 0.05:  # a lying length
        declared = {"<B": 255, "<i": 2**31 - 1, "<I": 2**32 - 1, "<Q": 2**62}[fmt]
    return struct.pack(fmt, declared) + payload


def _argument(rng: random.Random, op: pickletools.OpcodeInfo) -> bytes:
    """A random, mostly well-formed argument for ``op`` (see pickletools' argument descriptors)."""
    arg = op.arg
    if arg is None:
        return b""
    name, small = arg.name, rng.choice([0, 1, 2, 3, rng.randrange(64)])
    text = bytes(rng.choice(b"abcxyz019_") for _ in range(rng.randrange(12)))
    fixed = {
        "uint1": lambda: bytes([rng.choice([small, 255])]),
        "uint2": lambda: struct.pack("<H", rng.choice([small, 65535])),
        "int4": lambda: struct.pack("<i", rng.choice([small, -1, 2**31 - 1, -(2**31)])),
        "uint4": lambda: struct.pack("<I", rng.choice([small, 2**32 - 1])),
        "uint8": lambda: struct.pack("<Q", rng.choice([small, 2**63])),
        "float8": lambda: struct.pack("<d", rng.random()),
        "decimalnl_short": lambda: b"%d\n" % rng.choice([small, 10**30]),
        "decimalnl_long": lambda: b"%dL\n" % rng.choice([small, 10**30]),
        "floatnl": lambda: b"%r\n" % rng.random(),
        "stringnl": lambda: b"'" + text + b"'\n",
        "stringnl_noescape": lambda: text + b"\n",
        "stringnl_noescape_pair": lambda: rng.choice(_GLOBALS).replace(b" ", b"\n") + b"\n",
        "unicodestringnl": lambda: text + b"\n",
    }
    if name in fixed:
        return fixed[name]()
    payload = bytes(rng.randrange(256) for _ in range(rng.randrange(10))) if name.startswith("long") else text
    width = {"1": "<B", "4": "<I", "8": "<Q"}[name[-1]]  # string1, bytes4, bytearray8, long1, ...
    return _length_prefixed(rng, "<i" if name in ("long4", "string4") else width, payload)


def random_stream(rng: random.Random) -> bytes:
    """PROTO, 1-60 random opcodes with random arguments, and usually STOP."""
    out = [b"\x80", bytes([rng.choice([0, 2, 3, 4, 5])])]
    for _ in range(rng.randrange(1, 61)):
        op = rng.choice(_OPCODES)
        out += [op.code.encode("latin1"), _argument(rng, op)]
    if rng.random() < 0.85:
        out.append(b".")
    return b"".join(out)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """1-4 random edits: overwrite, insert or delete a byte, or duplicate a slice."""
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        pos = rng.randrange(len(buf))
        kind = rng.randrange(4)
        if kind == 0:
            buf[pos] = rng.randrange(256)
        elif kind == 1:
            buf.insert(pos, rng.randrange(256))
        elif kind == 2 and len(buf) > 2:
            del buf[pos]
        else:
            end = min(len(buf), pos + rng.randrange(1, 32))
            buf[pos:pos] = buf[pos:end]
    return bytes(buf)


def small_valid_pickle() -> bytes:
    """A small pickle with every kind of content FLAME files hold: arrays, sparse, a tensor, containers."""
    import scipy.sparse as sp
    import torch

    content = {
        "a": np.arange(6.0).reshape(2, 3),
        "i": np.array([1, 2], dtype=np.uint32),
        "csc": sp.csc_matrix(np.eye(3)),
        "t": torch.arange(4.0),
        "misc": [1, (2.5, None), {3}, b"xy", "text", collections.OrderedDict(k=1)],
    }
    return pickle.dumps(content, protocol=2)


# --------------------------------------------------------------------------------------------------------
# The corpus


def _bomb_files(folder: Path) -> Iterator[Case]:
    """The structural bombs, as files read by the loaders that would meet them."""
    files: list[tuple[str, str, Callable[[], bytes]]] = [
        ("nested_lists/generic_model.pkl", "model", hostile.nested_lists_model),
        ("zero_strides/generic_model.pkl", "model", hostile.zero_stride_model),
        ("huge_header/landmark_embedding.npy", "landmarks", hostile.huge_header_npy),
        ("huge_header_npy.npy", "npy", hostile.huge_header_npy),
        ("memo_bomb.pkl", "pickle_file", hostile.memo_bomb),
        ("bytearray8.pkl", "pickle_file", hostile.bytearray8_bomb),
        ("binbytes8.pkl", "pickle_file", hostile.binbytes8_bomb),
        ("reconstruct.pkl", "pickle_file", hostile.reconstruct_bomb),
        ("ndarray_call.pkl", "pickle_file", hostile.ndarray_call_bomb),
        ("scalar.pkl", "pickle_file", hostile.scalar_bomb),
        ("set_of_view.pkl", "pickle_file", hostile.set_of_zero_stride_tensor),
        ("deep.pkl", "pickle_file", hostile.deep_nesting),
        ("many_opcodes.pkl", "pickle_file", hostile.many_opcodes),
        ("lying_storage/generic_model.pkl", "model", hostile.lying_storage_pickle),
    ]
    for name, loader, build in files:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(build())
        yield Case(str(path), loader, path, True, name)
    for name, write in (("legacy.pt", hostile.legacy_checkpoint), ("deflate_bomb.pt", hostile.deflate_bomb_checkpoint)):
        write(folder / name)
        yield Case(str(folder / name), "weights", folder / name, True, name)


def _npy_truncations(folder: Path) -> Iterator[Case]:
    """An object .npy (header + pickled dict) cut at evenly spaced bytes."""
    holder = np.empty((), dtype=object)
    holder[()] = {"static_lmk_faces_idx": np.arange(51), "bary": np.ones((51, 3))}
    buf = io.BytesIO()
    np.save(buf, holder, allow_pickle=True)
    data = buf.getvalue()
    for i in range(N_NPY_TRUNCATIONS):
        cut = i * (len(data) - 1) // (N_NPY_TRUNCATIONS - 1)
        path = folder / f"truncated_{cut}.npy"
        path.write_bytes(data[:cut])
        yield Case(str(path), "npy", path, True, path.name)


def build_cases(folder: Path) -> list[Case]:
    """The whole seeded corpus."""
    rng = random.Random(SEED)
    valid = small_valid_pickle()
    cases = [Case("valid.pkl", "stream", valid, False)]
    cases += [Case(f"truncated_at_{n}.pkl", "stream", valid[:n], True) for n in range(len(valid))]
    cases += [Case(f"mutation_{i}.pkl", "stream", mutate(rng, valid), False) for i in range(N_MUTATIONS)]
    cases += [Case(f"random_{i}.pkl", "stream", random_stream(rng), False) for i in range(N_RANDOM_STREAMS)]
    cases += list(_bomb_files(folder)) + list(_npy_truncations(folder))
    return cases


# --------------------------------------------------------------------------------------------------------
# The child process


def _loaders() -> dict[str, Callable[[Case], Any]]:
    from decalite.flame.assets import load_flame_model, load_landmark_embedding
    from decalite.io.safe_pickle import safe_load_npy_pickle, safe_load_pickle
    from decalite.nets.checkpoints import load_weights

    return {
        "stream": lambda case: safe_load_pickle(io.BytesIO(case.target), source=case.name),
        "pickle_file": lambda case: safe_load_pickle(case.target),
        "npy": lambda case: safe_load_npy_pickle(case.target),
        "model": lambda case: load_flame_model(case.target),
        "landmarks": lambda case: load_landmark_embedding(case.target),
        "weights": lambda case: load_weights(case.target, {}),
    }


def allocation_failed(exc: BaseException | None) -> bool:
    """Whether an allocation failed anywhere in the exception chain (a declared size was trusted)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MemoryError) or any(marker in str(exc) for marker in _ALLOC_MARKERS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _run(case: Case, loader: Callable[[Case], Any]) -> dict[str, Any]:
    from decalite.errors import AssetError

    record: dict[str, Any] = {"name": case.name, "label": case.label or case.name, "must_refuse": case.must_refuse,
                              "outcome": "loaded", "message": ""}
    try:
        loader(case)
    except AssetError as exc:
        record.update(outcome="AssetError", message=str(exc)[:600], alloc=allocation_failed(exc))
    except BaseException as exc:  # noqa: BLE001 - anything else is a finding
        record.update(outcome=type(exc).__name__, message=str(exc)[:600], alloc=allocation_failed(exc))
    return record


def _cap_address_space(budget: int) -> None:
    """RLIMIT_AS = what the process maps now (torch reserves GBs of address space) + ``budget`` bytes."""
    with open("/proc/self/status") as status:
        mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (mapped + budget, mapped + budget))


def main(folder: str, budget: int) -> None:
    loaders = _loaders()
    cases = build_cases(Path(folder))
    _cap_address_space(budget)
    records = []
    for case in cases:
        print(case.name, file=sys.stderr, flush=True)  # the last name printed is the culprit of a hang
        records.append(_run(case, loaders[case.loader]))
    json.dump(records, sys.stdout)
