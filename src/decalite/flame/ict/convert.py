"""ICT Face Model Light -> FLAME's file format: :func:`convert_ict`.

What the converted head holds (every choice documented here and in the shipped README):

* vertices: ICT's face, head-and-neck and eyeballs (its teeth, gums, tongue, mouth and eye sockets, lacrimal,
  eye blend / occlusion meshes and eyelashes are left out), quads split along their shorter diagonal, then
  decimated by half-edge collapses (a vertex subset: every kept vertex keeps ICT's exact values) to about
  twice FLAME's vertex count, keeping boundaries, UV seams and the landmark and jawline vertices.
* shape slots 0..N-1: ICT's identity modes (identityK - neutral; coefficients ~ N(0, 1)); slots N..299 are
  zero, so the file has FLAME 2020's layout (300 shape components, then the expressions).
* expression slots: ICT's expression shapes with their ARKit names (``expression_names`` in the file), except
  ``jawOpen`` (folded into the jaw joint: its fitted hinge plus pose correctives reproduce it) and the eight
  ``eyeLook*`` shapes (replaced by the eye joints, which turn the eyeballs rigidly). ICT's eyeLook shapes move
  only the lids (up to 2.5-3.7 mm) and not the eyeballs, so that lid-follow of the gaze is what is lost.
  jawLeft, jawRight and jawForward stay expression shapes.
* joints, skinning and correctives: :mod:`decalite.flame.ict.rig`; landmarks: :mod:`decalite.flame.ict.landmarks`;
  UV atlas: :mod:`decalite.flame.ict.topology`; masks and the procedural albedo: :mod:`decalite.flame.ict.appearance`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from decalite.flame.ict import rig as rigging
from decalite.flame.ict.appearance import albedo_model, rasterize_uv, uv_masks
from decalite.flame.ict.landmarks import contour_candidates, ict_embedding
from decalite.flame.ict.source import ICT_LAYOUT, IctLayout, IctSource, read_ict_folder
from decalite.flame.ict.topology import ATLAS, Topology, compact, kept_vertices, triangulate
from decalite.flame.model_data import N_SHAPE_TOTAL, AlbedoData, FlameModelData, LandmarkEmbedding
from decalite.types import UVLayout

log = logging.getLogger(__name__)

#: ICT expression shapes the joints replace.
JAW_OPEN = "jawOpen"
EYE_LOOKS = tuple(f"eyeLook{d}_{s}" for d in ("Down", "In", "Out", "Up") for s in ("L", "R"))
#: Default vertex budget after decimation: about twice FLAME's 5,023.
TARGET_VERTICES = 10_000
#: Cell codes of :data:`ATLAS`, in order (per-face ``face_cells``).
CELLS = tuple(ATLAS)


@dataclass(frozen=True, eq=False)
class IctHead:
    """The converted head (kept-mesh indexing throughout).

    Attributes:
        model, embedding, uv, face_mask, face_eye_mask: FLAME-format assets (masks (256, 256) float32).
        landmarks68: (68,) kept-vertex index of each Multi-PIE landmark.
        face_cells: (F,) int8 atlas cell of each face (index into :data:`CELLS`).
        kept: (V,) ICT vertex index of each kept vertex.
        report: conversion figures (residuals in mm, sizes).
    """

    model: FlameModelData
    embedding: LandmarkEmbedding
    uv: UVLayout
    face_mask: np.ndarray
    face_eye_mask: np.ndarray
    landmarks68: np.ndarray
    face_cells: np.ndarray
    kept: np.ndarray
    report: dict[str, float] = field(default_factory=dict)


def face_cells(uvs: np.ndarray, faces_uvs: np.ndarray) -> np.ndarray:
    """(F,) int8 :data:`ATLAS` cell holding each face's uv centroid."""
    centre = uvs[faces_uvs].mean(1)  # (F, 2)
    out = np.full(len(faces_uvs), -1, dtype=np.int8)
    for k, (u0, v0, s) in enumerate(ATLAS.values()):
        inside = (centre[:, 0] >= u0) & (centre[:, 0] < u0 + s) & (centre[:, 1] >= v0) & (centre[:, 1] < v0 + s)
        out[inside & (out < 0)] = k
    return out


