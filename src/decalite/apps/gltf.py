"""Animatable glTF 2.0 (GLB) of a reconstructed head, for Blender, game engines and the browser.

One GLB per face holds:

- the coarse mesh of the person's identity (FLAME's template plus the shape components), split at UV seams, with
  normals, tangents and UVs;
- the expression components as **morph targets** (named; ARKit names on an ARKit head), and FLAME's pose
  correctives (``posedirs``: 9 per non-root joint, the entries of ``R - I``) as 36 more morph targets, so a player
  that sets those weights with the joints reproduces FLAME exactly;
- FLAME's five joints (global, neck, jaw, left eye, right eye) as a **skin** with FLAME's blend weights, the
  skeleton bound at the joints FLAME regresses for the reconstructed expression;
- a PBR material with the albedo (or the photo texture) and the detail **normal map** in tangent space;
- the reconstructed expression and pose as the initial state (mesh weights and joint rotations), and optionally
  an **animation clip** of a sequence of codes (morph weights and joint rotations per frame).

Y is up and units are metres (FLAME's frame), as glTF and Blender's glTF importer expect.

Exactness: for the reconstructed expression, posing the GLB by the glTF rules (morph targets, then linear blend
skinning with the inverse bind matrices) gives FLAME's vertices for any joint rotation. A frame with another
expression is exact at zero pose; with the joints rotated, the joints FLAME would regress from that expression
differ from the bound skeleton's (see :func:`joint_drift`), which bounds the error.

The file is built with pygltflib; tests read it back with an independent GLB parser and a reference implementation
of glTF skinning (tests/apps/test_gltf.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygltflib as gl
import torch
from PIL import Image

from decalite.apps.export import to_uint8_image
from decalite.flame.layer import FlameLayer
from decalite.flame.lbs import blend_shapes, pose_feature, regress_joints, rodrigues
from decalite.geometry.mesh import vertex_normals
from decalite.types import UVLayout

#: FLAME's joints in order (names of the skin's nodes).
JOINTS = ("global", "neck", "jaw", "left_eye", "right_eye")
#: Names of the pose-corrective morph targets: joint and (row, column) of its ``R - I``.
POSE_TARGETS = tuple(f"pose_{j}_{r}{c}" for j in JOINTS[1:] for r in range(3) for c in range(3))
#: glTF's component types and accessor types used here.
_FLOAT, _USHORT, _UINT = 5126, 5123, 5125


@dataclass
class HeadRig:
    """The rig of one identity, in FLAME's frame (metres, y up); float64 numpy arrays.

    Attributes:
        rest: (V, 3) template plus identity shape (no expression, no pose).
        expression_deltas: (E, V, 3) one per expression component. pose_deltas: (36, V, 3) FLAME's posedirs.
        joints: (5, 3) joint positions regressed from the rest plus ``expression`` (the bind skeleton).
        parents: (5,) parent joint of each joint (-1 for the root).
        weights: (V, 5) linear-blend-skinning weights.
        faces: (F, 3) triangles. expression: (E,) the expression the skeleton is bound at.
        expression_names: (E,) names of the expression components.
    """

    rest: np.ndarray
    expression_deltas: np.ndarray
    pose_deltas: np.ndarray
    joints: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    expression: np.ndarray
    expression_names: tuple[str, ...]


def _bound_joints(flame: FlameLayer, rest: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
    """(5, 3) the joints FLAME regresses from the rest mesh (V, 3) plus the expression (n_exp,) (float64, CPU)."""
    dirs = flame.shapedirs.detach().double().cpu()[..., flame.n_shape :]
    shaped = rest + blend_shapes(expression.detach().double().cpu().reshape(1, -1), dirs)[0]
    return regress_joints(flame.j_regressor.detach().double().cpu(), shaped[None])[0]


def head_rig(flame: FlameLayer, shape: torch.Tensor, expression: torch.Tensor,
             expression_names: tuple[str, ...] | None = None) -> HeadRig:
    """The rig of one face: shape (n_shape,) and expression (n_exp,) coefficients of ``flame``."""
    n_shape, n_exp = flame.n_shape, flame.n_exp
    dirs = flame.shapedirs.detach().double().cpu()  # (V, 3, n_shape + n_exp)
    expression = expression.detach().double().cpu().reshape(n_exp)
    rest = flame.v_template.detach().double().cpu() + blend_shapes(
        shape.detach().double().cpu().reshape(1, n_shape), dirs[..., :n_shape])[0]  # (V, 3)
    exp_dirs = dirs[..., n_shape:].permute(2, 0, 1)  # (V, 3, E) -> (E, V, 3)
    joints = _bound_joints(flame, rest, expression)
    names = tuple(expression_names or ())[:n_exp]  # a head's names cover all its components; the layer uses n_exp
    if len(names) != n_exp:
        names = tuple(f"exp_{k:03d}" for k in range(n_exp))
    return HeadRig(rest=rest.numpy(), expression_deltas=exp_dirs.numpy(),
                   pose_deltas=flame.posedirs.detach().double().cpu().permute(2, 0, 1).numpy(),
                   joints=joints.numpy(), parents=flame.parents.cpu().numpy(),
                   weights=flame.lbs_weights.detach().double().cpu().numpy(), faces=flame.faces.cpu().numpy(),
                   expression=expression.numpy(), expression_names=names)


def joint_drift(rig: HeadRig, flame: FlameLayer, expression: torch.Tensor) -> float:
    """Largest distance (m) between the bound joints and those FLAME regresses for ``expression`` (n_exp,): how
    far a frame with that expression and rotated joints can be from FLAME (the lever of the rotation)."""
    joints = _bound_joints(flame, torch.from_numpy(rig.rest), expression).numpy()
    return float(np.linalg.norm(joints - rig.joints, axis=1).max())


def full_pose(pose: torch.Tensor) -> torch.Tensor:
    """DECA's pose (T, 6) (global, jaw axis-angle) -> FLAME's five joint rotations (T, 5, 3, 3) (neck, eyes: none)."""
    axis = torch.zeros(pose.shape[0], 5, 3, dtype=torch.float64)
    axis[:, 0], axis[:, 2] = pose[:, :3].double().cpu(), pose[:, 3:6].double().cpu()
    return rodrigues(axis.reshape(-1, 3)).reshape(-1, 5, 3, 3)


def morph_weights(expression: torch.Tensor, rotations: torch.Tensor) -> np.ndarray:
    """(T, E + 36) morph weights: the expression coefficients (T, E), then FLAME's pose features of the joint
    rotations (T, 5, 3, 3)."""
    return torch.cat([expression.double().cpu(), pose_feature(rotations.double())], 1).numpy()


def quaternions(rotations: torch.Tensor) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (x, y, z, w), glTF's order, w >= 0."""
    import kornia

    wxyz = kornia.geometry.conversions.rotation_matrix_to_quaternion(rotations.double().contiguous())
    q = torch.cat([wxyz[..., 1:], wxyz[..., :1]], -1)
    return (q * torch.where(q[..., 3:] < 0, -1.0, 1.0)).numpy()


