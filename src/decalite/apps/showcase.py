"""The configured head's showcase: meshes, landmarks and renders in several expressions, poses and identities,
plus a procedural-detail comparison (what ``decalite-demo`` writes into ``<out>/head``)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

#: The showcase's named expressions, per kind of head: the generated head's own names, ARKit blendshapes (the ICT
#: head) as (name, weight) sums. A head without named expressions (FLAME's PCA) shows none of them.
NAMED_EXPRESSIONS = {
    "generated": {"smile": {"smile": 1.5}, "brow_raise": {"brow_raise": 1.5}, "blink": {"blink": 1.0}},
    "arkit": {"smile": {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0},
              "brow_raise": {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0, "browOuterUp_L": 1.0, "browOuterUp_R": 1.0},
              "blink": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0}},
}


def showcase_poses(n_shape: int, n_exp: int, names: tuple[str, ...]) -> dict[str, dict[str, torch.Tensor]]:
    """Named FLAME inputs (batch 1) that show what the model does; ``names``: the head's expression names
    (:data:`NAMED_EXPRESSIONS` picks the set that fits them)."""
    from decalite.flame.arkit import is_arkit_head

    kind = "arkit" if is_arkit_head(names) else "generated"
    g = torch.Generator().manual_seed(0)
    poses: dict[str, dict[str, torch.Tensor]] = {"neutral": {}}
    for label, weights in NAMED_EXPRESSIONS[kind].items():
        if all(n in names[:n_exp] for n in weights):
            e = torch.zeros(1, n_exp)
            for n, w in weights.items():
                e[0, names.index(n)] = w
            poses[label] = {"expression": e}
    poses.update({
        "jaw_open": {"jaw_pose": torch.tensor([[0.35, 0.0, 0.0]])},
        "look_left": {"eye_pose": torch.tensor([[0.0, 0.4, 0.0, 0.0, 0.4, 0.0]])},
        "yaw_30": {"global_pose": torch.tensor([[0.0, math.radians(30.0), 0.0]])},
        "identity_a": {"shape": torch.randn(1, n_shape, generator=g) * 1.5},
        "identity_b": {"shape": torch.randn(1, n_shape, generator=g) * 1.5},
    })
    return poses


def _time_forward(layer, batch: int, repeats: int = 5) -> float:
    """Milliseconds per forward call of a random batch."""
    shape = torch.randn(batch, layer.n_shape)
    expression = torch.randn(batch, layer.n_exp)
    pose = torch.randn(batch, 3) * 0.2
    with torch.no_grad():
        layer(shape=shape, expression=expression, global_pose=pose, jaw_pose=pose.abs())
        start = time.perf_counter()
        for _ in range(repeats):
            layer(shape=shape, expression=expression, global_pose=pose, jaw_pose=pose.abs())
    return (time.perf_counter() - start) / repeats * 1000.0


def _demo_light() -> torch.Tensor:
    """(1, 9, 3) a warm key light from the upper left of the camera plus ambient, for the demo renders."""
    from decalite.geometry.lighting import SH_CONSTANTS

    light = torch.zeros(1, 9, 3)
    light[:, 0] = torch.tensor([0.62, 0.60, 0.58]) / SH_CONSTANTS[0]
    light[:, 1] = -0.12 / SH_CONSTANTS[1]  # from -x (the subject's right, the viewer's left)
    light[:, 2] = 0.15 / SH_CONSTANTS[2]  # from above
    light[:, 3] = 0.35 / SH_CONSTANTS[3]  # from the camera
    return light


def _forehead_wrinkles(uv_positions: torch.Tensor) -> torch.Tensor:
    """(B, 1, U, U) a procedural displacement: horizontal lines across the forehead (metres)."""
    y, z = uv_positions[:, 1:2], uv_positions[:, 2:3]
    band = torch.exp(-(((y - 0.056) / 0.012) ** 2)) * (z > 0.03)
    return 1e-3 * torch.sin(2 * math.pi * y / 0.009) * band


def _render_all(renderer_cfg, device: str, layer, assets, meshes_inputs, out: Path) -> dict:
    """Render every named mesh (textured with landmarks | grey shape | mesh overlay) and a detail comparison."""
    from torchvision.utils import make_grid, save_image

    from decalite.geometry.camera import ndc_to_pixels, orthographic_project
    from decalite.model.factory import build_renderer
    from decalite.render.stages import composite, draw_points, wireframe_mask

    renderer = build_renderer(renderer_cfg, assets).to(device)
    if assets.albedo is not None:
        albedo = torch.from_numpy(assets.albedo.mean).permute(2, 0, 1)[None].to(device)  # (H, W, 3) -> (1, 3, H, W)
    else:
        albedo = None
    light = _demo_light().to(device)
    cam = torch.tensor([[6.0, 0.0, 0.015]], device=device)
    tiles, timings = [], []
    for name, inputs in meshes_inputs.items():
        with torch.no_grad():
            result = layer(**{k: v.to(device) for k, v in inputs.items()}, batch_size=1)
            start = time.perf_counter()
            rendered = renderer(result.vertices, cam, albedo, light, background=1.0)
            timings.append(time.perf_counter() - start)
            shape = renderer.render_shape(result.vertices, cam, background=1.0, fragments=rendered.fragments).coarse
        px = ndc_to_pixels(orthographic_project(result.landmarks2d, cam)[..., :2], renderer.image_size,
                           renderer.image_size)
        textured = draw_points(rendered.image.clamp(0, 1), px, color=(0.9, 0.1, 0.1), radius=1)
        wires = wireframe_mask(rendered.fragments.rast, width=0.08) * 0.7
        mesh = composite(torch.tensor([0.1, 0.3, 0.8], device=device)[None, :, None, None].expand_as(shape), wires, shape)
        panels = torch.cat([textured, shape, mesh], dim=0)
        save_image(panels, out / f"{name}.png", nrow=3, padding=2, pad_value=1.0)
        tiles.append(panels)
    grid = torch.cat([torch.cat([t[k : k + 1] for t in tiles]) for k in range(3)])
    save_image(make_grid(grid, nrow=len(tiles), padding=2, pad_value=1.0), out / "overview.png")

    with torch.no_grad():
        result = layer(expression=None, batch_size=1)
        uv_pos = renderer.uv.world2uv(result.vertices)
        disp = _forehead_wrinkles(uv_pos) * renderer.face_eye_mask
        shapes = renderer.render_shape(result.vertices, cam, displacement=disp, background=1.0)
    save_image(torch.cat([shapes.coarse, shapes.detailed]), out / "details.png", nrow=2, padding=2, pad_value=1.0)
    _write_dense_mesh(renderer, result.vertices, disp, out / "detailed_dense.obj")
    return {"render_ms_batch_1": round(1000 * sum(timings) / len(timings), 1), "backend": renderer.rasterizer.last_backend}


def _write_dense_mesh(renderer, vertices: torch.Tensor, displacement: torch.Tensor, path: Path) -> None:
    """Export the dense detailed mesh (one vertex per valid UV texel of the face) of the first head."""
    import trimesh

    from decalite.render.uv_space import dense_detail_mesh

    with torch.no_grad():
        detailed, normals = renderer.detailed_uv_positions(vertices, displacement)
    valid = (renderer.face_eye_mask[0, 0] > 0.5) & (renderer.uv.valid[0, 0] > 0)
    verts, faces, _ = dense_detail_mesh(detailed[0], valid, normals[0])
    trimesh.Trimesh(verts, faces, process=False).export(path)


def head_description(flame_dir: str | None, embedded: str) -> str:
    """What the showcase's head is, for its summary."""
    if flame_dir:
        return "FLAME (user-supplied)"
    return {"ict": "ICT Face Model Light (embedded)", "generated": "generated (synthetic)"}.get(embedded, embedded)


