"""The converted ICT head stored compactly (the file shipped in the package), and its expansion into a
FLAME-format folder.

``ict_light.npz`` (``np.savez_compressed``, no pickles): float32 template, uint16/int32 indices, the identity
and expression shapes and the jaw correctives as int16 (component-major, (K, V, 3)) with one float32 step per
component (1/32767 of the component's largest displacement, at least :data:`QUANT_STEP`: errors <= 0.001 mm), the rig, the landmark embedding, the UV
atlas, the masks as uint8 and each face's atlas cell. The procedural albedo is rebuilt from them when the folder
is written, and the shape slots ICT does not fill are zero-padded to FLAME's 300 then.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from decalite.flame import asset_writer
from decalite.flame.ict.convert import IctHead, albedo
from decalite.flame.ict.rig import JAW_SIN_FEATURE, PARENTS
from decalite.flame.model_data import N_SHAPE_TOTAL, FlameModelData, LandmarkEmbedding
from decalite.io.pathlike import PathLike
from decalite.types import UVLayout

#: Bumped whenever the pack's layout or the conversion changes (the cached folders carry it in their name).
PACK_VERSION = 1
#: The first line of the expanded folder's README (how a folder is recognised as the ICT head).
ICT_MARKER = "decalite ICT Face Model Light head"
ATTRIBUTION = (
    "ICT Face Model Light, Copyright (c) 2020 USC Institute for Creative Technologies, MIT licence "
    "(github.com/ICT-VGL/ICT-FaceKit); converted to FLAME's file format by decalite."
)
_INT16 = 32767.0
#: The smallest quantisation step (metres): 0.002 mm, so a value is stored within 0.001 mm.
QUANT_STEP = 2e-6
#: The shipped pack's file name (beside its LICENSE in the package's ``flame/ict/data``).
PACK_FILE = "ict_light.npz"


def _quantise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3, K) floats (metres) -> int16 (K, V, 3) and float32 (K,) steps with x ~ q * step."""
    step = np.abs(x).reshape(-1, x.shape[-1]).max(0) / _INT16 if x.size else np.zeros(x.shape[-1])
    step = np.maximum(step, QUANT_STEP).astype(np.float32)
    return np.ascontiguousarray(np.round(x / step).astype(np.int16).transpose(2, 0, 1)), step


def _dequantise(q: np.ndarray, step: np.ndarray) -> np.ndarray:
    """int16 (K, V, 3) and (K,) steps -> float64 (V, 3, K)."""
    return (q.transpose(1, 2, 0) * step.astype(np.float64))


def _index_dtype(n: int):
    return np.uint16 if n < 65536 else np.int32


def save_pack(path: PathLike, head: IctHead) -> None:
    """Write ``head`` as a compact ``.npz`` (deterministic bytes)."""
    m, e, uv = head.model, head.embedding, head.uv
    n_id = int(np.flatnonzero(np.abs(m.shapedirs[:, :, :N_SHAPE_TOTAL]).reshape(-1, N_SHAPE_TOTAL).max(0) > 0).max() + 1)
    shape_q, shape_s = _quantise(m.shapedirs[:, :, :n_id])
    exp_q, exp_s = _quantise(m.shapedirs[:, :, N_SHAPE_TOTAL:])
    jaw_q, jaw_s = _quantise(m.posedirs[:, :, JAW_SIN_FEATURE:JAW_SIN_FEATURE + 1])
    vi = _index_dtype(m.n_vertices)
    arrays = {
        "version": np.array(PACK_VERSION), "v_template": m.v_template.astype(np.float32),
        "faces": m.faces.astype(vi), "shape_q": shape_q, "shape_scale": shape_s, "exp_q": exp_q, "exp_scale": exp_s,
        "expression_names": np.array(m.expression_names), "jaw_q": jaw_q, "jaw_scale": jaw_s,
        "j_regressor": m.j_regressor.astype(np.float32), "lbs_weights": m.lbs_weights.astype(np.float32),
        "static_faces": e.static_faces.astype(np.int32), "static_bary": e.static_bary.astype(np.float32),
        "dynamic_faces": e.dynamic_faces.astype(np.int32), "dynamic_bary": e.dynamic_bary.astype(np.float32),
        "full_faces": e.full_faces.astype(np.int32), "full_bary": e.full_bary.astype(np.float32),
        "verts_uvs": uv.verts_uvs.astype(np.float32), "faces_uvs": uv.faces_uvs.astype(_index_dtype(len(uv.verts_uvs))),
        "face_mask": (head.face_mask * 255).round().astype(np.uint8),
        "face_eye_mask": (head.face_eye_mask * 255).round().astype(np.uint8),
        "landmarks68": head.landmarks68.astype(np.int32), "face_cells": head.face_cells.astype(np.int8),
        "kept": head.kept.astype(np.int32), "jaw_open_angle": np.array(m.jaw_open_angle),
        "report_keys": np.array(sorted(head.report)), "report_values": np.array([head.report[k] for k in sorted(head.report)]),
    }
    asset_writer.write_npz(path, arrays)


