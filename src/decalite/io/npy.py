"""Reading ``.npy`` / ``.npz`` files without trusting the sizes they declare.

``np.load`` allocates what an ``.npy`` header declares before reading a byte of data: a 200-byte file whose
header says ``(10**11,)`` float64 ends in ``MemoryError: Unable to allocate 745 GiB``, and a few kilobytes of
deflated zeros in an ``.npz`` expand to gigabytes. The functions here read the header with numpy's own
:mod:`numpy.lib.format`, compare the declared size with the bytes that are actually there (and with a limit
the caller gives), and raise an :class:`~decalite.errors.AssetError` naming the file, the array and the limit
before anything is allocated.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO

import numpy as np
from numpy.lib import format as npy_format

from decalite.errors import AssetError
from decalite.io.pathlike import PathLike

__all__ = ["MAX_DEFLATE_RATIO", "NpyHeader", "check_npy_size", "check_npz", "load_npy", "read_npy_header"]

#: How much a deflated ``.npz`` member may expand. Float arrays deflate by 1.1-3x, arrays with large zero
#: areas (UV maps) by 10-50x; a zip bomb of zeros by 1000x.
MAX_DEFLATE_RATIO = 200


@dataclass(frozen=True)
class NpyHeader:
    """The header of an ``.npy`` file.

    Attributes:
        shape: the declared shape.
        fortran_order: whether the data is stored column-major.
        dtype: the declared dtype.
        offset: where the data begins (bytes from the start of the ``.npy``).
    """

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    offset: int

    @property
    def nbytes(self) -> int:
        """Bytes of data the header declares (a Python int: no overflow)."""
        count = 1
        for dim in self.shape:
            count *= int(dim)
        return count * self.dtype.itemsize

    def describe(self) -> str:
        return f"shape {self.shape} of {self.dtype} ({self.nbytes:,} bytes)"


def read_npy_header(stream: IO[bytes], source: str | None) -> NpyHeader:
    """Read the magic string and header of the ``.npy`` at the stream's position (numpy's format module).

    Raises:
        AssetError: not an ``.npy`` file, an unsupported version or a malformed header.
    """
    start = stream.tell()
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise AssetError(source, f"not a readable .npy file ({exc})") from None
    return NpyHeader(tuple(int(s) for s in shape), bool(fortran), dtype, stream.tell() - start)


def check_npy_size(header: NpyHeader, available: int, source: str | None, *, name: str, max_bytes: int) -> None:
    """Refuse a header that declares more data than ``available`` bytes or than ``max_bytes``.

    Raises:
        AssetError: naming ``name``, the declared shape and size, and what is there / the limit.
    """
    if header.dtype.hasobject:
        return  # a pickled payload: its own size is checked by the unpickler
    if header.nbytes > available:
        raise AssetError(
            source,
            f"{name} declares {header.describe()} but only {available:,} bytes of data follow its header: "
            "the file is truncated or crafted",
        )
    if header.nbytes > max_bytes:
        raise AssetError(source, f"{name} declares {header.describe()}, more than the {max_bytes:,}-byte limit for it")


def _remaining(stream: IO[bytes]) -> int:
    here = stream.tell()
    end = stream.seek(0, os.SEEK_END)
    stream.seek(here)
    return end - here


def load_npy(
    file: PathLike | bytes, *, source: str | None = None, name: str = "the array", max_bytes: int
) -> np.ndarray:
    """Read a plain (non-pickle) ``.npy`` file or in-memory ``.npy`` bytes after checking its declared size.

    Args:
        file: a path, or the bytes of an ``.npy`` file (e.g. a shard member).
        source: the name used in error messages (default: the path).
        name: what the array is, for error messages (e.g. ``"lmk.npy"``).
        max_bytes: refuse arrays that declare more bytes than this.

    Returns:
        The array, with its declared shape and dtype.

    Raises:
        AssetError: not an ``.npy`` file, an object (pickled) array, more declared bytes than present or than
            ``max_bytes``, or unreadable data.
    """
    if source is None:
        source = "<bytes>" if isinstance(file, bytes) else os.fspath(file)
    try:
        stream: IO[bytes] = io.BytesIO(file) if isinstance(file, bytes) else open(file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise AssetError(source, f"cannot open it ({exc.strerror or exc})") from None
    with stream:
        header = read_npy_header(stream, source)
        if header.dtype.hasobject:
            raise AssetError(source, f"{name} is a pickled object array; only plain numeric arrays are accepted")
        check_npy_size(header, _remaining(stream), source, name=name, max_bytes=max_bytes)
        stream.seek(0)
        try:
            return np.load(stream, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise AssetError(source, f"{name}: unreadable or truncated .npy data ({exc})") from None


def check_npz(archive: zipfile.ZipFile, source: str | None, *, max_bytes: int) -> None:
    """Check every ``.npy`` member of an open ``.npz`` before numpy reads any of them.

    Each member may expand at most :data:`MAX_DEFLATE_RATIO` times, all members together to at most
    ``max_bytes``, and each member's header may not declare more data than the member holds.

    Raises:
        AssetError: naming the member and the limit it exceeds.
    """
    total = 0
    for info in archive.infolist():
        total += info.file_size
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1):
            raise AssetError(
                source,
                f"member '{info.filename}' expands from {info.compress_size:,} to {info.file_size:,} bytes, more than "
                f"{MAX_DEFLATE_RATIO}x (a zip bomb?)",
            )
        if total > max_bytes:
            raise AssetError(source, f"its members hold more than {max_bytes:,} bytes, the limit for this file")
        if info.filename.endswith(".npy"):
            try:
                with archive.open(info) as member:
                    header = read_npy_header(member, source)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
                raise AssetError(source, f"member '{info.filename}' is unreadable ({exc})") from None
            available = info.file_size - header.offset
            check_npy_size(header, available, source, name=f"member '{info.filename}'", max_bytes=max_bytes)
