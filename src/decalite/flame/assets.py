"""Loaders for FLAME-format asset files.

They read the licensed FLAME 2020 / DECA files (``generic_model.pkl``, ``landmark_embedding.npy``,
``head_template.obj``, the UV masks and an albedo model) or decalite's generated head written in the same
formats by :mod:`decalite.flame.asset_writer`, validate them and return the containers of
:mod:`decalite.flame.model_data`. Pickles are read with decalite's restricted unpickler
(:mod:`decalite.io.safe_pickle`); chumpy is never imported.

Every problem is raised as :class:`~decalite.errors.AssetError`, naming the file, the key, the
expected and the found shape, and how to obtain a valid file.

Time and memory stay bounded for hostile files: pickles go through the bounded restricted unpickler, each
field is converted only after its element count (shared references counted each time they appear) is checked
against what a FLAME file can hold (:data:`MAX_VERTICES`, :data:`MAX_FACES`, :data:`MAX_JOINTS`,
:data:`MAX_COMPONENTS`, and the exact shapes of the landmark embedding), ``.npy`` / ``.npz`` headers are checked
against the bytes present, and images against :data:`MAX_MASK_PIXELS` before they are decoded.
"""

from __future__ import annotations

import logging
import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from decalite.errors import (
    ALBEDO_HOW_TO_OBTAIN,
    DECA_DATA_HOW_TO_OBTAIN,
    FLAME_HOW_TO_OBTAIN,
    AssetError,
)
from decalite.flame.default import is_generated_head
from decalite.flame.model_data import (
    N_CONTOUR,
    N_LANDMARKS,
    N_SHAPE_TOTAL,
    N_STATIC,
    N_YAW_BINS,
    AlbedoData,
    FlameModelData,
    LandmarkEmbedding,
)
from decalite.io.bounded import DEFAULT_LIMITS, to_array
from decalite.io.npy import check_npz, load_npy
from decalite.io.pathlike import PathLike
from decalite.io.safe_pickle import (
    chumpy_to_numpy,
    safe_load_npy_pickle,
    safe_load_pickle,
)
from decalite.types import UVLayout

__all__ = [
    "FLAME_FILES",
    "FlameAssets",
    "find_albedo_file",
    "load_albedo",
    "load_flame_assets",
    "load_fixed_displacement",
    "load_flame_model",
    "load_landmark_embedding",
    "load_uv_layout",
    "load_uv_mask",
]

logger = logging.getLogger(__name__)


#: What a FLAME-format model may hold (FLAME 2020: 5,023 vertices, 9,976 faces, 5 joints, 300 + 100 components;
#: decalite's generated head: 5,824 vertices, 11,636 faces). A field declaring more is refused before it is
#: converted.
MAX_VERTICES = 50_000
MAX_FACES = 100_000
MAX_JOINTS = 16
MAX_COMPONENTS = 1_000
#: Pixels of a UV mask PNG (DECA's are 256 x 256); larger declared sizes are refused before decoding.
MAX_MASK_PIXELS = 8192 * 8192
#: Bytes of an albedo model's arrays (FLAME_albedo_from_BFM.npz at 512 x 512 x 3 x 145 float64 is 0.9 GB).
MAX_ALBEDO_BYTES = 4 << 30
#: Bytes of DECA's fixed displacement map (256 x 256 float64 is 0.5 MB).
MAX_DISPLACEMENT_BYTES = 64 << 20

#: Standard file names inside a FLAME asset folder. ``"albedo"`` lists candidates; the first existing wins.
FLAME_FILES: dict[str, Any] = {
    "model": "generic_model.pkl",
    "landmarks": "landmark_embedding.npy",
    "template": "head_template.obj",
    "face_mask": "uv_face_mask.png",
    "face_eye_mask": "uv_face_eye_mask.png",
    "albedo": ("FLAME_albedo_from_BFM.npz", "FLAME_texture.npz", "albedo.npz"),
    "fixed_displacement": "fixed_displacement_256.npy",
}