def _local(kept: np.ndarray, n: int, ict_indices) -> np.ndarray:
    """Kept-mesh indices of ICT vertex indices (all must be kept)."""
    table = np.full(n, -1, dtype=np.int64)
    table[kept] = np.arange(kept.size)
    out = table[np.asarray(ict_indices, dtype=np.int64)]
    if (out < 0).any():
        raise ValueError(f"ICT vertices {np.asarray(ict_indices)[out < 0][:5]} were not kept")
    return out


def _protected(layout: IctLayout) -> np.ndarray:
    """ICT indices the decimation keeps: the landmark and jawline vertices."""
    return np.unique(np.concatenate([layout.landmarks68, layout.jawline_right, layout.jawline_left,
                                     layout.jawline_right_extended, layout.jawline_left_extended]))


def _decimate(src: IctSource, topo: Topology, target: int, layout: IctLayout) -> Topology:
    """Decimate the kept mesh to about ``target`` vertices, judged on the neutral and on deformed versions."""
    from decalite.flame.ict.decimate import decimate

    rest = src.neutral.vertices[topo.kept]
    shapes = [rest]
    for k in range(min(4, src.identity.shape[0])):
        shapes += [rest + 3.0 * src.identity[k, topo.kept], rest - 3.0 * src.identity[k, topo.kept]]
    for name in (JAW_OPEN, "mouthSmile_L", "browInnerUp_R", "eyeBlink_L", "mouthPucker"):
        if name in src.expression_names:
            shapes.append(rest + src.expressions[src.expression_names.index(name), topo.kept])
    local = np.full(src.neutral.vertices.shape[0], -1, dtype=np.int64)
    local[topo.kept] = np.arange(topo.kept.size)
    protected = local[_protected(layout)]
    out = decimate(np.stack(shapes), topo.faces, topo.faces_uvs, topo.uvs, target, protected=protected[protected >= 0])
    return compact(topo, out.kept, out.faces, out.faces_uvs)


