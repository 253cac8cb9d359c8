"""decalite's identity-grouped shard format (webdataset tar files) and its manifest.

One sample per identity (or per chunk of an identity with many images). Inside the tar, the files of a sample
share the key ``<identity>__<chunk>`` (letters, digits, ``_`` and ``-`` only) and are:

=====================  ===============================================================================
``NN.jpg``             image NN (``00``, ``01``, ...): an RGB crop around the face, ``size`` x ``size``
                       (default 256), covering ``CONTEXT_SCALE`` (2.0) times the landmark box so the
                       loader can draw DECA's random crop scale in [1.4, 1.8] and shifts inside it
``NN.mask.png``        8-bit skin mask of image NN (255 = skin)
``lmk.npy``            (N, 68, 2) float32 landmarks in pixel-index coordinates of the crops: (x = column,
                       y = row), the top-left pixel's centre at (0, 0)
``meta.json``          identity, chunk, n_images, size, sources, crop_boxes (x0, y0, x1, y1 in the source image's
                       pixels), detector, landmarker, mask_source, flags (e.g. "few_images"), format_version
``gt.npz``             synthetic data only: ground truth per image: shape (N, S), tex (N, T), exp (N, E),
                       pose (N, 6), cam (N, 3), light (N, 9, 3), detail (N, D) codes (whatever the generator
                       used; keys documented in its meta), float32
``verts.npy``          synthetic only: (N, V, 3) float16 posed vertices (model space, metres)
``disp.npy``           synthetic only: (N, 1, U, U) float16 UV displacement maps (metres)
=====================  ===============================================================================

A folder of shards has ``manifest.json``: format version, per-shard name / sha256 / samples / images /
identities, totals, flagged identities and failures (file + reason). Shards are written to a temporary name
and renamed when complete, so a folder never holds a half-written shard under its final name.

Decoding a sample is bounded (shards may come from elsewhere): at most :data:`MAX_SAMPLE_MEMBERS` files and
:data:`MAX_SAMPLE_IMAGES` images, a ``meta.json`` of at most :data:`MAX_META_BYTES`, images whose declared size is
checked before decoding (:data:`MAX_SAMPLE_PIXELS` for the sample), and ``.npy`` / ``.npz`` members whose headers
may not declare more data than they hold. A sample that breaks a bound raises :class:`SampleError` (an
``AssetError`` and a ``ValueError``) naming the shard, the sample and the member.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from decalite.errors import AssetError
from decalite.io.images import open_image, pixel_problem
from decalite.io.npy import check_npz, load_npy

FORMAT_VERSION = 1
CONTEXT_SCALE = 2.0
DEFAULT_SIZE = 256
MANIFEST = "manifest.json"
_KEY_OK = re.compile(r"[^A-Za-z0-9_-]+")
#: Images one sample may hold (``decalite-prepare`` writes at most ``max_images_per_sample``, 32 by default).
MAX_SAMPLE_IMAGES = 1024
#: Files one sample may hold: an image and a mask per image, plus lmk, meta, gt, verts, disp and webdataset keys.
MAX_SAMPLE_MEMBERS = 2 * MAX_SAMPLE_IMAGES + 16
MAX_META_BYTES = 1 << 20
#: Pixels decoded for one sample, images and masks together (32 crops of 256 x 256 are 4 M).
MAX_SAMPLE_PIXELS = 1 << 28
#: Bytes of one ``.npy`` / ``.npz`` member.
MAX_MEMBER_BYTES = 1 << 30


class SampleError(AssetError, ValueError):
    """A shard sample that is corrupt or exceeds a bound. ``path`` is ``<shard url>#<sample key>``."""

    def __init__(self, raw: dict[str, Any], problem: str) -> None:
        url, key = raw.get("__url__"), raw.get("__key__", "?")
        super().__init__(f"{url}#{key}" if url else str(key), problem, what="shard sample")


@dataclass
class IdentitySample:
    """Images of one identity (chunk) with their labels.

    Attributes:
        identity: identity name as in the source dataset.
        images: (N, H, W, 3) uint8 RGB crops.
        landmarks: (N, 68, 2) float32 pixel landmarks (x = column, y = row).
        masks: (N, H, W) uint8 skin masks (255 = skin).
        meta: everything else (see the module docstring); ``identity``/``n_images`` are filled in on encoding.
        chunk: index of this chunk of the identity's images.
        gt: synthetic ground truth arrays (``gt.npz`` content plus ``verts``/``disp`` when present), or empty.
    """

    identity: str
    images: np.ndarray
    landmarks: np.ndarray
    masks: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    chunk: int = 0
    gt: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return sample_key(self.identity, self.chunk)


