"""Deterministic mesh decimation by half-edge collapses: the kept vertices are a subset of the input vertices.

A collapse u -> v removes vertex u and re-points its faces to the neighbour v, which keeps its exact position,
so every per-vertex quantity defined on the input mesh (here: the blendshapes of a face model) stays exact on
the kept vertices; no vertex position is ever invented.

The order of the collapses follows plane quadrics (Garland & Heckbert 1997, Surface Simplification Using
Quadric Error Metrics), area-weighted and summed over S versions of the mesh (the neutral and deformed ones:
the error and every geometric check use all of them, so the result stays good while the mesh deforms).

A collapse u -> v is legal when

1. u is not protected, not on an open boundary or a non-manifold edge, not on a UV seam (its faces use one uv
   index for u, and every edge at u has one uv index at its other end on both sides);
2. the edge's link condition holds (the common neighbours of u and v are exactly the two opposite vertices of
   the edge's two faces) and no duplicate face appears;
3. no moved face turns by more than ``MAX_NORMAL_TURN_DEG`` (or flips) in any of the S shapes, nor faces away
   from the input surface where it lands (the sum of its corners' input vertex normals, so that small turns
   cannot add up to a flip over many collapses); no face's signed uv area changes sign or gets near zero; and
   in shapes[0] no new triangle's smallest angle falls below ``MIN_ANGLE_DEG`` unless the faces around u were
   already that thin. When no such collapse remains the bound drops to ``RELAXED_MIN_ANGLE_DEG``.

Candidates wait in a priority queue (cost: quadric error of u placed at v, plus a tiny edge-length tie-break)
with lazy invalidation: an entry carries the version of u at push time, and every collapse bumps (and re-pushes)
the vertices whose candidates it may have changed.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

log = logging.getLogger(__name__)

#: Largest turn of a moved face's normal in any shape (degrees); a flip is a turn of 180.
MAX_NORMAL_TURN_DEG = 60.0
#: Smallest angle of a new triangle in shapes[0] (degrees), unless the faces around u were already thinner.
MIN_ANGLE_DEG = 8.0
#: The same bound once no collapse passes ``MIN_ANGLE_DEG`` and the target is not reached.
RELAXED_MIN_ANGLE_DEG = 1.0
#: Smallest ``2 * area / longest_edge**2`` of a uv triangle (0.87 equilateral; ~0.03 is a 1.7 degree sliver).
MIN_UV_SHAPE = 0.03
#: Weight of the squared edge length (times the mean face area) added to the cost: orders the collapses of
#: flat regions (zero quadric error) shortest edge first and makes equal costs rare.
TIE_BREAK = 1e-4
#: Directed edges per vectorised cost evaluation (bounds the memory of the initial queue).
_CHUNK = 8192


@dataclass(frozen=True)
class Decimated:
    """The decimated mesh.

    Attributes:
        kept: (V',) int64, sorted original indices of the kept vertices.
        faces: (F', 3) int64, triangles indexing into ``kept`` (0..V'-1), orientation preserved.
        faces_uvs: (F', 3) int64, indices into the original uv array.
    """

    kept: np.ndarray
    faces: np.ndarray
    faces_uvs: np.ndarray


def decimate(
    shapes: np.ndarray,
    faces: np.ndarray,
    faces_uvs: np.ndarray,
    uvs: np.ndarray,
    target_vertices: int,
    protected: Iterable[int] = (),
) -> Decimated:
    """Remove vertices by half-edge collapses until ``target_vertices`` vertices are used by faces.

    Args:
        shapes: (S, V, 3) float, S >= 1 versions of the mesh (shapes[0] the neutral); (V, 3) is read as S = 1.
        faces: (F, 3) int triangles, counter-clockwise seen from outside.
        faces_uvs: (F, 3) int, uv index of each face corner.
        uvs: (T, 2) float uv coordinates.
        target_vertices: stop once the faces use this many vertices (or fewer).
        protected: vertex indices that are never removed.

    Returns:
        The kept vertices, the faces into them and their uv indices. When no legal collapse remains before the
        target, the result has more vertices than asked and a warning is logged.
    """
    shapes, faces, faces_uvs, uvs = _validate(shapes, faces, faces_uvs, uvs)
    collapser = _Collapser(shapes, faces, faces_uvs, uvs, protected)
    for min_angle in (MIN_ANGLE_DEG, RELAXED_MIN_ANGLE_DEG):
        if collapser.n_used <= target_vertices:
            break
        collapser.run(int(target_vertices), min_angle)
    if collapser.n_used > target_vertices:
        log.warning(
            "decimate: no legal collapse left at %d vertices (target %d)", collapser.n_used, target_vertices
        )
    return collapser.result()


def _validate(
    shapes: np.ndarray, faces: np.ndarray, faces_uvs: np.ndarray, uvs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes and index ranges; return float64 (S, V, 3) shapes, int64 faces and uv indices, uvs."""
    shapes = np.asarray(shapes, dtype=np.float64)
    if shapes.ndim == 2:
        shapes = shapes[None]
    faces = np.asarray(faces, dtype=np.int64)
    faces_uvs = np.asarray(faces_uvs, dtype=np.int64)
    uvs = np.asarray(uvs, dtype=np.float64)
    if shapes.ndim != 3 or shapes.shape[0] < 1 or shapes.shape[2] != 3:
        raise ValueError(f"shapes must be (S, V, 3) with S >= 1, got {shapes.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces_uvs.shape != faces.shape:
        raise ValueError(f"faces and faces_uvs must both be (F, 3), got {faces.shape} and {faces_uvs.shape}")
    if uvs.ndim != 2 or uvs.shape[1] != 2:
        raise ValueError(f"uvs must be (T, 2), got {uvs.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= shapes.shape[1]):
        raise ValueError("faces index outside the vertices")
    if faces_uvs.size and (faces_uvs.min() < 0 or faces_uvs.max() >= uvs.shape[0]):
        raise ValueError("faces_uvs index outside the uvs")
    if np.any((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])):
        raise ValueError("faces hold a triangle with a repeated vertex")
    if not np.all(np.isfinite(shapes)) or not np.all(np.isfinite(uvs)):
        raise ValueError("shapes and uvs must be finite")
    return shapes, faces, faces_uvs, uvs


def _face_normals(corners: np.ndarray) -> np.ndarray:
    """corners (..., 3, 3) triangle corner positions -> (..., 3) normals of length twice the area."""
    return np.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])


def _max_corner_cosine(corners: np.ndarray) -> np.ndarray:
    """corners (K, 3, 3) -> (K,) the largest corner-angle cosine (the smallest angle) of each triangle."""
    e = np.roll(corners, -1, axis=-2) - corners  # edge i: corner i -> corner i + 1
    e = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-300)
    cos = -np.sum(e * np.roll(e, 1, axis=-2), axis=-1)  # angle at corner i between edges i and i - 1
    return cos.max(axis=-1)