def convert_ict(src: IctSource, target_vertices: int | None = TARGET_VERTICES,
                layout: IctLayout = ICT_LAYOUT) -> IctHead:
    """Convert ICT Face Model Light (read by :func:`decalite.flame.ict.source.read_ict_folder`).

    Args:
        src: the ICT model. target_vertices: vertex budget of the decimation; None keeps every vertex.
        layout: which vertices are what (ICT's own by default).
    """
    n_ict = src.neutral.vertices.shape[0]
    topo = triangulate(src.neutral, kept_vertices(layout))
    before = topo.kept.size
    if target_vertices is not None and topo.kept.size > target_vertices:
        topo = _decimate(src, topo, target_vertices, layout)
    kept = topo.kept
    rest = src.neutral.vertices[kept]
    names = list(src.expression_names)
    if JAW_OPEN not in names:
        raise ValueError("ICT's jawOpen expression is needed to fit the jaw joint")
    jaw_delta = src.expressions[names.index(JAW_OPEN), kept]

    def part(name: str) -> np.ndarray:
        return np.where(np.isin(kept, layout.parts[name]))[0]

    eyes = (part("eyeball_left"), part("eyeball_right"))
    rig = rigging.build_rig(rest, topo.faces, part("head_neck"), eyes, jaw_delta)

    keep_exp = [i for i, n in enumerate(names) if n != JAW_OPEN and n not in EYE_LOOKS]
    n_id = src.identity.shape[0]
    shapedirs = np.zeros((kept.size, 3, N_SHAPE_TOTAL + len(keep_exp)))
    shapedirs[:, :, :n_id] = src.identity[:, kept].transpose(1, 2, 0)
    shapedirs[:, :, N_SHAPE_TOTAL:] = src.expressions[keep_exp][:, kept].transpose(1, 2, 0)
    model = FlameModelData(
        v_template=rest, faces=topo.faces, shapedirs=shapedirs, posedirs=rig.posedirs, j_regressor=rig.j_regressor,
        parents=rigging.PARENTS.copy(), lbs_weights=rig.lbs_weights,
        expression_names=tuple(names[i] for i in keep_exp), jaw_open_angle=rig.hinge.angle,
        source=f"ICT Face Model Light ({src.root})",
    )

    lmk = _local(kept, n_ict, layout.landmarks68)
    frontal = _local(kept, n_ict, np.concatenate([layout.jawline_right, layout.landmarks68[8:9], layout.jawline_left]))
    face_v = part("face")
    cand = contour_candidates(rest, face_v, _local(kept, n_ict, layout.jawline_right_extended),
                              _local(kept, n_ict, layout.jawline_left_extended), int(lmk[8]))
    embedding = ict_embedding(rest, topo.faces, lmk, frontal, cand, rig.j_regressor[rigging.NECK] @ rest)

    cells = face_cells(topo.uvs, topo.faces_uvs)
    raster = rasterize_uv(topo.uvs, topo.faces_uvs, 256)
    narrow = np.isin(kept, layout.narrow_face)
    face_mask, face_eye_mask = uv_masks(rest, topo.faces, narrow, lmk, cells == CELLS.index("face"), *raster)

    report = {"vertices_before_decimation": float(before), "vertices": float(kept.size),
              "faces": float(len(topo.faces)), **_jaw_report(rest, jaw_delta, rig, face_v)}
    return IctHead(model=model, embedding=embedding,
                   uv=UVLayout(vertices=rest, faces=topo.faces, verts_uvs=topo.uvs, faces_uvs=topo.faces_uvs),
                   face_mask=face_mask, face_eye_mask=face_eye_mask, landmarks68=lmk, face_cells=cells, kept=kept,
                   report=report)


def _jaw_report(rest: np.ndarray, jaw_delta: np.ndarray, rig: rigging.Rig, face: np.ndarray) -> dict[str, float]:
    """Residuals (mm, face vertices) of the hinge alone against jawOpen at 1."""
    hinge = rig.hinge
    res = np.linalg.norm(rest + jaw_delta - rigging.lbs_two(rest, hinge.weights, hinge.pivot, hinge.angle), axis=1)
    return {"jaw_angle_deg": float(np.degrees(hinge.angle)), "jaw_hinge_residual_mean_mm": float(res[face].mean() * 1e3),
            "jaw_hinge_residual_max_mm": float(res[face].max() * 1e3)}


def albedo(head: IctHead, size: int = 128, n_components: int = 50, seed: int = 0) -> AlbedoData:
    """The procedural albedo model of the head (:func:`decalite.flame.ict.appearance.albedo_model`)."""
    cells = head.face_cells
    parts = {"skin": np.isin(cells, [CELLS.index("face"), CELLS.index("head_neck")]),
             "sclera": np.isin(cells, [CELLS.index("sclera_left"), CELLS.index("sclera_right")]),
             "iris": np.isin(cells, [CELLS.index("iris_left"), CELLS.index("iris_right")])}
    face, bary = rasterize_uv(head.uv.verts_uvs, head.uv.faces_uvs, size)
    return albedo_model(head.uv.vertices, head.uv.faces, head.landmarks68, parts, face, bary,
                        np.random.default_rng(seed), n_components)


def convert_ict_folder(root, target_vertices: int | None = TARGET_VERTICES, n_identity: int | None = None,
                       layout: IctLayout = ICT_LAYOUT) -> IctHead:
    """Read ICT's FaceXModel folder and convert it."""
    return convert_ict(read_ict_folder(root, n_identity=n_identity), target_vertices=target_vertices, layout=layout)
