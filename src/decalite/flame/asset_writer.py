"""Writers of FLAME-format asset files.

They serialise the containers of :mod:`decalite.flame.model_data` in the same formats as the licensed
FLAME 2020 / DECA files, so that :mod:`decalite.flame.assets` and other FLAME tools (smplx, DECA, which do
``pickle.load(f, encoding='latin1')`` / ``np.load(..., allow_pickle=True)``) read them. All writers are
deterministic: the same input gives a byte-identical file.
"""

from __future__ import annotations

import io
import logging
import pickle
import pickletools
import struct
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from decalite.flame.model_data import (
    AlbedoData,
    FlameModelData,
    LandmarkEmbedding,
)
from decalite.io.pathlike import PathLike
from decalite.types import UVLayout

__all__ = [
    "write_albedo_npz",
    "write_asset_folder",
    "write_npz",
    "write_flame_model",
    "write_landmark_embedding",
    "write_obj_with_uvs",
    "write_uv_mask",
]

logger = logging.getLogger(__name__)


#: How ``kintree_table`` marks the root's parent in FLAME's file (uint32 -1).
ROOT_PARENT_MARK = np.uint32(0xFFFFFFFF)

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _prepare(path: PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


# --------------------------------------------------------------------------------------------------------
# generic_model.pkl


def write_flame_model(path: PathLike, data: FlameModelData) -> None:
    """Write ``generic_model.pkl`` in FLAME 2020's layout (pickle protocol 2, plain numpy, no chumpy).

    Keys: v_template (V, 3), f (F, 3) uint32, shapedirs (V, 3, K), posedirs (V, 3, 9 (J - 1)),
    J_regressor (J, V) ``scipy.sparse.csc_matrix``, kintree_table (2, J) uint32 (root parent 4294967295),
    weights (V, J), J (J, 3) template joints, bs_style ``'lbs'``, bs_type ``'lrotmin'``; floats are float64.
    ``expression_names`` (a list of str, one per expression component) when the head names them, and
    ``jaw_open_angle`` (a float) when set; readers that do not know these keys ignore them.
    """
    import scipy.sparse as sp

    n_joints = data.n_joints
    parents = np.asarray(data.parents, dtype=np.int64)
    kintree = np.empty((2, n_joints), dtype=np.uint32)
    kintree[0] = np.where(parents < 0, ROOT_PARENT_MARK, parents).astype(np.uint32)
    kintree[1] = np.arange(n_joints, dtype=np.uint32)
    v_template = np.ascontiguousarray(data.v_template, dtype=np.float64)
    j_regressor = np.ascontiguousarray(data.j_regressor, dtype=np.float64)
    content: dict[str, Any] = {
        "v_template": v_template,
        "f": np.ascontiguousarray(data.faces, dtype=np.uint32),
        "shapedirs": np.ascontiguousarray(data.shapedirs, dtype=np.float64),
        "posedirs": np.ascontiguousarray(data.posedirs, dtype=np.float64),
        "J_regressor": sp.csc_matrix(j_regressor),
        "kintree_table": kintree,
        "weights": np.ascontiguousarray(data.lbs_weights, dtype=np.float64),
        "J": j_regressor @ v_template,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    if data.expression_names:
        content["expression_names"] = [str(n) for n in data.expression_names]
    if data.jaw_open_angle is not None:
        content["jaw_open_angle"] = float(data.jaw_open_angle)
    _prepare(path).write_bytes(pickle.dumps(content, protocol=2))


# --------------------------------------------------------------------------------------------------------
# landmark_embedding.npy (a pickled dict holding torch tensors)


def _legacy_storage_bytes(tensor: Any) -> bytes:
    """What ``torch.storage._load_from_bytes`` expects: torch's legacy serialisation of a typed storage.

    ``torch.save`` names the storage by its memory address; that key is replaced by ``"0"`` so the bytes
    depend on the data only.
    """
    import torch

    tensor = tensor.detach().cpu().clone(memory_format=torch.contiguous_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation notice
        storage = torch.storage.TypedStorage(wrap_storage=tensor.untyped_storage(), dtype=tensor.dtype, _internal=True)
        buf = io.BytesIO()
        torch.save(storage, buf, _use_new_zipfile_serialization=False)
    raw = buf.getvalue()

    # The legacy format: 5 pickles (magic, version, sys info, the storage reference, the list of storage
    # keys) followed by the raw data. Find the key strings in the last two pickles and rewrite them.
    stream = io.BytesIO(raw)
    spans: list[tuple[int, str]] = []  # (opcode position, string) of the strings in pickles 4 and 5
    for index in range(5):
        for op, arg, pos in pickletools.genops(stream):
            if index >= 3 and isinstance(arg, str) and op.name in ("BINUNICODE", "SHORT_BINUNICODE"):
                spans.append((pos, arg))
    keys = {text for _, text in spans if text.isdigit()}
    if len(keys) != 1:
        raise RuntimeError(f"unexpected torch legacy storage layout (storage keys {sorted(keys)})")
    key = keys.pop()
    out = bytearray()
    last = 0
    for pos, text in spans:
        if text == key:
            short = raw[pos : pos + 1] == pickle.SHORT_BINUNICODE
            out += raw[last:pos]
            out += (pickle.SHORT_BINUNICODE + b"\x01" if short else pickle.BINUNICODE + struct.pack("<I", 1)) + b"0"
            last = pos + (2 if short else 5) + len(key.encode())
    out += raw[last:]
    return bytes(out)


class _StorageBytes:
    """Pickles as ``torch.storage._load_from_bytes(data)``, the way torch pickles a storage."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        import torch.storage

        return (torch.storage._load_from_bytes, (self.data,))


class _TensorPickler(pickle.Pickler):
    """Pickles torch tensors like ``Tensor.__reduce_ex__`` does, but with deterministic storage bytes."""

    def reducer_override(self, obj: Any) -> Any:
        import torch

        if isinstance(obj, torch.Tensor):
            # A compact copy: its storage holds exactly its elements, from offset 0.
            t = obj.detach().cpu().clone(memory_format=torch.contiguous_format)
            args = (_StorageBytes(_legacy_storage_bytes(t)), 0, tuple(t.shape), tuple(t.stride()), False, OrderedDict())
            return (torch._utils._rebuild_tensor_v2, args)
        return NotImplemented


def write_landmark_embedding(path: PathLike, emb: LandmarkEmbedding) -> None:
    """Write ``landmark_embedding.npy`` in DECA's layout: ``np.save`` of a dict (a 0-d object array).

    static_lmk_faces_idx (51,) int64 and static_lmk_bary_coords (51, 3) float64 as numpy arrays,
    dynamic_lmk_faces_idx (79, 17) and dynamic_lmk_bary_coords (79, 17, 3) as torch long / float32 tensors,
    full_lmk_faces_idx (1, 68) int64 and full_lmk_bary_coords (1, 68, 3) float64 with a leading 1.
    """
    import torch
    from numpy.lib import format as npy_format

    content = {
        "static_lmk_faces_idx": np.asarray(emb.static_faces, dtype=np.int64),
        "static_lmk_bary_coords": np.asarray(emb.static_bary, dtype=np.float64),
        "dynamic_lmk_faces_idx": torch.as_tensor(np.asarray(emb.dynamic_faces, dtype=np.int64)),
        "dynamic_lmk_bary_coords": torch.as_tensor(np.asarray(emb.dynamic_bary, dtype=np.float32)),
        "full_lmk_faces_idx": np.asarray(emb.full_faces, dtype=np.int64)[None],
        "full_lmk_bary_coords": np.asarray(emb.full_bary, dtype=np.float64)[None],
    }
    holder = np.empty((), dtype=object)
    holder[()] = content
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, npy_format.header_data_from_array_1_0(holder))
    _TensorPickler(buf, protocol=3).dump(holder)
    _prepare(path).write_bytes(buf.getvalue())


# --------------------------------------------------------------------------------------------------------
# head_template.obj


def write_obj_with_uvs(path: PathLike, layout: UVLayout, material: str | None = None) -> None:
    """Write an OBJ with ``v``, ``vt`` and ``f v/vt`` lines (1-based), floats in shortest exact form.

    ``material``: name of an ``.mtl`` file beside the OBJ to reference (``mtllib``/``usemtl``), or None.
    """
    vertices = np.asarray(layout.vertices, dtype=np.float64)
    uvs = np.asarray(layout.verts_uvs, dtype=np.float64)
    faces = np.asarray(layout.faces, dtype=np.int64) + 1
    faces_uvs = np.asarray(layout.faces_uvs, dtype=np.int64) + 1
    if faces.shape != faces_uvs.shape or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces {faces.shape} and faces_uvs {faces_uvs.shape} must both be (F, 3)")
    lines = ["# FLAME-format UV layout written by decalite"]
    if material:
        lines += [f"mtllib {material}", "usemtl material0"]
    lines += [f"v {x!r} {y!r} {z!r}" for x, y, z in vertices.tolist()]
    lines += [f"vt {u!r} {v!r}" for u, v in uvs.tolist()]
    lines += [
        f"f {a}/{ta} {b}/{tb} {c}/{tc}"
        for (a, b, c), (ta, tb, tc) in zip(faces.tolist(), faces_uvs.tolist())
    ]
    _prepare(path).write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


# --------------------------------------------------------------------------------------------------------
# UV masks


def write_uv_mask(path: PathLike, mask: np.ndarray) -> None:
    """Write a (H, W) mask in [0, 1] as an 8-bit greyscale PNG (white = inside)."""
    from PIL import Image

    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {mask.shape}")
    pixels = np.round(np.clip(mask, 0.0, 1.0) * 255.0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    _prepare(path).write_bytes(buf.getvalue())


# --------------------------------------------------------------------------------------------------------
# Albedo


def write_npz(path: PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed zip timestamps and permissions."""
    from numpy.lib import format as npy_format

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, mode="w", force_zip64=True) as fh:
                npy_format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
    _prepare(path).write_bytes(buf.getvalue())


def write_albedo_npz(path: PathLike, albedo: AlbedoData) -> None:
    """Write an albedo model in the ``FLAME_albedo_from_BFM.npz`` layout.

    ``MU`` (1, H*W*3) and ``PC`` (H*W*3, N), float32, texel order H, W, channel with channels BGR, values
    in [0, 1]. Requires a square texture (H == W), as readers infer H from the size.
    """
    mean = np.asarray(albedo.mean)
    basis = np.asarray(albedo.basis)
    if mean.ndim != 3 or mean.shape[2] != 3 or basis.shape[:3] != mean.shape or basis.ndim != 4:
        raise ValueError(f"expected mean (H, W, 3) and basis (H, W, 3, N), got {mean.shape} and {basis.shape}")
    if mean.shape[0] != mean.shape[1]:
        raise ValueError(f"the MU/PC layout needs a square texture, got {mean.shape[:2]}")
    mu = np.ascontiguousarray(mean[:, :, ::-1], dtype=np.float32).reshape(1, -1)
    pc = np.ascontiguousarray(basis[:, :, ::-1, :], dtype=np.float32).reshape(-1, basis.shape[3])
    write_npz(path, {"MU": mu, "PC": pc})


# --------------------------------------------------------------------------------------------------------
# A whole folder


def write_asset_folder(out_dir: PathLike, model: FlameModelData, embedding: LandmarkEmbedding, uv: UVLayout,
                       face_mask: np.ndarray, face_eye_mask: np.ndarray, albedo: AlbedoData | None,
                       readme: str) -> Path:
    """Write a FLAME-format asset folder: generic_model.pkl, landmark_embedding.npy, head_template.obj, both UV
    masks, albedo.npz (when given) and a README.txt holding ``readme``. Returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_flame_model(out / "generic_model.pkl", model)
    write_landmark_embedding(out / "landmark_embedding.npy", embedding)
    write_obj_with_uvs(out / "head_template.obj", uv)
    write_uv_mask(out / "uv_face_mask.png", face_mask)
    write_uv_mask(out / "uv_face_eye_mask.png", face_eye_mask)
    if albedo is not None:
        write_albedo_npz(out / "albedo.npz", albedo)
    (out / "README.txt").write_text(readme, encoding="utf-8")
    return out