@dataclass
class SeamSplit:
    """The mesh split at UV seams: glTF keeps one UV per vertex.

    Attributes:
        vertex: (N,) the FLAME vertex of each split vertex. uv: (N, 2) its UV (OBJ convention, v up).
        faces: (F, 3) triangles over the split vertices.
    """

    vertex: np.ndarray
    uv: np.ndarray
    faces: np.ndarray


@dataclass
class GlbMesh:
    """The GLB's mesh of a rig: split at the seams, with the rest positions (N, 3), unit normals (N, 3) and glTF
    tangents (N, 4) the file stores (the detail normal map is expressed in the frame they span)."""

    split: SeamSplit
    positions: np.ndarray
    normals: np.ndarray
    tangents: np.ndarray

    def corner_frames(self) -> torch.Tensor:
        """(3F, 9) tangent, bitangent and normal at each face corner (corner k of face f at 3 f + k)."""
        t, sign = self.tangents[:, :3], self.tangents[:, 3:]
        frames = np.concatenate([t, np.cross(self.normals, t) * sign, self.normals], 1)
        return torch.from_numpy(frames[self.split.faces].reshape(-1, 9))


def glb_mesh(rig: HeadRig, layout: UVLayout) -> GlbMesh:
    """The mesh the GLB stores for ``rig`` on ``layout``."""
    split = split_seams(layout)
    positions = rig.rest[split.vertex]
    normals = vertex_normals(torch.from_numpy(positions)[None], torch.from_numpy(split.faces))[0].numpy()
    return GlbMesh(split, positions, normals, tangents(positions, normals, split.uv, split.faces))