@dataclass(frozen=True)
class _Kind:
    """What an asset is, what it should contain and where to get it (for error messages)."""

    what: str
    expected: str
    how_to_obtain: str

    def error(self, path: PathLike | None, problem: str) -> AssetError:
        return AssetError(path, problem, what=self.what, expected=self.expected, how_to_obtain=self.how_to_obtain)

    def annotate(self, err: AssetError, path: PathLike) -> AssetError:
        return err.add_context(path=path, what=self.what, expected=self.expected, how_to_obtain=self.how_to_obtain)


_MODEL = _Kind(
    "FLAME model",
    "FLAME 2020 generic_model.pkl (a pickle of a dict with v_template (V, 3), f (F, 3), shapedirs (V, 3, 400), "
    "posedirs (V, 3, 36), J_regressor (5, V), kintree_table (2, 5) and weights (V, 5))",
    FLAME_HOW_TO_OBTAIN,
)
_LANDMARKS = _Kind(
    "FLAME landmark embedding",
    "landmark_embedding.npy (np.save of a dict with static_lmk_faces_idx (51,), static_lmk_bary_coords (51, 3), "
    "dynamic_lmk_faces_idx (79, 17), dynamic_lmk_bary_coords (79, 17, 3), full_lmk_faces_idx (1, 68) and "
    "full_lmk_bary_coords (1, 68, 3))",
    DECA_DATA_HOW_TO_OBTAIN,
)
_TEMPLATE = _Kind(
    "FLAME UV template",
    "head_template.obj (a triangle mesh with v, vt and 'f v/vt' lines)",
    DECA_DATA_HOW_TO_OBTAIN,
)
_MASK = _Kind(
    "FLAME UV mask",
    "a greyscale or RGB PNG in UV space, white inside the region",
    DECA_DATA_HOW_TO_OBTAIN,
)
_ALBEDO = _Kind(
    "albedo model",
    "FLAME_albedo_from_BFM.npz (keys MU (H*W*3 values) and PC (H*W*3, N), BGR in [0, 1]) or FLAME_texture.npz "
    "(keys mean (H, W, 3) and tex_dir (H, W, 3, N), BGR in 0..255)",
    ALBEDO_HOW_TO_OBTAIN,
)

_FIXED_DISPLACEMENT = _Kind(
    "DECA fixed displacement map",
    "fixed_displacement_256.npy (a plain float array of shape (256, 256), metres, about +-1.6e-3); DECA's "
    "detail decoder was trained with it added to every prediction",
    "It ships in DECA's data/ folder (github.com/yfeng95/DECA, data/fixed_displacement_256.npy): place it in "
    "flame.dir or set model.fixed_displacement=PATH",
)


@contextmanager
def _context(kind: _Kind, path: PathLike) -> Iterator[None]:
    """Annotate any AssetError raised inside with the asset's description."""
    try:
        yield
    except AssetError as err:
        raise kind.annotate(err, path)


