"""Reading ICT Face Model Light's folder (``FaceXModel/`` of github ICT-VGL/ICT-FaceKit, MIT licence).

The facts below (vertex ranges, landmark vertex indices, jawline sets) are ICT's, from its README; the files are
OBJs in centimetres sharing one vertex order: ``generic_neutral_mesh.obj`` (with UVs and mostly-quad faces),
``identity000..099.obj`` (the neutral plus one PCA mode at +1: coefficients ~ N(0, 1)) and one OBJ per expression
shape (ARKit names with ``_L`` / ``_R`` sides), listed in ``vertex_indices.json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decalite.errors import AssetError
from decalite.io.pathlike import PathLike

#: ICT's OBJs are in centimetres; FLAME's files in metres.
CM = 0.01
NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDEX_FILE = "vertex_indices.json"
IDENTITY_PATTERN = "identity{:03d}.obj"
#: Vertex ranges (start, stop) of the geometries decalite keeps (ICT README, "Face Model Topology").
PARTS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "head_neck": (9409, 11248),
    "eyeball_left": (21451, 23021),
    "eyeball_right": (23021, 24591),
}
#: The narrow face area (ICT README, "Face Area Details").
NARROW_FACE = (0, 6706)
#: Multi-PIE 68 landmark vertex indices (0-based, ICT README).
LANDMARKS_68 = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443, 268, 493,
    1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147, 4269, 3360, 1507, 1542,
    1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461,
    5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
)
#: The jawline vertices substituting Multi-PIE contour points 0-7 (subject's right) and 9-16 (left).
JAWLINE_RIGHT = (1278, 1272, 12, 1834, 243, 781, 2199, 1447)
JAWLINE_LEFT = (3661, 4390, 3022, 2484, 4036, 2253, 3490, 3496)
#: Their supersets, 17 vertices each side, ordered from the temple to the chin (right) and chin to temple (left).
JAWLINE_RIGHT_EXTENDED = (1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199, 801, 1447, 800)
JAWLINE_LEFT_EXTENDED = (3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466, 3490, 3493,
                         3496, 3498)

@dataclass(frozen=True, eq=False)
class IctLayout:
    """Which vertices of an ICT-format mesh are what (ICT's own: :data:`ICT_LAYOUT`; a test builds a small one).

    Attributes:
        parts: "face", "head_neck", "eyeball_left", "eyeball_right" -> (N,) vertex indices (the kept parts).
        narrow_face: (N,) the narrow face area (the UV face masks).
        landmarks68: (68,) Multi-PIE landmark vertices.
        jawline_right, jawline_left: (8,) the jawline vertices substituting contour points 0-7 and 9-16.
        jawline_right_extended, jawline_left_extended: their supersets, temple to chin (right), chin to temple (left).
    """

    parts: dict[str, np.ndarray]
    narrow_face: np.ndarray
    landmarks68: np.ndarray
    jawline_right: np.ndarray
    jawline_left: np.ndarray
    jawline_right_extended: np.ndarray
    jawline_left_extended: np.ndarray


ICT_LAYOUT = IctLayout(
    parts={name: np.arange(a, b) for name, (a, b) in PARTS.items()},
    narrow_face=np.arange(*NARROW_FACE),
    landmarks68=np.array(LANDMARKS_68),
    jawline_right=np.array(JAWLINE_RIGHT),
    jawline_left=np.array(JAWLINE_LEFT),
    jawline_right_extended=np.array(JAWLINE_RIGHT_EXTENDED),
    jawline_left_extended=np.array(JAWLINE_LEFT_EXTENDED),
)

_HOW = "clone github.com/ICT-VGL/ICT-FaceKit (MIT) and point input= at its FaceXModel folder"


@dataclass(frozen=True, eq=False)
class ObjMesh:
    """One OBJ: vertices (V, 3), texture coordinates (T, 2), polygons (lists of vertex / uv indices, 0-based)
    and the material of each polygon."""

    vertices: np.ndarray
    uvs: np.ndarray
    polygons: list[list[int]]
    polygon_uvs: list[list[int]]
    materials: list[str]


@dataclass(frozen=True, eq=False)
class IctSource:
    """ICT Face Model Light as read from its folder (all in metres, ICT's full vertex order).

    Attributes:
        neutral: the neutral mesh (its vertices in metres).
        identity: (N, V, 3) identity modes (identityK - neutral), N <= 100.
        expressions: (E, V, 3) expression shapes minus the neutral, in ``expression_names`` order.
        expression_names: ARKit-style names (ICT's ``_L`` / ``_R`` spelling).
        root: the folder read.
    """

    neutral: ObjMesh
    identity: np.ndarray
    expressions: np.ndarray
    expression_names: tuple[str, ...]
    root: str


_NUMBER_LINE = re.compile(rb"^v ([^\n]*)$", re.MULTILINE)


def read_obj_vertices(path: PathLike) -> np.ndarray:
    """(V, 3) float64 ``v`` positions of an OBJ, in file units (fast path for the shape files)."""
    data = Path(path).read_bytes()
    rows = b" ".join(m.group(1) for m in _NUMBER_LINE.finditer(data))
    values = np.array(rows.split(), dtype=np.float64)
    if values.size == 0 or values.size % 3:
        raise AssetError(str(path), f"expected 'v x y z' lines, found {values.size} numbers",
                         what="ICT shape OBJ", expected="an OBJ of ICT Face Model Light", how_to_obtain=_HOW)
    return values.reshape(-1, 3)


def read_obj(path: PathLike) -> ObjMesh:
    """Read ``v``, ``vt``, ``f v/vt ...`` and ``usemtl`` lines of an OBJ (polygons of any size, 1-based indices)."""
    vertices, uvs, polygons, polygon_uvs, materials = [], [], [], [], []
    material = ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("v "):
                vertices.append(line.split()[1:4])
            elif line.startswith("vt "):
                uvs.append(line.split()[1:3])
            elif line.startswith("usemtl"):
                material = line.split(maxsplit=1)[1].strip()
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                polygons.append([int(c[0]) - 1 for c in corners])
                polygon_uvs.append([int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners])
                materials.append(material)
    return ObjMesh(np.asarray(vertices, dtype=np.float64), np.asarray(uvs, dtype=np.float64).reshape(-1, 2),
                   polygons, polygon_uvs, materials)


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise AssetError(str(path), "file not found", what=what,
                         expected="ICT Face Model Light's FaceXModel folder", how_to_obtain=_HOW)
    return path


def read_ict_folder(root: PathLike, n_identity: int | None = None) -> IctSource:
    """Read ICT's folder: the neutral mesh, ``n_identity`` identity modes (all found when None) and every
    expression listed in ``vertex_indices.json``. Positions are converted to metres."""
    folder = Path(root)
    if not folder.is_dir():
        raise AssetError(str(folder), "folder not found", what="ICT FaceXModel folder",
                         expected="generic_neutral_mesh.obj, identity000.obj ..., vertex_indices.json",
                         how_to_obtain=_HOW)
    neutral = read_obj(_require(folder / NEUTRAL_FILE, "ICT neutral mesh"))
    neutral = ObjMesh(neutral.vertices * CM, neutral.uvs, neutral.polygons, neutral.polygon_uvs, neutral.materials)
    index = json.loads(_require(folder / INDEX_FILE, "ICT vertex_indices.json").read_text())
    names = tuple(str(n) for n in index.get("expressions", ()))

    def delta(path: Path, what: str) -> np.ndarray:
        v = read_obj_vertices(_require(path, what)) * CM
        if v.shape != neutral.vertices.shape:
            raise AssetError(str(path), f"{v.shape[0]} vertices, the neutral mesh has {neutral.vertices.shape[0]}",
                             what=what, expected="the neutral mesh's vertex order", how_to_obtain=_HOW)
        return v - neutral.vertices

    count = n_identity
    if count is None:
        count = 0
        while (folder / IDENTITY_PATTERN.format(count)).is_file():
            count += 1
    identity = np.stack([delta(folder / IDENTITY_PATTERN.format(k), "ICT identity OBJ") for k in range(count)])
    expressions = np.stack([delta(folder / f"{n}.obj", "ICT expression OBJ") for n in names]) if names else \
        np.zeros((0, *neutral.vertices.shape))
    return IctSource(neutral=neutral, identity=identity, expressions=expressions, expression_names=names,
                     root=str(folder))
