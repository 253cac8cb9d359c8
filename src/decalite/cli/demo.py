"""``make demo`` / ``decalite-demo out=DIR``: the main job on the embedded default.

For now it exercises the FLAME layer on the configured head (the generated one unless ``flame.dir`` is set):
meshes with UVs in several expressions and poses, their 2D/3D landmarks, and a summary with timings. It grows
into train-then-reconstruct with the project.
"""

from __future__ import annotations

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

from decalite.cli._hydra import CONF_DIR

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


def run(cfg: DictConfig) -> dict:
    from decalite.flame.asset_writer import write_obj_with_uvs
    from decalite.flame.assets import load_flame_assets
    from decalite.flame.default import resolve_flame_dir
    from decalite.flame.layer import FlameLayer
    from decalite.flame.synthetic import EXPRESSION_NAMES

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    generated = not cfg.flame.dir
    root = resolve_flame_dir(cfg.flame.dir, cache_dir=cfg.paths.cache_dir, seed=int(cfg.flame.seed))
    assets = load_flame_assets(root, albedo=False)
    layer = FlameLayer(assets.model, assets.embedding, n_shape=int(cfg.flame.n_shape), n_exp=int(cfg.flame.n_exp))
    layer = layer.to(cfg.device)
    # Named expressions are those of the generated head; a real FLAME model has PCA components instead.
    names = EXPRESSION_NAMES if generated else ()
    meshes = {}
    for name, inputs in _poses(layer.n_shape, layer.n_exp, names).items():
        with torch.no_grad():
            result = layer(**{k: v.to(cfg.device) for k, v in inputs.items()}, batch_size=1)
        verts = result.vertices[0].cpu().double().numpy()
        write_obj_with_uvs(out / f"{name}.obj", replace(assets.uv, vertices=verts))
        np.savetxt(out / f"{name}_landmarks2d.txt", result.landmarks2d[0].cpu().numpy(), fmt="%.6f")
        np.savetxt(out / f"{name}_landmarks3d.txt", result.landmarks3d[0].cpu().numpy(), fmt="%.6f")
        meshes[name] = {k: v[0].tolist() for k, v in inputs.items()}
    extent = assets.model.v_template.max(0) - assets.model.v_template.min(0)
    summary = {
        "flame_dir": str(root),
        "head": "generated (synthetic)" if generated else "FLAME (user-supplied)",
        "vertices": assets.model.n_vertices,
        "faces": int(assets.model.faces.shape[0]),
        "extent_m": [round(float(e), 4) for e in extent],
        "n_shape": layer.n_shape,
        "n_exp": layer.n_exp,
        "device": str(cfg.device),
        "forward_ms": {f"batch_{b}": round(_time_forward(layer, b), 2) for b in (1, 32)},
        "meshes": sorted(f"{n}.obj" for n in meshes),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="demo")
def main(cfg: DictConfig) -> None:
    summary = run(cfg)
    log.info(
        "%s head: %d vertices, %d faces, extent %s m; FLAME forward %s ms (CPU)",
        summary["head"], summary["vertices"], summary["faces"], summary["extent_m"], summary["forward_ms"],
    )
    log.info("Wrote %d meshes (OBJ with UVs), their 2D/3D landmarks and summary.json to %s",
             len(summary["meshes"]), Path(cfg.out).resolve())


if __name__ == "__main__":
    main()