def _uv_shape(corners: np.ndarray) -> np.ndarray:
    """corners (K, 3, 2) uv triangles -> (K,) signed ``2 * area / longest_edge**2`` (0 for a point)."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    longest = np.max(np.sum((np.roll(corners, -1, axis=1) - corners) ** 2, axis=-1), axis=-1)
    return np.where(longest > 0, cross / np.where(longest > 0, longest, 1.0), 0.0)


def _vertex_normals(shapes: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(S, V, 3) area-weighted unit vertex normals of every shape (zero at unused vertices)."""
    normals = _face_normals(shapes[:, faces])  # (S, F, 3), length twice the area
    out = np.zeros_like(shapes)
    for corner in range(3):
        for s in range(shapes.shape[0]):
            np.add.at(out[s], faces[:, corner], normals[s])
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-300)


def _vertex_quadrics(shapes: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted plane quadrics (Garland & Heckbert 1997) of every vertex in every shape.

    Args:
        shapes: (S, V, 3) positions.
        faces: (F, 3) triangles.

    Returns:
        (S, V, 4, 4): for each vertex the sum over its faces of ``area * p p^T``, p = (n, -n . x0) the unit plane.
    """
    n_shapes, n_vertices = shapes.shape[:2]
    normals = _face_normals(shapes[:, faces])  # (S, F, 3)
    double_area = np.linalg.norm(normals, axis=-1)
    unit = normals / np.maximum(double_area, 1e-300)[..., None]
    offset = -np.sum(unit * shapes[:, faces[:, 0]], axis=-1)
    plane = np.concatenate([unit, offset[..., None]], axis=-1)  # (S, F, 4)
    face_q = 0.5 * double_area[..., None, None] * plane[..., :, None] * plane[..., None, :]  # (S, F, 4, 4)
    n_faces = faces.shape[0]
    incidence = sparse.csr_matrix(
        (np.ones(3 * n_faces), (faces.ravel(), np.repeat(np.arange(n_faces), 3))), shape=(n_vertices, n_faces)
    )
    per_face = face_q.transpose(1, 0, 2, 3).reshape(n_faces, n_shapes * 16)
    q = np.asarray(incidence @ per_face).reshape(n_vertices, n_shapes, 4, 4)
    return np.ascontiguousarray(q.transpose(1, 0, 2, 3))


def _undirected_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """faces (F, 3) -> unique sorted edges (E, 2) and the number of faces on each (E,)."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    return np.unique(edges, axis=0, return_counts=True)


def _seam_vertices(faces: np.ndarray, faces_uvs: np.ndarray, n_vertices: int) -> np.ndarray:
    """(V,) bool: vertices whose face corners use more than one uv index."""
    pairs = np.unique(np.stack([faces.ravel(), faces_uvs.ravel()], axis=1), axis=0)
    return np.bincount(pairs[:, 0], minlength=n_vertices) > 1


def _link_is_one_cycle(u: int, face_ids: Iterable[int], fv: Sequence[Sequence[int]]) -> bool:
    """True when the faces around interior vertex u form one closed fan (its link is a single cycle)."""
    nxt: dict[int, list[int]] = {}
    for f in face_ids:
        a, b, c = fv[f]
        x, y = (b, c) if a == u else (c, a) if b == u else (a, b)
        nxt.setdefault(x, []).append(y)
        nxt.setdefault(y, []).append(x)
    if not nxt or any(len(ys) != 2 for ys in nxt.values()):
        return False
    start = next(iter(nxt))
    previous, current, steps = start, nxt[start][0], 1
    while current != start:
        ys = nxt[current]
        previous, current = current, ys[1] if ys[0] == previous else ys[0]
        steps += 1
        if steps > len(nxt):
            return False
    return steps == len(nxt)


class _Collapser:
    """Mutable state of one decimation: faces, vertex-face sets, quadrics, the queue and version counters."""

    def __init__(
        self,
        shapes: np.ndarray,
        faces: np.ndarray,
        faces_uvs: np.ndarray,
        uvs: np.ndarray,
        protected: Iterable[int],
    ) -> None:
        self.shapes = shapes
        self.homogeneous = np.concatenate([shapes, np.ones(shapes.shape[:2] + (1,))], axis=-1)  # (S, V, 4)
        self.uvs = uvs
        self.fv: list[list[int]] = faces.tolist()
        self.ft: list[list[int]] = faces_uvs.tolist()
        self.alive = [True] * len(self.fv)
        n_vertices = shapes.shape[1]
        self.vf: list[set[int]] = [set() for _ in range(n_vertices)]
        for f, (a, b, c) in enumerate(self.fv):
            self.vf[a].add(f)
            self.vf[b].add(f)
            self.vf[c].add(f)
        self.n_used = sum(1 for s in self.vf if s)
        self.quadrics = _vertex_quadrics(shapes, faces)
        self.vertex_normals = _vertex_normals(shapes, faces)
        areas = 0.5 * np.linalg.norm(_face_normals(shapes[:, faces]), axis=-1) if len(faces) else np.zeros(1)
        self.tie_weight = TIE_BREAK * float(np.mean(areas))
        uv_shape = _uv_shape(uvs[faces_uvs]) if len(faces) else np.zeros(0)
        self.uv_sign: list[int] = np.sign(uv_shape).astype(int).tolist()
        self.locked: list[bool] = self._locked(faces, faces_uvs, protected).tolist()
        self.version = [0] * n_vertices
        self.heap: list[tuple[float, int, int, int]] = []
        self.cos_min_angle = 1.0
        self.cos_max_turn = float(np.cos(np.radians(MAX_NORMAL_TURN_DEG)))

    def _locked(self, faces: np.ndarray, faces_uvs: np.ndarray, protected: Iterable[int]) -> np.ndarray:
        """(V,) bool: vertices never removed (unused, protected, boundary, non-manifold, seam, not one fan)."""
        n_vertices = self.shapes.shape[1]
        locked = np.array([not s for s in self.vf], dtype=bool)
        prot = np.asarray(list(protected), dtype=np.int64)
        if prot.size and (prot.min() < 0 or prot.max() >= n_vertices):
            raise ValueError("protected index outside the vertices")
        locked[prot] = True
        if len(faces):
            edges, counts = _undirected_edges(faces)
            locked[edges[counts != 2].ravel()] = True
            locked |= _seam_vertices(faces, faces_uvs, n_vertices)
        for u in np.flatnonzero(~locked).tolist():
            if not _link_is_one_cycle(u, self.vf[u], self.fv):
                locked[u] = True
        return locked

    # ----------------------------------------------------------------------------------------------- queue
    def _neighbours(self, a: int) -> set[int]:
        """The vertices sharing a face with a."""
        out: set[int] = set()
        for f in self.vf[a]:
            out.update(self.fv[f])
        out.discard(a)
        return out

    def _costs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(K,) cost of collapsing a[k] into b[k]: quadric error of a and b at b's position, summed over shapes."""
        out = np.empty(len(a))
        for start in range(0, len(a), _CHUNK):
            ia, ib = a[start : start + _CHUNK], b[start : start + _CHUNK]
            q = self.quadrics[:, ia] + self.quadrics[:, ib]  # (S, K, 4, 4)
            h = self.homogeneous[:, ib]  # (S, K, 4)
            error = np.einsum("skij,ski,skj->k", q, h, h)
            length2 = np.sum((self.shapes[:, ia] - self.shapes[:, ib]) ** 2, axis=(0, 2))
            out[start : start + _CHUNK] = np.maximum(error, 0.0) + self.tie_weight * length2
        return out

    def _push_from(self, vertices: Iterable[int]) -> None:
        """Push every collapse a -> b for the unlocked a in ``vertices`` and b a neighbour of a."""
        pairs = [(a, b) for a in vertices if not self.locked[a] for b in sorted(self._neighbours(a))]
        if not pairs:
            return
        ab = np.asarray(pairs, dtype=np.int64)
        costs = self._costs(ab[:, 0], ab[:, 1]).tolist()
        version = self.version
        for cost, (a, b) in zip(costs, pairs):
            heapq.heappush(self.heap, (cost, a, b, version[a]))

    def _rebuild_queue(self) -> None:
        """The queue of every collapse from an unlocked vertex, from scratch."""
        pairs = [(a, b) for a in range(len(self.vf)) if not self.locked[a] for b in sorted(self._neighbours(a))]
        if not pairs:
            self.heap = []
            return
        ab = np.asarray(pairs, dtype=np.int64)
        costs = self._costs(ab[:, 0], ab[:, 1]).tolist()
        self.heap = [(cost, a, b, self.version[a]) for cost, (a, b) in zip(costs, pairs)]
        heapq.heapify(self.heap)

    # ------------------------------------------------------------------------------------------ legality
    def _topology(self, u: int, v: int) -> tuple[list[int], list[int], int] | None:
        """The faces on edge (u, v), the faces that move and v's uv index, or None when u -> v breaks rules 1-2."""
        fv, ft = self.fv, self.ft
        shared = [f for f in self.vf[u] if v in fv[f]]
        if len(shared) != 2:
            return None
        opposite = {w for f in shared for w in fv[f]} - {u, v}
        if len(opposite) != 2:
            return None
        if self._neighbours(u) & self._neighbours(v) != opposite:
            return None
        uv_of: dict[int, int] = {}  # one uv index per vertex of u's fan, or u sits on a seam
        for f in self.vf[u]:
            for w, t in zip(fv[f], ft[f]):
                if uv_of.setdefault(w, t) != t:
                    return None
        moved = sorted(f for f in self.vf[u] if f not in shared)
        around_v = {frozenset(fv[f]) for f in self.vf[v]} - {frozenset(fv[f]) for f in shared}
        for f in moved:
            if frozenset(v if w == u else w for w in fv[f]) in around_v:
                return None
        return shared, moved, uv_of[v]

    def _geometry_ok(self, u: int, v: int, shared: list[int], moved: list[int], tv: int) -> bool:
        """Rule 3: no moved face turns too far in any shape, stays too thin, or flips or collapses in uv."""
        old = np.asarray([self.fv[f] for f in moved], dtype=np.int64)  # (K, 3)
        new = np.where(old == u, v, old)
        old_n = _face_normals(self.shapes[:, old])  # (S, K, 3)
        new_n = _face_normals(self.shapes[:, new])
        dot = np.sum(old_n * new_n, axis=-1)
        norms = np.linalg.norm(old_n, axis=-1) * np.linalg.norm(new_n, axis=-1)
        if not np.all(dot > self.cos_max_turn * norms):
            return False
        surface = self.vertex_normals[:, new].sum(axis=2)  # (S, K, 3): the input surface where a new face lies
        if not np.all(np.sum(new_n * surface, axis=-1) > 0.0):
            return False
        all_old = np.asarray([self.fv[f] for f in shared] + old.tolist(), dtype=np.int64)
        old_cos = float(_max_corner_cosine(self.shapes[0, all_old]).max())
        if float(_max_corner_cosine(self.shapes[0, new]).max()) > max(self.cos_min_angle, old_cos):
            return False
        signs = np.asarray([self.uv_sign[f] for f in moved])
        if not np.any(signs):
            return True
        old_t = np.asarray([self.ft[f] for f in moved], dtype=np.int64)
        new_t = np.where(old == u, tv, old_t)
        constrained = signs != 0
        old_shape = _uv_shape(self.uvs[old_t[constrained]]) * signs[constrained]
        new_shape = _uv_shape(self.uvs[new_t[constrained]]) * signs[constrained]
        floor = min(MIN_UV_SHAPE, float(old_shape.min()))
        return bool(np.all(new_shape > 0.0) and np.all(new_shape >= floor))

    # ------------------------------------------------------------------------------------------ collapse
    def _collapse(self, u: int, v: int, shared: list[int], moved: list[int], tv: int) -> None:
        """Remove u: drop the edge's two faces, re-point u's other faces to v, merge quadrics, re-queue."""
        for f in shared:
            self.alive[f] = False
            for w in self.fv[f]:
                self.vf[w].discard(f)
        for f in moved:
            k = self.fv[f].index(u)
            self.fv[f][k] = v
            self.ft[f][k] = tv
            self.vf[v].add(f)
        self.vf[u] = set()
        self.locked[u] = True
        self.version[u] += 1
        self.quadrics[:, v] += self.quadrics[:, u]
        self.n_used -= 1
        ring = sorted(self._neighbours(v) | {v})
        for a in ring:
            self.version[a] += 1
        self._push_from(ring)

    def run(self, target: int, min_angle_deg: float) -> None:
        """Collapse the cheapest legal edge until ``target`` vertices are used or the queue is empty."""
        self.cos_min_angle = float(np.cos(np.radians(min_angle_deg)))
        self._rebuild_queue()
        heap, version, locked = self.heap, self.version, self.locked
        while heap and self.n_used > target:
            _, u, v, stamp = heapq.heappop(heap)
            if stamp != version[u] or locked[u]:
                continue
            plan = self._topology(u, v)
            if plan is None or not self._geometry_ok(u, v, *plan):
                continue
            self._collapse(u, v, *plan)

    def result(self) -> Decimated:
        """The alive faces (input order) re-indexed into the sorted kept vertices."""
        alive = np.asarray(self.alive, dtype=bool)
        faces = np.asarray(self.fv, dtype=np.int64).reshape(-1, 3)[alive]
        faces_uvs = np.asarray(self.ft, dtype=np.int64).reshape(-1, 3)[alive]
        kept = np.unique(faces)
        return Decimated(kept=kept, faces=np.searchsorted(kept, faces).astype(np.int64), faces_uvs=faces_uvs)