def head_showcase(flame_cfg, renderer_cfg, cache_dir: str, out: Path, device: str) -> dict:
    """Write the configured head's showcase into ``out``: OBJ meshes with UVs and their 2D / 3D landmarks in
    several expressions, poses and identities, renders of each (textured with landmarks | shape | wireframe),
    ``overview.png``, a procedural-detail comparison (``details.png``, ``detailed_dense.obj``) and
    ``summary.json`` (sizes, FLAME forward and render timings); returns the summary."""
    from decalite.flame.asset_writer import write_obj_with_uvs
    from decalite.model.factory import build_flame, load_assets

    out.mkdir(parents=True, exist_ok=True)
    assets = load_assets(flame_cfg, cache_dir)
    layer = build_flame(flame_cfg, assets).to(device)
    names = tuple(assets.model.expression_names or ())
    if assets.generated:
        from decalite.flame.generated import EXPRESSION_NAMES

        names = EXPRESSION_NAMES
    meshes = {}
    poses = showcase_poses(layer.n_shape, layer.n_exp, names)
    for name, inputs in poses.items():
        with torch.no_grad():
            result = layer(**{k: v.to(device) for k, v in inputs.items()}, batch_size=1)
        verts = result.vertices[0].cpu().double().numpy()
        write_obj_with_uvs(out / f"{name}.obj", replace(assets.uv, vertices=verts))
        np.savetxt(out / f"{name}_landmarks2d.txt", result.landmarks2d[0].cpu().numpy(), fmt="%.6f")
        np.savetxt(out / f"{name}_landmarks3d.txt", result.landmarks3d[0].cpu().numpy(), fmt="%.6f")
        meshes[name] = {k: v[0].tolist() for k, v in inputs.items()}
    rendering = _render_all(renderer_cfg, device, layer, assets, poses, out)
    extent = assets.model.v_template.max(0) - assets.model.v_template.min(0)
    summary = {
        "flame_dir": assets.root,
        "head": head_description(flame_cfg.dir, flame_cfg.embedded),
        "vertices": assets.model.n_vertices,
        "faces": int(assets.model.faces.shape[0]),
        "extent_m": [round(float(e), 4) for e in extent],
        "n_shape": layer.n_shape,
        "n_exp": layer.n_exp,
        "device": str(device),
        "forward_ms": {f"batch_{b}": round(_time_forward(layer, b), 2) for b in (1, 32)},
        "meshes": sorted(f"{n}.obj" for n in meshes),
        "renders": sorted(f"{n}.png" for n in meshes) + ["overview.png", "details.png"],
        "dense_detailed_mesh": "detailed_dense.obj",
        "render": rendering,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
