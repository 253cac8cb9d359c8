"""An independent reader of GLB files for the tests: the container parsed byte by byte (not with pygltflib, the
writer), accessors (sparse ones included) as numpy arrays, and a reference implementation of glTF 2.0 skinning
(morph targets, then joint matrices = global joint transform x inverse bind matrix)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

_COMPONENTS = {5126: np.float32, 5123: np.uint16, 5125: np.uint32, 5121: np.uint8}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def read_glb(path: Path) -> tuple[dict, bytes]:
    """(JSON document, binary chunk) of a GLB (glTF 2.0, binary container: header, JSON chunk, BIN chunk)."""
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON"
    doc = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack_from("<I4s", data, 20 + json_length)
    assert bin_type == b"BIN\x00"
    return doc, data[28 + json_length : 28 + json_length + bin_length]


def _view(doc: dict, binary: bytes, view: int, component: int, count: int, offset: int = 0) -> np.ndarray:
    start = doc["bufferViews"][view].get("byteOffset", 0) + offset
    return np.frombuffer(binary, _COMPONENTS[component], count, start)


def accessor(doc: dict, binary: bytes, index: int) -> np.ndarray:
    """(count, width) array of accessor ``index`` (tightly packed views, as the writer makes them), sparse
    accessors included (zeros or the base view, then the listed rows replaced)."""
    acc = doc["accessors"][index]
    width, count = _WIDTH[acc["type"]], acc["count"]
    if "bufferView" in acc:
        out = _view(doc, binary, acc["bufferView"], acc["componentType"], count * width, acc.get("byteOffset", 0))
        out = out.reshape(-1, width).copy()
    else:
        out = np.zeros((count, width), _COMPONENTS[acc["componentType"]])
    if "sparse" in acc:
        sparse = acc["sparse"]
        rows = _view(doc, binary, sparse["indices"]["bufferView"], sparse["indices"]["componentType"], sparse["count"])
        out[rows] = _view(doc, binary, sparse["values"]["bufferView"], acc["componentType"],
                          sparse["count"] * width).reshape(-1, width)
    return out


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion -> 3 x 3 rotation matrix."""
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def pose_glb(doc: dict, binary: bytes, rotations: dict[int, np.ndarray] | None = None,
             weights: np.ndarray | None = None) -> np.ndarray:
    """Skinned positions (N, 3) of the first skinned mesh: node TRS (``rotations``: node -> quaternion overrides),
    morph targets with ``weights`` (default: the mesh's), then sum_j w_j * global_j * inverse_bind_j."""
    nodes = doc["nodes"]
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}

    def local(i: int) -> np.ndarray:
        m = np.eye(4)
        q = (rotations or {}).get(i, nodes[i].get("rotation", [0, 0, 0, 1]))
        m[:3, :3] = quaternion_matrix(np.asarray(q, dtype=np.float64))
        m[:3, 3] = nodes[i].get("translation", [0, 0, 0])
        return m

    def world(i: int) -> np.ndarray:
        return world(parent[i]) @ local(i) if i in parent else local(i)

    mesh_node = next(i for i, n in enumerate(nodes) if "skin" in n)
    skin = doc["skins"][nodes[mesh_node]["skin"]]
    primitive = doc["meshes"][nodes[mesh_node]["mesh"]]["primitives"][0]
    attrs = primitive["attributes"]
    pos = accessor(doc, binary, attrs["POSITION"]).astype(np.float64)
    weights = np.asarray(doc["meshes"][0]["weights"] if weights is None else weights, dtype=np.float64)
    for w, target in zip(weights, primitive["targets"]):
        pos = pos + w * accessor(doc, binary, target["POSITION"])
    ibm = accessor(doc, binary, skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    joint_mats = np.stack([world(j) @ ibm[k] for k, j in enumerate(skin["joints"])])
    homogeneous = np.concatenate([pos, np.ones((len(pos), 1))], 1)
    out = np.zeros_like(pos)
    for s in range(2):
        if f"JOINTS_{s}" not in attrs:
            continue
        joints = accessor(doc, binary, attrs[f"JOINTS_{s}"]).astype(np.int64)
        wts = accessor(doc, binary, attrs[f"WEIGHTS_{s}"]).astype(np.float64)
        for k in range(4):
            out += wts[:, k : k + 1] * np.einsum("nij,nj->ni", joint_mats[joints[:, k]], homogeneous)[:, :3]
    return out


def axis_angle_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(axis_angle)
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    axis = axis_angle / angle
    return np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]])


def pose_target_weights(names: list[str], rotations: dict[str, np.ndarray]) -> dict[str, float]:
    """The pose-corrective morph weights by the GLB's target names ``pose_<joint>_<row><col>`` = (R - I)[row, col]."""
    out = {}
    for name in names:
        if name.startswith("pose_"):
            joint, rc = name[5:].rsplit("_", 1)
            out[name] = float(rotations.get(joint, np.eye(3))[int(rc[0]), int(rc[1])] - float(rc[0] == rc[1]))
    return out


def rotation(axis_angle: np.ndarray) -> np.ndarray:
    return quaternion_matrix(axis_angle_quaternion(axis_angle))