def detail_normal_map(mesh: GlbMesh, rig: HeadRig, renderer, displacement: torch.Tensor) -> torch.Tensor:
    """The tangent-space normal map (3, U, U) of a displacement (1, 1, U, U) on the rig's rest mesh, for the GLB's
    material (``renderer``: the :class:`~decalite.render.renderer.Renderer` whose detail path makes the normals)."""
    with torch.no_grad():
        rest = torch.from_numpy(rig.rest)[None].to(displacement.device, displacement.dtype)
        _, _, detail = renderer.uv_detail_normals(rest, displacement)
        return tangent_space_normal_map(detail[0], mesh.corner_frames(), renderer.uv).cpu()


def split_seams(layout: UVLayout) -> SeamSplit:
    """One vertex per distinct (FLAME vertex, UV vertex) pair of the layout's face corners."""
    pairs = np.stack([np.asarray(layout.faces).reshape(-1), np.asarray(layout.faces_uvs).reshape(-1)], 1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return SeamSplit(vertex=unique[:, 0], uv=np.asarray(layout.verts_uvs, dtype=np.float64)[unique[:, 1]],
                     faces=inverse.reshape(-1, 3))


def tangents(vertices: np.ndarray, normals: np.ndarray, uv: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 4) glTF tangents (xyz unit, orthogonal to the normal; w = +-1, the bitangent's handedness), accumulated
    from each triangle's UV derivatives (Lengyel's method)."""
    tri, tuv = vertices[faces], uv[faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    d1, d2 = tuv[:, 1] - tuv[:, 0], tuv[:, 2] - tuv[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    r = np.where(np.abs(det) > 1e-20, 1.0 / np.where(det == 0, 1.0, det), 0.0)[:, None]
    face_t = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * r
    face_b = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * r
    t, b = np.zeros_like(vertices), np.zeros_like(vertices)
    for k in range(3):
        np.add.at(t, faces[:, k], face_t)
        np.add.at(b, faces[:, k], face_b)
    t = t - normals * (normals * t).sum(1, keepdims=True)  # Gram-Schmidt against the normal
    length = np.linalg.norm(t, axis=1, keepdims=True)
    fallback = np.cross(normals, np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    t = np.where(length > 1e-12, t / np.maximum(length, 1e-12), fallback / np.linalg.norm(fallback, axis=1,
                                                                                             keepdims=True))
    w = np.where((np.cross(normals, t) * b).sum(1) < 0, -1.0, 1.0)
    return np.concatenate([t, w[:, None]], 1)


def tangent_space_normal_map(detail_normals: torch.Tensor, corner_frames: torch.Tensor, uv_space) -> torch.Tensor:
    """Object-space detail normals (3, U, U) -> tangent-space normals (3, U, U) in [-1, 1] (flat (0, 0, 1) outside
    the chart), in the frame the viewer interpolates: per-corner tangent, bitangent and normal (3F, 9) rasterised
    over the UV layout (``uv_space``: :class:`~decalite.render.uv_space.UVSpace`)."""
    frames = uv_space.corners2uv(corner_frames[None].to(uv_space.rast.device, uv_space.rast.dtype))[0]  # (9, U, U)
    t, b, n = (torch.nn.functional.normalize(frames[3 * k : 3 * k + 3], dim=0) for k in range(3))
    d = torch.nn.functional.normalize(detail_normals.to(frames.dtype), dim=0)
    local = torch.stack([(t * d).sum(0), (b * d).sum(0), (n * d).sum(0)])
    valid = (uv_space.valid[0] > 0) & (frames.abs().sum(0, keepdim=True) > 0)
    flat = torch.tensor([0.0, 0.0, 1.0], dtype=local.dtype, device=local.device)[:, None, None].expand_as(local)
    return torch.where(valid, torch.nn.functional.normalize(local, dim=0), flat)


def _png(image: torch.Tensor) -> bytes:
    """(3, H, W) in [0, 1] -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8_image(image)).save(buffer, format="PNG")
    return buffer.getvalue()


