"""A linear-time check of a pickle's opcode stream, run before anything in it is unpickled.

``pickle.Unpickler`` trusts a few numbers written in the stream: ``LONG_BINPUT 2**31`` makes it grow its memo
to billions of slots (zeroing them: gigabytes and seconds from 6 bytes), ``BYTEARRAY8`` allocates the declared
length before reading it, and a stream may hold millions of tiny opcodes that each build an object.
:func:`scan_pickle` walks the opcodes once, using only the argument layout of :mod:`pickletools`' opcode table,
and refuses such a stream with an :class:`~decalite.errors.AssetError` before the unpickler sees it:

- every length prefix must fit in the bytes that follow (no copy is made of the payloads);
- memo indices may not exceed the number of opcodes read so far (picklers number them 0, 1, 2, ...);
- at most ``max_opcodes`` opcodes;
- the stream must end with ``STOP``.
"""

from __future__ import annotations

import pickle
import pickletools
import struct
from dataclasses import dataclass
from typing import Protocol

from decalite.errors import AssetError

__all__ = ["DEFAULT_MAX_OPCODES", "PickleScan", "scan_pickle"]

#: Opcodes a pickle may hold. FLAME 2020's generic_model.pkl has a few hundred, a network checkpoint's
#: ``data.pkl`` some tens of thousands; scanning a million takes about 0.3 s.
DEFAULT_MAX_OPCODES = 1_000_000

_FIXED, _LINE, _LINE_PAIR, _LEN1, _LEN4S, _LEN4U, _LEN8U = range(7)
_LENGTH_KINDS = {
    pickletools.TAKEN_FROM_ARGUMENT1: (_LEN1, 1, "<B"),
    pickletools.TAKEN_FROM_ARGUMENT4: (_LEN4S, 4, "<i"),
    pickletools.TAKEN_FROM_ARGUMENT4U: (_LEN4U, 4, "<I"),
    pickletools.TAKEN_FROM_ARGUMENT8U: (_LEN8U, 8, "<Q"),
}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _layout(op: pickletools.OpcodeInfo) -> tuple[int, int, str]:
    """(kind, size of the fixed part or length prefix, struct format of the prefix) of an opcode's argument."""
    arg = op.arg
    if arg is None:
        return _FIXED, 0, ""
    if arg.n >= 0:
        return _FIXED, arg.n, ""
    if arg.n == pickletools.UP_TO_NEWLINE:
        return (_LINE_PAIR if arg.name == "stringnl_noescape_pair" else _LINE), 0, ""
    return _LENGTH_KINDS[arg.n]


#: Opcode byte -> (name, argument layout).
_OPCODES: dict[int, tuple[str, tuple[int, int, str]]] = {
    ord(op.code): (op.name, _layout(op)) for op in pickletools.opcodes
}


class _Buffer(Protocol):
    """What :func:`scan_pickle` reads: ``bytes`` or an ``mmap``."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> int: ...
    def find(self, sub: bytes, start: int) -> int: ...


@dataclass(frozen=True)
class PickleScan:
    """What :func:`scan_pickle` found.

    Attributes:
        end: the offset just past the pickle's ``STOP`` opcode.
        opcodes: how many opcodes the pickle has.
    """

    end: int
    opcodes: int


def _problem(source: str | None, detail: str) -> AssetError:
    return AssetError(source, f"unreadable or truncated pickle ({detail})")


def _small_int(line: bytes) -> int | None:
    """A memo index written as decimal text (protocol 0), or None when it is not one."""
    text = line.strip()
    return int(text) if text.isdigit() and len(text) <= 18 else None


def scan_pickle(
    data: _Buffer, start: int = 0, *, source: str | None = None, max_opcodes: int = DEFAULT_MAX_OPCODES
) -> PickleScan:
    """Check the opcode stream of the pickle that begins at ``data[start]`` (see the module docstring).

    Args:
        data: the bytes (or an ``mmap``) holding the pickle; nothing is copied.
        start: where the pickle begins.
        source: the file name used in error messages.
        max_opcodes: refuse pickles with more opcodes than this.

    Returns:
        Where the pickle ends and how many opcodes it has.

    Raises:
        AssetError: unknown opcode, a length or memo index beyond the limits, too many opcodes, or no ``STOP``.
    """
    pos, size, count = start, len(data), 0
    while pos < size:
        code = data[pos]
        entry = _OPCODES.get(code)
        if entry is None:
            raise _problem(source, f"unknown opcode 0x{code:02x} at byte {pos}")
        count += 1
        if count > max_opcodes:
            raise AssetError(source, f"the pickle has more than {max_opcodes:,} opcodes (the limit for this file)")
        name, (kind, width, fmt) = entry
        arg_at = pos + 1
        pos = _skip_argument(data, arg_at, kind, width, fmt, source, name)
        if name in _MEMO_PUTS:
            _check_memo_index(data, arg_at, pos, name, count, source)
        elif name == "PROTO" and data[arg_at] > pickle.HIGHEST_PROTOCOL:
            raise _problem(source, f"unsupported pickle protocol {data[arg_at]}")
        elif name == "FRAME" and struct.unpack_from("<Q", data, arg_at)[0] > size - pos:
            raise _problem(source, f"a frame at byte {arg_at - 1} is longer than the rest of the file")
        elif name == "STOP":
            return PickleScan(end=pos, opcodes=count)
    raise _problem(source, f"the pickle ends without STOP after {count} opcodes (byte {pos})")


def _skip_argument(data: _Buffer, pos: int, kind: int, width: int, fmt: str, source: str | None, name: str) -> int:
    """The offset just past the argument of opcode ``name`` whose argument starts at ``pos``."""
    size = len(data)
    if kind == _FIXED:
        end = pos + width
    elif kind in (_LINE, _LINE_PAIR):
        end = data.find(b"\n", pos) + 1
        if end and kind == _LINE_PAIR:
            end = data.find(b"\n", end) + 1
        if not end:
            raise _problem(source, f"{name} at byte {pos - 1} has no end of line")
    else:
        if pos + width > size:
            raise _problem(source, f"{name} at byte {pos - 1} is cut off")
        length = struct.unpack_from(fmt, data, pos)[0]
        end = pos + width + length
        if length < 0 or end > size:
            raise _problem(
                source, f"{name} at byte {pos - 1} declares {length:,} bytes, but only {size - pos - width:,} follow"
            )
    if end > size:
        raise _problem(source, f"{name} at byte {pos - 1} is cut off")
    return end


def _check_memo_index(data: _Buffer, start: int, end: int, name: str, count: int, source: str | None) -> None:
    """Refuse a memo index larger than the number of opcodes read so far (it would make the memo that large)."""
    if name == "PUT":
        index = _small_int(bytes(data[start:end]))
    elif name == "BINPUT":
        index = data[start]
    else:
        index = struct.unpack_from("<I", data, start)[0]
    if index is None or index > count:
        raise _problem(source, f"{name} at byte {start - 1} uses memo index {index}, beyond the {count} opcodes read")
