"""The kept part of ICT's topology as one triangle mesh with one UV atlas in [0, 1].

ICT's UVs are UDIM-like tiles: the face in u in [0, 1], head and neck in [1, 2], and each eyeball's sclera and
iris in their own [0, 1] squares (overlapping the face's). FLAME's files need one chart layout in [0, 1], so the
tiles are packed into an atlas (see :data:`ATLAS`): the face keeps 3/4 of the side (the detail stage's UV maps
see it at 0.75 U), the head and each eye part get a 1/4 cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decalite.flame.ict.source import IctLayout, ObjMesh

#: Atlas cell of each UV tile: name -> (u0, v0, scale) with atlas_uv = (u0, v0) + scale * (uv - tile origin).
ATLAS: dict[str, tuple[float, float, float]] = {
    "face": (0.0, 0.25, 0.75),
    "head_neck": (0.75, 0.75, 0.25),
    "sclera_left": (0.75, 0.5, 0.25),
    "sclera_right": (0.75, 0.25, 0.25),
    "iris_left": (0.0, 0.0, 0.25),
    "iris_right": (0.25, 0.0, 0.25),
}
_MATERIAL_CELL = {"M_ScleraLeft": "sclera_left", "M_ScleraRight": "sclera_right", "M_IrisLeft": "iris_left",
                  "M_IrisRight": "iris_right"}


@dataclass(frozen=True, eq=False)
class Topology:
    """The kept mesh.

    Attributes:
        kept: (V,) int64 ICT vertex index of each kept vertex (ascending).
        faces: (F, 3) int64 triangles indexing ``kept``, counter-clockwise seen from outside.
        uvs: (T, 2) float64 atlas coordinates in [0, 1] (OBJ convention, v up).
        faces_uvs: (F, 3) int64 indices into ``uvs``.
    """

    kept: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    faces_uvs: np.ndarray


def kept_vertices(layout: IctLayout) -> np.ndarray:
    """(V,) ascending ICT indices of the parts decalite keeps (``layout.parts``)."""
    return np.unique(np.concatenate(list(layout.parts.values()))).astype(np.int64)


def _cell(material: str, u: float) -> str:
    if material in _MATERIAL_CELL:
        return _MATERIAL_CELL[material]
    return "face" if u < 1.0 else "head_neck"


def triangulate(mesh: ObjMesh, keep: np.ndarray) -> Topology:
    """Triangles of the polygons whose vertices are all kept, quads split along their shorter diagonal.

    Each polygon's UVs are moved into its :data:`ATLAS` cell (the tile from the material, or from u for the face
    and head tiles, which share materials at their border).
    """
    n = mesh.vertices.shape[0]
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[keep] = np.arange(keep.size)
    tris, tri_uvs, atlas_uvs = [], [], []
    uv_ids: dict[tuple[str, int], int] = {}

    def uv_id(cell: str, origin: tuple[float, float], t: int) -> int:
        key = (cell, t)
        if key not in uv_ids:
            u0, v0, s = ATLAS[cell]
            u, v = mesh.uvs[t]
            uv_ids[key] = len(atlas_uvs)
            atlas_uvs.append((u0 + s * (u - origin[0]), v0 + s * (v - origin[1])))
        return uv_ids[key]

    for poly, puv, mat in zip(mesh.polygons, mesh.polygon_uvs, mesh.materials):
        if (new_index[poly] < 0).any():
            continue
        centre = mesh.uvs[puv].mean(0)
        cell = _cell(mat, float(centre[0]))
        origin = (float(np.floor(centre[0])), float(np.floor(centre[1])))  # the tile (a corner may sit at u = 1)
        corners = list(range(len(poly)))
        if len(poly) == 4:
            p = mesh.vertices[poly]
            # split along the shorter diagonal: (0, 2) or (1, 3)
            pieces = [(0, 1, 2), (0, 2, 3)] if np.linalg.norm(p[0] - p[2]) <= np.linalg.norm(p[1] - p[3]) \
                else [(0, 1, 3), (1, 2, 3)]
        else:
            pieces = [(0, corners[i], corners[i + 1]) for i in range(1, len(poly) - 1)]
        for a, b, c in pieces:
            tris.append([new_index[poly[a]], new_index[poly[b]], new_index[poly[c]]])
            tri_uvs.append([uv_id(cell, origin, puv[a]), uv_id(cell, origin, puv[b]), uv_id(cell, origin, puv[c])])
    return Topology(kept=keep.astype(np.int64), faces=np.asarray(tris, dtype=np.int64),
                    uvs=np.clip(np.asarray(atlas_uvs, dtype=np.float64), 0.0, 1.0),
                    faces_uvs=np.asarray(tri_uvs, dtype=np.int64))


def compact(topology: Topology, kept_local: np.ndarray, faces: np.ndarray, faces_uvs: np.ndarray) -> Topology:
    """The topology after a decimation that kept ``kept_local`` (indices into ``topology.kept``) with new faces
    (indexing ``kept_local``) and faces_uvs (indexing ``topology.uvs``); unused UVs are dropped."""
    used = np.unique(faces_uvs)
    remap = np.full(topology.uvs.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    return Topology(kept=topology.kept[kept_local], faces=faces, uvs=topology.uvs[used], faces_uvs=remap[faces_uvs])