class _Blob:
    """The GLB's binary chunk and its buffer views / accessors."""

    def __init__(self, gltf: gl.GLTF2) -> None:
        self.gltf, self.data = gltf, bytearray()

    def view(self, payload: bytes, target: int | None = None) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(payload),
                                                   target=target))
        self.data += payload
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, component: int = _FLOAT, bounds: bool = False,
                 target: int | None = gl.ARRAY_BUFFER) -> int:
        dtype = {_FLOAT: np.float32, _USHORT: np.uint16, _UINT: np.uint32}[component]
        data = np.ascontiguousarray(array, dtype=dtype)
        rows = data.reshape(data.shape[0], -1)
        extra = {"min": rows.min(0).tolist(), "max": rows.max(0).tolist()} if bounds else {}
        self.gltf.accessors.append(gl.Accessor(bufferView=self.view(data.tobytes(), target), componentType=component,
                                               count=int(data.shape[0]), type=kind, **extra))
        return len(self.gltf.accessors) - 1

    def morph_target(self, deltas: np.ndarray) -> int:
        """A morph target's (N, 3) position deltas: a sparse accessor (glTF 2.0: zeros, then the listed rows) when
        at most half the vertices move (expressions and pose correctives are local), else a dense one."""
        data = np.ascontiguousarray(deltas, dtype=np.float32)
        moving = np.flatnonzero(np.any(data != 0, axis=1)).astype(np.uint32)
        if len(moving) * 2 > len(data) or len(moving) == 0:
            return self.accessor(data, gl.VEC3, bounds=True)
        sparse = gl.Sparse(count=int(len(moving)), indices=gl.AccessorSparseIndices(bufferView=self.view(moving.tobytes()),
                                                                            componentType=_UINT),
                           values=gl.AccessorSparseValues(bufferView=self.view(data[moving].tobytes())))
        bounds = np.concatenate([data[moving], np.zeros((1, 3), np.float32)])  # the implicit zeros count too
        self.gltf.accessors.append(gl.Accessor(componentType=_FLOAT, count=int(len(data)), type=gl.VEC3, sparse=sparse,
                                               min=bounds.min(0).tolist(), max=bounds.max(0).tolist()))
        return len(self.gltf.accessors) - 1