def sample_key(identity: str, chunk: int = 0) -> str:
    """The webdataset key of an identity chunk: safe characters only (no dots, which webdataset splits on)."""
    return f"{_KEY_OK.sub('-', identity).strip('-') or 'identity'}__{chunk:03d}"


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _image_bytes(array: np.ndarray, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def encode_sample(sample: IdentitySample, jpeg_quality: int = 95) -> dict[str, bytes | str]:
    """An IdentitySample as a webdataset sample dict (``__key__`` plus one bytes value per file)."""
    n = len(sample.images)
    if sample.landmarks.shape != (n, 68, 2) or sample.masks.shape != sample.images.shape[:3]:
        raise ValueError(
            f"sample {sample.identity!r}: images {sample.images.shape}, landmarks {sample.landmarks.shape} and "
            f"masks {sample.masks.shape} do not agree (expected (N, H, W, 3), (N, 68, 2), (N, H, W))"
        )
    meta = {"format_version": FORMAT_VERSION, **sample.meta, "identity": sample.identity, "chunk": sample.chunk,
            "n_images": n, "size": list(sample.images.shape[1:3])}
    out: dict[str, bytes | str] = {"__key__": sample.key}
    for i in range(n):
        out[f"{i:02d}.jpg"] = _image_bytes(sample.images[i], "JPEG", quality=jpeg_quality)
        out[f"{i:02d}.mask.png"] = _image_bytes(sample.masks[i], "PNG")
    out["lmk.npy"] = _npy_bytes(sample.landmarks.astype(np.float32))
    out["meta.json"] = json.dumps(meta, sort_keys=True).encode()
    gt = dict(sample.gt)
    for name in ("verts", "disp"):
        if name in gt:
            out[f"{name}.npy"] = _npy_bytes(np.asarray(gt.pop(name)).astype(np.float16))
    if gt:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v, dtype=np.float32) for k, v in gt.items()})
        out["gt.npz"] = buf.getvalue()
    return out


def _read_meta(raw: dict[str, Any]) -> dict[str, Any]:
    """The checked ``meta.json`` of a raw sample: a dict whose ``n_images`` is an int in [0, MAX_SAMPLE_IMAGES].

    Raises:
        SampleError: too many members, no / too large / malformed meta.json, or a bad image count.
    """
    if len(raw) > MAX_SAMPLE_MEMBERS:
        raise SampleError(raw, f"it has {len(raw):,} files, more than the {MAX_SAMPLE_MEMBERS:,} a sample may hold")
    text = raw.get("meta.json")
    if not isinstance(text, (bytes, str)):
        raise SampleError(raw, "meta.json is missing")
    if len(text) > MAX_META_BYTES:
        raise SampleError(raw, f"meta.json has {len(text):,} bytes, more than the {MAX_META_BYTES:,} allowed")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SampleError(raw, f"meta.json is not valid JSON ({type(exc).__name__}: {str(exc)[:100]})") from None
    n = meta.get("n_images") if isinstance(meta, dict) else None
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_SAMPLE_IMAGES:
        raise SampleError(raw, f"meta.json n_images is {str(n)[:40]}, not a count in 0..{MAX_SAMPLE_IMAGES}")
    return meta


def sample_size(raw: dict[str, Any]) -> int:
    """Number of images in a raw sample (from its meta.json), without decoding any image. Raises SampleError."""
    return int(_read_meta(raw)["n_images"])


