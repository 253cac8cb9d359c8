"""``make demo`` / ``decalite-demo out=DIR``: the main job on the embedded default.

For now it exercises the FLAME layer on the configured head (the generated one unless ``flame.dir`` is set):
meshes with UVs in several expressions and poses, their 2D/3D landmarks, and a summary with timings. It grows
into train-then-reconstruct with the project.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from decalite.cli._hydra import CONF_PATH
from decalite.cli.trained import adopt_or_exit

log = logging.getLogger("decalite.demo")


def _poses(n_shape: int, n_exp: int, names: tuple[str, ...]) -> dict[str, dict[str, torch.Tensor]]:
    """Named FLAME inputs (batch 1) that show what the model does."""

    def exp(name: str, value: float) -> torch.Tensor:
        e = torch.zeros(1, n_exp)
        if name in names and names.index(name) < n_exp:
            e[0, names.index(name)] = value
        return e

    g = torch.Generator().manual_seed(0)
    return {
        "neutral": {},
        "smile": {"expression": exp("smile", 1.5)},
        "brow_raise": {"expression": exp("brow_raise", 1.5)},
        "blink": {"expression": exp("blink", 1.0)},
        "jaw_open": {"jaw_pose": torch.tensor([[0.35, 0.0, 0.0]])},
        "look_left": {"eye_pose": torch.tensor([[0.0, 0.4, 0.0, 0.0, 0.4, 0.0]])},
        "yaw_30": {"global_pose": torch.tensor([[0.0, math.radians(30.0), 0.0]])},
        "identity_a": {"shape": torch.randn(1, n_shape, generator=g) * 1.5},
        "identity_b": {"shape": torch.randn(1, n_shape, generator=g) * 1.5},
    }


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


def _render_all(cfg, layer, assets, meshes_inputs, out: Path) -> dict:
    """Render every named mesh (textured with landmarks | grey shape | mesh overlay) and a detail comparison."""
    from torchvision.utils import make_grid, save_image

    from decalite.factory import build_renderer
    from decalite.geometry.camera import ndc_to_pixels
    from decalite.render.stages import composite, draw_points, wireframe_mask

    renderer = build_renderer(cfg.renderer, assets).to(cfg.device)
    if assets.albedo is not None:
        albedo = torch.from_numpy(assets.albedo.mean).permute(2, 0, 1)[None].to(cfg.device)  # (H, W, 3) -> (1, 3, H, W)
    else:
        albedo = None
    light = _demo_light().to(cfg.device)
    cam = torch.tensor([[6.0, 0.0, 0.015]], device=cfg.device)
    tiles, timings = [], []
    for name, inputs in meshes_inputs.items():
        with torch.no_grad():
            result = layer(**{k: v.to(cfg.device) for k, v in inputs.items()}, batch_size=1)
            start = time.perf_counter()
            rendered = renderer(result.vertices, cam, albedo, light, background=1.0, landmarks=result.landmarks2d)
            timings.append(time.perf_counter() - start)
            shape = renderer.render_shape(result.vertices, cam, background=1.0)
        px = ndc_to_pixels(rendered.landmarks3d_ndc[..., :2], renderer.image_size, renderer.image_size)
        textured = draw_points(rendered.image.clamp(0, 1), px, color=(0.9, 0.1, 0.1), radius=1)
        wires = wireframe_mask(renderer.rasterize(rendered.vertices_ndc), width=0.08) * 0.7
        mesh = composite(torch.tensor([0.1, 0.3, 0.8], device=cfg.device)[None, :, None, None].expand_as(shape), wires, shape)
        panels = torch.cat([textured, shape, mesh], dim=0)
        save_image(panels, out / f"{name}.png", nrow=3, padding=2, pad_value=1.0)
        tiles.append(panels)
    grid = torch.cat([torch.cat([t[k : k + 1] for t in tiles]) for k in range(3)])
    save_image(make_grid(grid, nrow=len(tiles), padding=2, pad_value=1.0), out / "overview.png")

    with torch.no_grad():
        result = layer(expression=None, batch_size=1)
        uv_pos = renderer.uv.world2uv(result.vertices)
        disp = _forehead_wrinkles(uv_pos) * renderer.face_eye_mask
        coarse = renderer.render_shape(result.vertices, cam, background=1.0)
        detailed = renderer.render_shape(result.vertices, cam, displacement=disp, background=1.0)
    save_image(torch.cat([coarse, detailed]), out / "details.png", nrow=2, padding=2, pad_value=1.0)
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


def run(cfg: DictConfig) -> dict:
    from decalite.factory import build_flame, load_assets, resolve_device
    from decalite.flame.asset_writer import write_obj_with_uvs
    from decalite.flame.synthetic import EXPRESSION_NAMES

    cfg.device = str(resolve_device(cfg.device))
    out = Path(cfg.out) / "head"
    out.mkdir(parents=True, exist_ok=True)
    assets = load_assets(cfg.flame, cfg.paths.cache_dir)
    generated = assets.generated
    layer = build_flame(cfg.flame, assets).to(cfg.device)
    # Named expressions are those of the generated head; a real FLAME model has PCA components instead.
    names = EXPRESSION_NAMES if generated else ()
    meshes = {}
    poses = _poses(layer.n_shape, layer.n_exp, names)
    for name, inputs in poses.items():
        with torch.no_grad():
            result = layer(**{k: v.to(cfg.device) for k, v in inputs.items()}, batch_size=1)
        verts = result.vertices[0].cpu().double().numpy()
        write_obj_with_uvs(out / f"{name}.obj", replace(assets.uv, vertices=verts))
        np.savetxt(out / f"{name}_landmarks2d.txt", result.landmarks2d[0].cpu().numpy(), fmt="%.6f")
        np.savetxt(out / f"{name}_landmarks3d.txt", result.landmarks3d[0].cpu().numpy(), fmt="%.6f")
        meshes[name] = {k: v[0].tolist() for k, v in inputs.items()}
    rendering = _render_all(cfg, layer, assets, poses, out)
    extent = assets.model.v_template.max(0) - assets.model.v_template.min(0)
    summary = {
        "flame_dir": assets.root,
        "head": "generated (synthetic)" if generated else "FLAME (user-supplied)",
        "vertices": assets.model.n_vertices,
        "faces": int(assets.model.faces.shape[0]),
        "extent_m": [round(float(e), 4) for e in extent],
        "n_shape": layer.n_shape,
        "n_exp": layer.n_exp,
        "device": str(cfg.device),
        "forward_ms": {f"batch_{b}": round(_time_forward(layer, b), 2) for b in (1, 32)},
        "meshes": sorted(f"{n}.obj" for n in meshes),
        "renders": sorted(f"{n}.png" for n in meshes) + ["overview.png", "details.png"],
        "dense_detailed_mesh": "detailed_dense.obj",
        "render": rendering,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def reconstruct_and_animate(cfg: DictConfig) -> dict:
    """Reconstruct the astronaut photo (offline dlib landmarks, fit from the mean face) and animate it."""
    import skimage.data
    from PIL import Image

    from decalite.animate import load_codes, render_frames, sweep_codes, write_animation
    from decalite.cli.schema import inference_model
    from decalite.reconstruct import landmarker_for
    from decalite.reconstruct import run as reconstruct

    inputs = Path(cfg.out) / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    photo = inputs / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photo)  # public domain (NASA), shipped with scikit-image
    cfg.input = str(photo)
    trained = bool(cfg.get("checkpoint"))
    if trained:  # the networks of `make train`, with the head and sizes the checkpoint records
        from decalite.cli.trained import use_checkpoint_settings

        cfg.model.checkpoint = cfg.checkpoint
        use_checkpoint_settings(cfg, cfg.checkpoint, "demo")
        cfg.output = str(Path(cfg.out) / "reconstruct_trained")
    deca, assets = inference_model(cfg)
    landmarker = landmarker_for(cfg.landmarks)
    summary = reconstruct(deca, assets, landmarker, cfg)
    if not summary["reconstructed"]:
        raise RuntimeError(f"the demo could not reconstruct {photo}: {summary['failures']}")
    face = summary["reconstructed"][0]
    codes = next(f for f in face["files"] if f.endswith("_codes.npz"))
    code = load_codes(codes).map(lambda t: t.to(next(deca.parameters()).device))
    frames = render_frames(deca, sweep_codes(code, int(cfg.frames)), trained_detail=trained)
    files = write_animation(frames, Path(cfg.out) / "animate" / f"{face['name']}_animation", fps=int(cfg.fps))
    summary["animation"] = [str(f) for f in files]
    return summary


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="demo")
def main(cfg: DictConfig) -> None:
    from decalite.threads import apply_thread_policy

    apply_thread_policy(cfg.get("threads"))
    if cfg.get("checkpoint"):  # before any work: the checkpoint is readable and agrees with the command line
        adopt_or_exit(copy.deepcopy(cfg), cfg.checkpoint, "demo", log)
    summary = run(cfg)
    log.info(
        "%s head: %d vertices, %d faces, extent %s m; FLAME forward %s ms (CPU)",
        summary["head"], summary["vertices"], summary["faces"], summary["extent_m"], summary["forward_ms"],
    )
    size = cfg.renderer.image_size
    log.info("Rendered with the %s rasterizer: %s ms per image (%d x %d, batch 1)",
             summary["render"]["backend"], summary["render"]["render_ms_batch_1"], size, size)
    log.info("Wrote %d meshes (OBJ with UVs), their 2D/3D landmarks, renders (overview.png, details.png) and "
             "summary.json to %s", len(summary["meshes"]), (Path(cfg.out) / "head").resolve())
    rec = reconstruct_and_animate(cfg)
    for face in rec["reconstructed"]:
        log.info("Reconstructed %s: landmark error (inter-ocular) %.4f -> %.4f; outputs in %s", face["source"],
                 face["landmark_error_before"], face["landmark_error_after"], Path(face["files"][0]).parent.resolve())
    log.info("Animation: %s", ", ".join(str(Path(f).resolve()) for f in rec["animation"]))
    for failure in rec["failures"]:
        log.warning("failed: %s: %s", failure["file"], failure["reason"])


if __name__ == "__main__":
    main()