def write_glb(path: Path, rig: HeadRig, mesh: GlbMesh, pose: torch.Tensor, texture: torch.Tensor | None = None,
              normal_map: torch.Tensor | None = None, animation: tuple[torch.Tensor, torch.Tensor] | None = None,
              fps: float = 24.0, name: str = "head") -> Path:
    """Write the GLB.

    Args:
        path: the .glb file.
        rig: :func:`head_rig` of the face (its expression is the initial state).
        mesh: :func:`glb_mesh` of the rig (the mesh split at its UV seams).
        pose: (6,) DECA's pose of the initial state (global, jaw axis-angle).
        texture: (3, U, U) base colour in [0, 1] (row 0 at v = 1), or None (a grey material).
        normal_map: (3, U, U) tangent-space normals in [-1, 1] (:func:`detail_normal_map` of the same mesh), or None.
        animation: (expression (T, E), pose (T, 6)) codes of a clip, or None.
        fps: the clip's frame rate.
    """
    split, positions, normals = mesh.split, mesh.positions, mesh.normals
    gltf = gl.GLTF2(asset=gl.Asset(generator="decalite", version="2.0"), scene=0)
    blob = _Blob(gltf)
    attributes = gl.Attributes(
        POSITION=blob.accessor(positions, gl.VEC3, bounds=True),
        NORMAL=blob.accessor(normals, gl.VEC3),
        TANGENT=blob.accessor(mesh.tangents, gl.VEC4),
        TEXCOORD_0=blob.accessor(np.stack([split.uv[:, 0], 1.0 - split.uv[:, 1]], 1), gl.VEC2),
    )
    weights = rig.weights[split.vertex]  # (N, 5): glTF takes 4 influences per set, so two sets
    order = np.argsort(-weights, axis=1)
    joints_sorted = np.concatenate([order, np.zeros((len(order), 8 - order.shape[1]), dtype=order.dtype)], 1)
    weights_sorted = np.concatenate([np.take_along_axis(weights, order, 1),
                                     np.zeros((len(order), 8 - order.shape[1]))], 1)
    attributes.JOINTS_0 = blob.accessor(joints_sorted[:, :4], gl.VEC4, _USHORT)
    attributes.WEIGHTS_0 = blob.accessor(weights_sorted[:, :4], gl.VEC4)
    if (weights_sorted[:, 4:] > 0).any():
        attributes.JOINTS_1 = blob.accessor(joints_sorted[:, 4:], gl.VEC4, _USHORT)
        attributes.WEIGHTS_1 = blob.accessor(weights_sorted[:, 4:], gl.VEC4)
    attributes._FLAME_VERTEX = blob.accessor(split.vertex.astype(np.float32), gl.SCALAR)
    deltas = np.concatenate([rig.expression_deltas, rig.pose_deltas])[:, split.vertex]  # (E + 36, N, 3)
    targets = [{"POSITION": blob.morph_target(d)} for d in deltas]
    rotations = full_pose(pose.reshape(1, 6))[0]  # (5, 3, 3)
    initial = morph_weights(torch.from_numpy(rig.expression)[None], rotations[None])[0]
    primitive = gl.Primitive(attributes=attributes, indices=blob.accessor(split.faces.reshape(-1), gl.SCALAR, _UINT,
                                                                          target=gl.ELEMENT_ARRAY_BUFFER),
                             targets=targets, material=0 if texture is not None or normal_map is not None else None)
    gltf.meshes.append(gl.Mesh(name=name, primitives=[primitive], weights=initial.tolist(),
                               extras={"targetNames": [*rig.expression_names, *POSE_TARGETS]}))
    _material(gltf, blob, texture, normal_map)
    # Nodes: 0 the scene root, 1 the mesh, 2.. the joints (FLAME's parents); the root joint sits at its position.
    quats = quaternions(rotations)
    gltf.nodes.append(gl.Node(name=name, children=[1, 2]))
    gltf.nodes.append(gl.Node(name=f"{name}_mesh", mesh=0, skin=0))
    for j, joint in enumerate(JOINTS):
        parent = int(rig.parents[j])
        offset = rig.joints[j] - (rig.joints[parent] if parent >= 0 else 0.0)
        children = [2 + c for c in range(len(JOINTS)) if int(rig.parents[c]) == j]
        gltf.nodes.append(gl.Node(name=joint, translation=offset.tolist(), rotation=quats[j].tolist(),
                                  children=children or None))
    inverse_bind = np.tile(np.eye(4), (len(JOINTS), 1, 1))
    inverse_bind[:, :3, 3] = -rig.joints
    gltf.skins.append(gl.Skin(name=f"{name}_flame", joints=[2 + j for j in range(len(JOINTS))], skeleton=2,
                              inverseBindMatrices=blob.accessor(inverse_bind.transpose(0, 2, 1), gl.MAT4,
                                                                target=None)))
    gltf.scenes.append(gl.Scene(nodes=[0]))
    if animation is not None:
        _animation(gltf, blob, *animation, fps=fps)
    gltf.buffers.append(gl.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gltf.save_binary(str(path))
    return path


def _material(gltf: gl.GLTF2, blob: _Blob, texture: torch.Tensor | None, normal_map: torch.Tensor | None) -> None:
    """Material 0: base colour texture and tangent-space normal map (when given)."""
    if texture is None and normal_map is None:
        return
    gltf.samplers.append(gl.Sampler(magFilter=9729, minFilter=9987, wrapS=33071, wrapT=33071))
    pbr = gl.PbrMetallicRoughness(metallicFactor=0.0, roughnessFactor=0.6)
    # double-sided: the head is an open mesh (mouth, eyes, neck), whose inside shows through its openings
    material = gl.Material(name="skin", pbrMetallicRoughness=pbr, doubleSided=True)
    for image, slot in ((texture, "base"), (None if normal_map is None else normal_map * 0.5 + 0.5, "normal")):
        if image is None:
            continue
        gltf.images.append(gl.Image(mimeType="image/png", bufferView=blob.view(_png(image)), name=slot))
        gltf.textures.append(gl.Texture(sampler=0, source=len(gltf.images) - 1))
        if slot == "base":
            pbr.baseColorTexture = gl.TextureInfo(index=len(gltf.textures) - 1)
        else:
            material.normalTexture = gl.NormalMaterialTexture(index=len(gltf.textures) - 1)
    gltf.materials.append(material)


def _animation(gltf: gl.GLTF2, blob: _Blob, expression: torch.Tensor, pose: torch.Tensor, fps: float) -> None:
    """A clip: the mesh's morph weights and the global and jaw joints' rotations per frame (LINEAR)."""
    frames = expression.shape[0]
    times = blob.accessor(np.arange(frames, dtype=np.float64) / fps, gl.SCALAR, bounds=True, target=None)
    rotations = full_pose(pose)  # (T, 5, 3, 3)
    samplers = [gl.AnimationSampler(input=times, output=blob.accessor(
        morph_weights(expression, rotations).reshape(-1), gl.SCALAR, target=None), interpolation="LINEAR")]
    channels = [gl.AnimationChannel(sampler=0, target=gl.AnimationChannelTarget(node=1, path="weights"))]
    for j in (0, 2):  # global, jaw (DECA's pose has no neck and eye rotations)
        samplers.append(gl.AnimationSampler(input=times, output=blob.accessor(quaternions(rotations[:, j]), gl.VEC4,
                                                                              target=None), interpolation="LINEAR"))
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                            target=gl.AnimationChannelTarget(node=2 + j, path="rotation")))
    gltf.animations.append(gl.Animation(name="decalite", samplers=samplers, channels=channels))