class _PixelBudget:
    """Pixels left to decode for one sample (see :data:`MAX_SAMPLE_PIXELS`)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw, self.left = raw, MAX_SAMPLE_PIXELS

    def image(self, member: str, mode: str) -> np.ndarray:
        """(H, W, C) or (H, W) uint8 of an image member, its declared size checked before decoding."""
        try:
            img = open_image(io.BytesIO(self.raw[member]))
        except Image.DecompressionBombError as exc:
            raise SampleError(self.raw, f"{member}: refused as a decompression bomb by PIL ({exc})") from None
        with img:
            problem = pixel_problem(img.size)
            if problem:
                raise SampleError(self.raw, f"{member}: {problem}")
            self.left -= img.size[0] * img.size[1]
            if self.left < 0:
                raise SampleError(self.raw, f"{member}: its images exceed {MAX_SAMPLE_PIXELS:,} pixels for the sample")
            return np.asarray(img.convert(mode))


def _npy_member(raw: dict[str, Any], member: str) -> np.ndarray:
    data = raw[member]
    if not isinstance(data, bytes):
        raise SampleError(raw, f"{member} is not file content")
    try:
        return load_npy(data, source=member, name=member, max_bytes=MAX_MEMBER_BYTES)
    except AssetError as err:
        raise SampleError(raw, err.problem) from None


def _gt_member(raw: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of ``gt.npz`` (members checked against their declared sizes first)."""
    with zipfile.ZipFile(io.BytesIO(raw["gt.npz"])) as archive:
        try:
            check_npz(archive, "gt.npz", max_bytes=MAX_MEMBER_BYTES)
        except AssetError as err:
            raise SampleError(raw, f"gt.npz: {err.problem}") from None
    with np.load(io.BytesIO(raw["gt.npz"]), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def decode_sample(raw: dict[str, Any], indices: Sequence[int] | None = None) -> IdentitySample:
    """A webdataset sample dict (raw bytes values, as read from the tar) back to an IdentitySample.

    Args:
        raw: the sample's files.
        indices: decode only these images (in this order, repeats allowed); per-image labels and ground truth
            are selected the same way. None: all images.

    Raises:
        SampleError: (a ValueError) naming the shard and sample key when a file is missing, does not decode or
            exceeds a bound (see the module docstring).
    """
    meta = _read_meta(raw)
    n = int(meta["n_images"])
    try:
        chosen = list(range(n)) if indices is None else [int(i) for i in indices]
        landmarks = _npy_member(raw, "lmk.npy")
        if landmarks.shape != (n, 68, 2):
            raise SampleError(raw, f"lmk.npy has shape {landmarks.shape}, expected ({n}, 68, 2)")
        budget = _PixelBudget(raw)
        images = np.stack([budget.image(f"{i:02d}.jpg", "RGB") for i in chosen])
        masks = np.stack([budget.image(f"{i:02d}.mask.png", "L") for i in chosen])
        gt: dict[str, np.ndarray] = _gt_member(raw) if "gt.npz" in raw else {}
        for name in ("verts", "disp"):
            if f"{name}.npy" in raw:
                gt[name] = _npy_member(raw, f"{name}.npy").astype(np.float32)
    except SampleError:
        raise
    except (KeyError, OSError, ValueError, zipfile.BadZipFile, zlib.error, Image.DecompressionBombError) as exc:
        raise SampleError(raw, f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    if indices is not None:
        landmarks = landmarks[chosen]
        gt = {k: (v[chosen] if v.ndim and v.shape[0] == n else v) for k, v in gt.items()}
    return IdentitySample(identity=meta["identity"], images=images, landmarks=landmarks.astype(np.float32),
                          masks=masks, meta=meta, chunk=int(meta.get("chunk", 0)), gt=gt)


@dataclass
class ShardInfo:
    """What one written shard holds."""

    name: str
    sha256: str
    samples: int
    images: int
    identities: list[str]


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_shard(path: str | os.PathLike[str], samples: Iterable[IdentitySample]) -> ShardInfo:
    """Write samples into one tar shard atomically (temporary name, then rename). Returns its ShardInfo."""
    import webdataset as wds

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n_samples, n_images, identities = 0, 0, []
    try:
        with open(tmp, "wb") as f, wds.TarWriter(f, encoder=False, mtime=0.0) as sink:
            for sample in samples:
                sink.write(encode_sample(sample))
                n_samples += 1
                n_images += len(sample.images)
                identities.append(sample.identity)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return ShardInfo(name=path.name, sha256=sha256_file(path), samples=n_samples, images=n_images,
                     identities=identities)


def write_manifest(
    folder: str | os.PathLike[str],
    shards: Iterable[ShardInfo],
    failures: Iterable[dict[str, str]] = (),
    flagged: Iterable[dict[str, Any]] = (),
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``manifest.json`` for a folder of shards (atomically). Returns its path."""
    shards = sorted(shards, key=lambda s: s.name)
    manifest = {
        "format_version": FORMAT_VERSION,
        "shards": [asdict(s) for s in shards],
        "identities": len({i for s in shards for i in s.identities}),
        "samples": sum(s.samples for s in shards),
        "images": sum(s.images for s in shards),
        "flagged": list(flagged),
        "failures": list(failures),
        **(extra or {}),
    }
    path = Path(folder) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)
    return path


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``manifest.json``; an empty manifest when the folder has none yet."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return {"format_version": FORMAT_VERSION, "shards": [], "failures": [], "flagged": []}
    return json.loads(path.read_text())


def iter_tar_samples(path: str | os.PathLike[str]) -> Iterator[IdentitySample]:
    """Decode every sample of one local shard (for tools and tests; training uses the datamodule)."""
    import webdataset as wds

    for raw in wds.WebDataset(str(path), shardshuffle=False, empty_check=False):
        yield decode_sample(raw)