def load_pack(path: PathLike) -> IctHead:
    """Read a pack written by :func:`save_pack` (float64 arrays, FLAME's 300 + E shape layout)."""
    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    if int(a["version"]) != PACK_VERSION:
        raise ValueError(f"{path}: ICT pack version {int(a['version'])}, this decalite reads {PACK_VERSION}")
    v = a["v_template"].astype(np.float64)
    n_exp = a["exp_q"].shape[0]
    shapedirs = np.zeros((v.shape[0], 3, N_SHAPE_TOTAL + n_exp))
    n_id = a["shape_q"].shape[0]
    shapedirs[:, :, :n_id] = _dequantise(a["shape_q"], a["shape_scale"])
    shapedirs[:, :, N_SHAPE_TOTAL:] = _dequantise(a["exp_q"], a["exp_scale"])
    posedirs = np.zeros((v.shape[0], 3, 9 * (len(PARENTS) - 1)))
    posedirs[:, :, JAW_SIN_FEATURE] = _dequantise(a["jaw_q"], a["jaw_scale"])[:, :, 0]
    faces = a["faces"].astype(np.int64)
    model = FlameModelData(v_template=v, faces=faces, shapedirs=shapedirs, posedirs=posedirs,
                           j_regressor=a["j_regressor"].astype(np.float64), parents=PARENTS.copy(),
                           lbs_weights=a["lbs_weights"].astype(np.float64),
                           expression_names=tuple(str(n) for n in a["expression_names"]),
                           jaw_open_angle=float(a["jaw_open_angle"]), source=str(path))
    emb = LandmarkEmbedding(
        static_faces=a["static_faces"].astype(np.int64), static_bary=a["static_bary"].astype(np.float64),
        dynamic_faces=a["dynamic_faces"].astype(np.int64), dynamic_bary=a["dynamic_bary"].astype(np.float64),
        full_faces=a["full_faces"].astype(np.int64), full_bary=a["full_bary"].astype(np.float64), source=str(path))
    uv = UVLayout(vertices=v, faces=faces, verts_uvs=a["verts_uvs"].astype(np.float64),
                  faces_uvs=a["faces_uvs"].astype(np.int64), source=str(path))
    report = {str(k): float(x) for k, x in zip(a["report_keys"], a["report_values"])}
    return IctHead(model=model, embedding=emb, uv=uv, face_mask=a["face_mask"].astype(np.float32) / 255.0,
                   face_eye_mask=a["face_eye_mask"].astype(np.float32) / 255.0,
                   landmarks68=a["landmarks68"].astype(np.int64), face_cells=a["face_cells"].astype(np.int8),
                   kept=a["kept"].astype(np.int64), report=report)


def shipped_pack() -> Path:
    """The pack shipped inside the package (``decalite/flame/ict/data/ict_light.npz``)."""
    from decalite.errors import AssetError

    path = Path(__file__).resolve().parent / "data" / PACK_FILE
    if not path.is_file():
        raise AssetError(str(path), "file not found", what="the embedded ICT head",
                         expected="the compact ICT head shipped with decalite",
                         how_to_obtain="reinstall decalite, or rebuild it from ICT's files: decalite-assets source=ict "
                         "input=PATH/ICT-FaceKit/FaceXModel pack=" + str(path))
    return path


def write_ict_folder(head: IctHead, out_dir: PathLike) -> Path:
    """Write the head as a FLAME-format folder (with its procedural albedo and a README naming ICT's licence)."""
    readme = (
        f"{ICT_MARKER} (pack version {PACK_VERSION}).\n{ATTRIBUTION}\n"
        "Same file formats and conventions as FLAME 2020: metres, +y up, +z towards the camera, +x to the "
        "subject's left, radians. Shape slots: ICT's identity modes, then zeros up to 300; expression slots: "
        "ICT's ARKit-named shapes (expression_names in generic_model.pkl); jawOpen is the jaw joint "
        f"({np.degrees(head.model.jaw_open_angle):.2f} degrees = jawOpen 1), eyeLook* are the eye joints. "
        "The albedo is procedural (ICT Light has none).\n"
    )
    return asset_writer.write_asset_folder(out_dir, head.model, head.embedding, head.uv, head.face_mask,
                                           head.face_eye_mask, albedo(head), readme)


def pack_members(path: PathLike) -> dict[str, int]:
    """Compressed size of each array in a pack (bytes)."""
    with zipfile.ZipFile(path) as zf:
        return {i.filename: i.compress_size for i in zf.infolist()}