def export_glb(path: Path, flame: FlameLayer, renderer, layout: UVLayout, code, texture: torch.Tensor | None = None,
               displacement: torch.Tensor | None = None, expression_names: tuple[str, ...] | None = None,
               animation: tuple[torch.Tensor, torch.Tensor] | None = None, fps: float = 24.0) -> Path:
    """One face's GLB from its code (a one-row :class:`~decalite.types.FaceCode`): the rig of its shape, bound at
    its expression, posed as it was reconstructed; ``texture`` (3, U, U) as base colour, ``displacement``
    (1, 1, U, U) as the detail normal map, ``animation`` (expression (T, E), pose (T, 6)) as a clip."""
    rig = head_rig(flame, code.shape[0], code.exp[0], expression_names)
    mesh = glb_mesh(rig, layout)
    normal_map = detail_normal_map(mesh, rig, renderer, displacement) if displacement is not None else None
    return write_glb(path, rig, mesh, code.pose[0].detach(), texture, normal_map, animation, fps,
                     name=Path(path).stem)


def export_animation_glb(path: Path, deca, layout: UVLayout, codes, fps: float, detail: bool,
                         expression_names: tuple[str, ...] | None = None) -> Path:
    """A GLB of the face of ``codes`` (T rows of one person: decalite-animate's sweep, decalite-transfer's frames)
    with the frames as an animation clip; bound and posed at the first frame, textured with the albedo of its code
    (when the model has an albedo model), with the first frame's details as normal map when ``detail``."""
    first = codes.map(lambda t: t[:1])
    with torch.no_grad():
        texture = deca.albedo(first.tex)[0].cpu() if deca.albedo is not None else None
        displacement = deca.displacement(first) if detail and first.detail is not None else None
    return export_glb(path, deca.flame, deca.renderer, layout, first, texture, displacement, expression_names,
                      animation=(codes.exp.detach().cpu(), codes.pose.detach().cpu()), fps=fps)