def _require_file(kind: _Kind, path: PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise kind.error(path, "file not found")
    if not os.path.isfile(path):
        raise kind.error(path, "not a regular file")
    return path


def _shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_shape(kind: _Kind, path: str, key: str, arr: np.ndarray, expected: str, ok: bool) -> None:
    if not ok:
        raise kind.error(path, f"key '{key}' has shape {_shape_str(arr.shape)}, expected {expected}")


def _field_array(kind: _Kind, path: str, key: str, value: Any, max_elements: int, why: str) -> np.ndarray:
    """The value of ``key`` (chumpy stand-ins resolved, sparse densified) as an array, no copy where possible.

    Its element count is checked against ``max_elements`` before anything is allocated.
    """
    limits = replace(DEFAULT_LIMITS, max_elements=max_elements)
    value = chumpy_to_numpy(value, name=key, source=path, limits=limits)
    try:
        return to_array(value, name=key, source=path, max_elements=max_elements, why=why)
    except (TypeError, ValueError) as exc:
        raise kind.error(path, f"key '{key}' is not a numeric array ({type(value).__name__}: {exc})") from exc


def _as_float(
    kind: _Kind, path: str, key: str, value: Any, max_elements: int, why: str = "", dtype: type = np.float64
) -> np.ndarray:
    """``value`` as a contiguous float array of at most ``max_elements`` elements."""
    arr = _field_array(kind, path, key, value, max_elements, why)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise kind.error(path, f"key '{key}' is not a numeric array ({type(value).__name__}: dtype {arr.dtype})")
    return np.ascontiguousarray(arr, dtype=dtype)


def _as_index(kind: _Kind, path: str, key: str, value: Any, max_elements: int, why: str = "") -> np.ndarray:
    """``value`` as a contiguous int64 array of at most ``max_elements`` elements (integral floats accepted)."""
    arr = _field_array(kind, path, key, value, max_elements, why)
    if np.issubdtype(arr.dtype, np.integer):
        return np.ascontiguousarray(arr, dtype=np.int64)
    if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return np.ascontiguousarray(arr, dtype=np.int64)
    raise kind.error(path, f"key '{key}' should hold integer indices, found dtype {arr.dtype}")


# --------------------------------------------------------------------------------------------------------
# generic_model.pkl

_MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")


def _parents_from_kintree(path: str, kintree: np.ndarray) -> np.ndarray:
    """(2, J) kintree table (row 0 parents, row 1 joint ids) -> (J,) parents with the root as -1."""
    n_joints = kintree.shape[1]
    ids = kintree[1]
    if sorted(ids.tolist()) != list(range(n_joints)):
        raise _MODEL.error(
            path, f"kintree_table row 1 should list the joint ids 0..{n_joints - 1}, found {ids.tolist()}"
        )
    parents = np.empty(n_joints, dtype=np.int64)
    for col in range(n_joints):
        parent = int(kintree[0, col])
        parents[ids[col]] = parent if 0 <= parent < n_joints else -1  # 4294967295 (uint32 -1) marks the root
    if parents[0] != -1 or np.count_nonzero(parents < 0) != 1:
        raise _MODEL.error(path, f"kintree_table should have one root, joint 0; parents are {parents.tolist()}")
    if np.any(parents[1:] >= np.arange(1, n_joints)):
        raise _MODEL.error(path, f"kintree_table parents must precede their children; found {parents.tolist()}")
    return parents


def load_flame_model(path: PathLike) -> FlameModelData:
    """Read ``generic_model.pkl`` (FLAME 2020, or decalite's generated head in the same format).

    Chumpy arrays, a sparse ``J_regressor`` and the uint32 root marker of ``kintree_table`` are handled.

    Returns:
        FlameModelData with v_template (V, 3), faces (F, 3) int64, shapedirs (V, 3, >300),
        posedirs (V, 3, 9 * (J - 1)), j_regressor (J, V) dense, parents (J,) int64 with ``parents[0] == -1``
        and lbs_weights (V, J); floats are float64.

    Raises:
        AssetError: missing, unreadable or unsafe file; missing key; wrong shape.
    """
    path = _require_file(_MODEL, path)
    with _context(_MODEL, path):
        raw = safe_load_pickle(path)
        if not isinstance(raw, dict):
            raise _MODEL.error(path, f"the pickle holds a {type(raw).__name__}, not a dict")
        missing = [k for k in _MODEL_KEYS if k not in raw]
        if missing:
            found = ", ".join(sorted(map(str, raw)))
            raise _MODEL.error(path, f"missing key(s) {', '.join(repr(k) for k in missing)} (found: {found})")
        v_template = _as_float(_MODEL, path, "v_template", raw["v_template"], 3 * MAX_VERTICES,
                               f"at most {MAX_VERTICES:,} vertices x 3")
        ok = v_template.ndim == 2 and v_template.shape[1] == 3
        _check_shape(_MODEL, path, "v_template", v_template, "(V, 3)", ok)
        n_verts = v_template.shape[0]

        faces = _as_index(_MODEL, path, "f", raw["f"], 3 * MAX_FACES, f"at most {MAX_FACES:,} faces x 3")
        _check_shape(_MODEL, path, "f", faces, "(F, 3)", faces.ndim == 2 and faces.shape[1] == 3 and len(faces) > 0)
        if faces.min() < 0 or faces.max() >= n_verts:
            raise _MODEL.error(path, f"key 'f' indexes vertices {faces.min()}..{faces.max()}, but V = {n_verts}")

        kintree = _as_index(_MODEL, path, "kintree_table", raw["kintree_table"], 2 * MAX_JOINTS,
                            f"2 x at most {MAX_JOINTS} joints")
        _check_shape(_MODEL, path, "kintree_table", kintree, "(2, J)", kintree.ndim == 2 and kintree.shape[0] == 2)
        parents = _parents_from_kintree(path, kintree)
        n_joints = len(parents)

        shapedirs = _as_float(_MODEL, path, "shapedirs", raw["shapedirs"], n_verts * 3 * MAX_COMPONENTS,
                              f"{n_verts:,} vertices x 3 x at most {MAX_COMPONENTS:,} components")
        _check_shape(
            _MODEL, path, "shapedirs", shapedirs, f"({n_verts}, 3, K) with K > {N_SHAPE_TOTAL} (shape + expression)",
            shapedirs.ndim == 3 and shapedirs.shape[:2] == (n_verts, 3) and shapedirs.shape[2] > N_SHAPE_TOTAL,
        )  # fmt: skip
        n_pose = 9 * (n_joints - 1)
        posedirs = _as_float(_MODEL, path, "posedirs", raw["posedirs"], n_verts * 3 * n_pose,
                             f"{n_verts:,} vertices x 3 x {n_pose} pose correctives")
        _check_shape(
            _MODEL, path, "posedirs", posedirs, f"({n_verts}, 3, {n_pose})",
            posedirs.shape == (n_verts, 3, n_pose),
        )  # fmt: skip
        j_regressor = _as_float(_MODEL, path, "J_regressor", raw["J_regressor"], n_joints * n_verts,
                                f"{n_joints} joints x {n_verts:,} vertices")
        _check_shape(
            _MODEL, path, "J_regressor", j_regressor, f"({n_joints}, {n_verts})",
            j_regressor.shape == (n_joints, n_verts),
        )  # fmt: skip
        weights = _as_float(_MODEL, path, "weights", raw["weights"], n_verts * n_joints,
                            f"{n_verts:,} vertices x {n_joints} joints")
        _check_shape(_MODEL, path, "weights", weights, f"({n_verts}, {n_joints})", weights.shape == (n_verts, n_joints))
        if not np.allclose(weights.sum(axis=1), 1.0, atol=1e-3):
            logger.warning("Skinning weights of %s do not sum to 1 for every vertex", path)
        names = _expression_names(path, raw.get("expression_names"), shapedirs.shape[2] - N_SHAPE_TOTAL)
        jaw_open = raw.get("jaw_open_angle")
        if jaw_open is not None and not (isinstance(jaw_open, float) and 0.0 < jaw_open < math.pi):
            raise _MODEL.error(path, f"key 'jaw_open_angle' must be an angle in (0, pi) radians, got {jaw_open!r}")

    return FlameModelData(
        v_template=v_template,
        faces=faces,
        shapedirs=shapedirs,
        posedirs=posedirs,
        j_regressor=j_regressor,
        parents=parents,
        lbs_weights=weights,
        expression_names=names,
        jaw_open_angle=jaw_open,
        source=path,
    )


def _expression_names(path: str, value: Any, n_exp: int) -> tuple[str, ...]:
    """The optional ``expression_names`` key: a list of at most ``n_exp`` short strings, or absent."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(n, str) and 0 < len(n) <= 64 for n in value):
        raise _MODEL.error(path, "key 'expression_names' must be a list of names (strings of 1-64 characters)")
    if len(value) > n_exp:
        raise _MODEL.error(path, f"key 'expression_names' names {len(value)} components, shapedirs has {n_exp}")
    return tuple(value)


# --------------------------------------------------------------------------------------------------------
# landmark_embedding.npy


def load_landmark_embedding(path: PathLike) -> LandmarkEmbedding:
    """Read ``landmark_embedding.npy`` (a pickled dict of numpy arrays and torch tensors).

    Returns:
        LandmarkEmbedding with static (51,) / (51, 3), dynamic (79, 17) / (79, 17, 3) and full (68,) / (68, 3)
        arrays; face indices int64, barycentric coordinates float64.

    Raises:
        AssetError: missing, unreadable or unsafe file; missing key; wrong shape.
    """
    path = _require_file(_LANDMARKS, path)
    with _context(_LANDMARKS, path):
        arr = safe_load_npy_pickle(path)
        raw = arr[()] if arr.ndim == 0 else None
        if not isinstance(raw, dict):
            raise _LANDMARKS.error(path, f"the .npy holds a {arr.dtype} array of shape {arr.shape}, not a dict")
        specs = {
            "static_lmk_faces_idx": ((N_STATIC,), False),
            "static_lmk_bary_coords": ((N_STATIC, 3), True),
            "dynamic_lmk_faces_idx": ((N_YAW_BINS, N_CONTOUR), False),
            "dynamic_lmk_bary_coords": ((N_YAW_BINS, N_CONTOUR, 3), True),
            "full_lmk_faces_idx": ((N_LANDMARKS,), False),
            "full_lmk_bary_coords": ((N_LANDMARKS, 3), True),
        }
        missing = [k for k in specs if k not in raw]
        if missing:
            found = ", ".join(sorted(map(str, raw)))
            raise _LANDMARKS.error(path, f"missing key(s) {', '.join(repr(k) for k in missing)} (found: {found})")
        out: dict[str, np.ndarray] = {}
        for key, (shape, is_bary) in specs.items():
            count, why = math.prod(shape), f"shape {_shape_str(shape)}"
            convert = _as_float if is_bary else _as_index
            a = convert(_LANDMARKS, path, key, raw[key], count, why)
            if key.startswith("full_") and a.ndim == len(shape) + 1 and a.shape[0] == 1:
                a = a[0]  # the file stores a leading batch dimension of 1
            expected = _shape_str(shape) if not key.startswith("full_") else f"{_shape_str((1, *shape))}"
            _check_shape(_LANDMARKS, path, key, a, expected, a.shape == shape)
            if not is_bary and a.size and a.min() < 0:
                raise _LANDMARKS.error(path, f"key '{key}' holds negative face indices")
            out[key] = a
    return LandmarkEmbedding(
        static_faces=out["static_lmk_faces_idx"],
        static_bary=out["static_lmk_bary_coords"],
        dynamic_faces=out["dynamic_lmk_faces_idx"],
        dynamic_bary=out["dynamic_lmk_bary_coords"],
        full_faces=out["full_lmk_faces_idx"],
        full_bary=out["full_lmk_bary_coords"],
        source=path,
    )


# --------------------------------------------------------------------------------------------------------
# head_template.obj


def _obj_index(token: str, count: int, path: str, lineno: int, what: str) -> int:
    try:
        idx = int(token)
    except ValueError as exc:
        raise _TEMPLATE.error(path, f"line {lineno}: bad {what} index {token!r}") from exc
    if idx > 0:
        return idx - 1  # range checked once all lines are read
    if idx < 0 and count + idx >= 0:
        return count + idx  # relative to the elements defined so far
    raise _TEMPLATE.error(path, f"line {lineno}: {what} index {idx} is out of range")


def load_uv_layout(path: PathLike) -> UVLayout:
    """Read the mesh and UV layout of ``head_template.obj`` exactly (no vertex merging or splitting).

    Handles ``f a/b``, ``f a/b/c`` (normals ignored) and negative (relative) indices. Only triangles are
    accepted, and every face needs texture indices.

    Returns:
        UVLayout with vertices (V, 3), faces (F, 3), verts_uvs (T, 2), faces_uvs (F, 3).

    Raises:
        AssetError: missing or unreadable file, a polygon that is not a triangle, a face without texture
            indices, an index out of range.
    """
    path = _require_file(_TEMPLATE, path)
    verts: list[list[float]] = []
    uvs: list[list[float]] = []
    faces: list[list[int]] = []
    faces_uvs: list[list[int]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts or parts[0].startswith("#"):
                    continue
                tag = parts[0]
                try:
                    if tag == "v":
                        verts.append([float(x) for x in parts[1:4]])
                        if len(verts[-1]) != 3:
                            raise ValueError("a vertex needs 3 coordinates")
                    elif tag == "vt":
                        uvs.append([float(x) for x in parts[1:3]])
                        if len(uvs[-1]) != 2:
                            raise ValueError("a texture coordinate needs 2 values")
                except ValueError as exc:
                    raise _TEMPLATE.error(path, f"line {lineno}: {exc}") from exc
                if tag != "f":
                    continue
                corners = parts[1:]
                if len(corners) != 3:
                    raise _TEMPLATE.error(
                        path, f"line {lineno}: a face with {len(corners)} corners; only triangles are supported"
                    )
                fv: list[int] = []
                ft: list[int] = []
                for corner in corners:
                    pieces = corner.split("/")
                    if len(pieces) < 2 or pieces[1] == "":
                        raise _TEMPLATE.error(path, f"line {lineno}: face corner {corner!r} has no texture index")
                    fv.append(_obj_index(pieces[0], len(verts), path, lineno, "vertex"))
                    ft.append(_obj_index(pieces[1], len(uvs), path, lineno, "texture"))
                faces.append(fv)
                faces_uvs.append(ft)
    except (OSError, UnicodeError) as exc:
        raise _TEMPLATE.error(path, f"cannot read it ({exc})") from exc

    if not faces:
        raise _TEMPLATE.error(path, "no faces found")
    vertices = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    verts_uvs = np.asarray(uvs, dtype=np.float64).reshape(-1, 2)
    f = np.asarray(faces, dtype=np.int64)
    ft_arr = np.asarray(faces_uvs, dtype=np.int64)
    if f.max() >= len(vertices):
        raise _TEMPLATE.error(path, f"faces index vertex {f.max() + 1} but only {len(vertices)} vertices exist")
    if ft_arr.max() >= len(verts_uvs):
        raise _TEMPLATE.error(
            path, f"faces index texture coordinate {ft_arr.max() + 1} but only {len(verts_uvs)} exist"
        )
    return UVLayout(vertices=vertices, faces=f, verts_uvs=verts_uvs, faces_uvs=ft_arr, source=path)


# --------------------------------------------------------------------------------------------------------
# UV masks


def load_uv_mask(path: PathLike, size: int | None = None) -> np.ndarray:
    """Read a UV mask PNG (greyscale, RGB or RGBA; white = inside).

    Args:
        path: the PNG file.
        size: if given, resize (bilinear) to ``size x size``.

    Returns:
        (H, W) float32 mask in [0, 1], row 0 at the top of the UV image.
    """
    from PIL import Image, UnidentifiedImageError

    from decalite.io.images import open_image, pixel_problem

    path = _require_file(_MASK, path)
    try:
        with open_image(path) as img:
            problem = pixel_problem(img.size, MAX_MASK_PIXELS)
            if problem:
                raise _MASK.error(path, problem)
            img.load()
            if img.mode.startswith("I;16"):
                arr = np.asarray(img, dtype=np.float32) / 65535.0
            elif img.mode in ("I", "F"):
                arr = np.asarray(img, dtype=np.float32)
                if img.mode == "I":
                    arr = arr / (65535.0 if arr.max() > 255 else 255.0)
            else:
                arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _MASK.error(path, f"unreadable or truncated image ({exc})") from exc
    if arr.ndim != 2:
        raise _MASK.error(path, f"expected a single-channel image, decoded shape {arr.shape}")
    if size is not None:
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        arr = np.asarray(Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32)).resize(
            (size, size), Image.Resampling.BILINEAR
        ))  # fmt: skip
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def load_fixed_displacement(path: PathLike) -> np.ndarray:
    """Read DECA's ``fixed_displacement_256.npy``: (U, U) float32 metres (no pickles are accepted)."""
    path = _require_file(_FIXED_DISPLACEMENT, path)
    with _context(_FIXED_DISPLACEMENT, path):
        arr = load_npy(path, name="the displacement map", max_bytes=MAX_DISPLACEMENT_BYTES)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or not np.issubdtype(arr.dtype, np.floating):
        raise _FIXED_DISPLACEMENT.error(path, f"expected a square float array, got {arr.dtype} {arr.shape}")
    if not np.isfinite(arr).all() or np.abs(arr).max() > 0.05:
        raise _FIXED_DISPLACEMENT.error(path, "values are not finite or larger than 5 cm: not a displacement map")
    return arr.astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# Albedo


def load_albedo(path: PathLike, n_components: int | None = None) -> AlbedoData:
    """Read a linear UV albedo model and normalise it to RGB in [0, 1].

    Two layouts are recognised by their keys: ``MU`` / ``PC`` (FLAME_albedo_from_BFM.npz: H*W*3 values per
    component, texel order H, W, channel, BGR, [0, 1], square) and ``mean`` / ``tex_dir`` (FLAME_texture.npz:
    (H, W, 3) and (H, W, 3, N), BGR, 0..255).

    Args:
        path: the ``.npz`` file.
        n_components: keep only the first N components (default: all).

    Returns:
        AlbedoData with mean (H, W, 3) float32 RGB and basis (H, W, 3, N) float32 RGB.

    Raises:
        AssetError: missing or unreadable file, unknown layout, inconsistent sizes, or more components asked
            for than the file holds.
    """
    path = _require_file(_ALBEDO, path)
    if n_components is not None and n_components < 0:
        raise ValueError(f"n_components must be >= 0, got {n_components}")
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":  # np.load would read an .npy here, trusting its header
                raise _ALBEDO.error(path, "not an .npz archive")
            fh.seek(0)
            npz = np.load(fh, allow_pickle=False)
            with npz:
                check_npz(npz.zip, path, max_bytes=MAX_ALBEDO_BYTES)
                keys = set(npz.files)
                if {"MU", "PC"} <= keys:
                    layout, mean_raw, basis_raw, scale = "MU/PC", npz["MU"], npz["PC"], 1.0
                elif {"mean", "tex_dir"} <= keys:
                    layout, mean_raw, basis_raw, scale = "mean/tex_dir", npz["mean"], npz["tex_dir"], 1.0 / 255.0
                else:
                    raise _ALBEDO.error(
                        path, f"unknown albedo layout: needs keys MU and PC, or mean and tex_dir; found {sorted(keys)}"
                    )
    except AssetError as err:
        raise _ALBEDO.annotate(err, path)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise _ALBEDO.error(path, f"unreadable or truncated .npz ({type(exc).__name__}: {exc})") from exc

    key_mean, key_basis = layout.split("/")
    if basis_raw.ndim < 1 or basis_raw.shape[-1] == 0:
        raise _ALBEDO.error(path, f"key '{key_basis}' has shape {_shape_str(basis_raw.shape)}, expected (..., N)")
    n_avail = int(basis_raw.shape[-1])
    basis_flat = basis_raw.reshape(-1, n_avail)
    n_texels3 = basis_flat.shape[0]
    if mean_raw.size != n_texels3 or n_texels3 % 3:
        raise _ALBEDO.error(
            path,
            f"key '{key_mean}' has {mean_raw.size} values and '{key_basis}' {n_texels3} rows per component; "
            "expected the same H*W*3 for both",
        )
    if mean_raw.ndim == 3 and mean_raw.shape[2] == 3:
        height, width = int(mean_raw.shape[0]), int(mean_raw.shape[1])
    else:
        side = math.isqrt(n_texels3 // 3)
        if side * side * 3 != n_texels3:
            raise _ALBEDO.error(path, f"key '{key_mean}' has {mean_raw.size} values, not a square H*H*3 image")
        height = width = side
    n_keep = n_avail if n_components is None else int(n_components)
    if n_keep > n_avail:
        raise _ALBEDO.error(path, f"{n_keep} albedo components requested, but the file holds only {n_avail}")

    # Channel order BGR -> RGB; select components before converting to keep one copy of the basis.
    mean = np.ascontiguousarray(mean_raw.reshape(height, width, 3)[:, :, ::-1], dtype=np.float32)
    basis = np.ascontiguousarray(basis_flat.reshape(height, width, 3, n_avail)[:, :, ::-1, :n_keep], dtype=np.float32)
    if scale != 1.0:
        mean *= np.float32(scale)
        basis *= np.float32(scale)
    logger.debug("Loaded %s albedo %s: %dx%d, %d of %d components", layout, path, height, width, n_keep, n_avail)
    return AlbedoData(mean=mean, basis=basis, source=path)


# --------------------------------------------------------------------------------------------------------
# A whole folder


@dataclass(frozen=True)
class FlameAssets:
    """All FLAME-format assets of one folder (see :data:`FLAME_FILES`).

    Attributes:
        model: the morphable model.
        embedding: landmark embedding.
        uv: mesh and UV layout.
        face_mask: (H, W) float32 UV mask of the face region.
        face_eye_mask: (H, W) float32 UV mask of the face region including the eyes.
        albedo: the albedo model, or None when absent or not requested.
        root: the folder.
        fixed_displacement: (256, 256) DECA's fixed displacement when the folder holds
            ``fixed_displacement_256.npy``, else None.
        generated: True when the folder holds decalite's generated head (its README says so), False for FLAME.
    """

    model: FlameModelData
    embedding: LandmarkEmbedding
    uv: UVLayout
    face_mask: np.ndarray
    face_eye_mask: np.ndarray
    albedo: AlbedoData | None
    root: str
    fixed_displacement: np.ndarray | None = None
    generated: bool = False


def find_albedo_file(root: PathLike) -> Path | None:
    """The first existing albedo candidate of :data:`FLAME_FILES` in ``root``, or None."""
    for name in FLAME_FILES["albedo"]:
        candidate = Path(root) / name
        if candidate.is_file():
            return candidate
    return None


def load_flame_assets(
    root: PathLike, *, albedo: bool = True, n_tex: int | None = None, require_albedo: bool = False
) -> FlameAssets:
    """Load every FLAME-format asset of a folder.

    Args:
        root: folder holding the files named in :data:`FLAME_FILES`.
        albedo: load an albedo model if one of the candidates exists (else ``albedo`` is None).
        n_tex: keep only the first ``n_tex`` albedo components.
        require_albedo: raise an AssetError when no albedo file exists.

    Raises:
        AssetError: the folder or a required file is missing or invalid (the message names it).
    """
    root_s = os.fspath(root)
    if not os.path.isdir(root_s):
        raise AssetError(
            root_s,
            "folder not found",
            what="FLAME asset folder",
            expected="a folder with " + ", ".join(v for v in FLAME_FILES.values() if isinstance(v, str)),
            how_to_obtain=FLAME_HOW_TO_OBTAIN,
        )

    def file(key: str) -> str:
        return os.path.join(root_s, FLAME_FILES[key])

    model = load_flame_model(file("model"))
    embedding = load_landmark_embedding(file("landmarks"))
    uv = load_uv_layout(file("template"))
    face_mask = load_uv_mask(file("face_mask"))
    face_eye_mask = load_uv_mask(file("face_eye_mask"))

    albedo_data: AlbedoData | None = None
    if albedo or require_albedo:
        albedo_path = find_albedo_file(root_s)
        if albedo_path is not None:
            albedo_data = load_albedo(albedo_path, n_components=n_tex)
        elif require_albedo:
            names = " or ".join(FLAME_FILES["albedo"])
            raise _ALBEDO.error(os.path.join(root_s, FLAME_FILES["albedo"][0]), f"file not found (looked for {names})")
        else:
            logger.info("No albedo model in %s; continuing without one", root_s)

    fixed = file("fixed_displacement")
    return FlameAssets(
        model=model,
        embedding=embedding,
        uv=uv,
        face_mask=face_mask,
        face_eye_mask=face_eye_mask,
        albedo=albedo_data,
        root=root_s,
        fixed_displacement=load_fixed_displacement(fixed) if os.path.exists(fixed) else None,
        generated=is_generated_head(root_s),
    )
