"""How far can a synthetic identity world on the ICT head be pushed to make identity visible at the CPU demo's
crop size, before the linear model folds the surface?

1. Visibility: how many pixels one sigma of each identity mode moves the 68 landmarks at a 64 px crop (frontal,
   after removing the best scale and translation, which a landmark-box crop cannot show), and the mean shift of
   random identities drawn from the first M modes at std s.
2. Folds: for the same draws, how many mesh faces turn over (normal turned by more than 90 degrees) against the
   mean face, leaving out the eyelids and inner lips as tests/flame/test_ict_head.py does, and how many of them lie
   on the face (within 90 mm of the nose tip).

    .venv/bin/python experiments/identity_budget/world_limits.py --out outputs/identity_budget/world_limits.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from decalite.config import FlameConfig
from decalite.flame.ict.pack import load_pack, shipped_pack
from decalite.geometry.mesh import face_normals
from decalite.model.factory import load_flame_layer

CROP_BOX_PX = 32.0  # a 64 px crop covers twice the landmark box
FACE_RADIUS_M = 0.09
WORLDS = [(16, 1.0), (100, 1.0), (8, 2.0), (16, 2.0), (8, 3.0), (16, 3.0), (8, 4.0)]


def _align_2d(points: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) points moved by the best scale and translation onto (B, N, 2) target."""
    p, t = points - points.mean(1, keepdim=True), target - target.mean(1, keepdim=True)
    scale = (p * t).sum((1, 2), keepdim=True) / (p * p).sum((1, 2), keepdim=True)
    return scale * p + target.mean(1, keepdim=True)


def _normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """(V, 3) vertices -> (F, 3) unit face normals (decalite.geometry.mesh.face_normals, in float64)."""
    return face_normals(torch.from_numpy(np.asarray(v, dtype=np.float64))[None], torch.from_numpy(f).long())[0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=64)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    flame = load_flame_layer(FlameConfig(dir=None))
    n = flame.n_shape
    with torch.no_grad():
        base = flame(shape=torch.zeros(1, n)).landmarks2d[..., :2]
        px = CROP_BOX_PX / float((base[0].max(0).values - base[0].min(0).values).max())
        per_mode = []
        for k in range(24):
            s = torch.zeros(1, n)
            s[0, k] = 1.0
            moved = flame(shape=s).landmarks2d[..., :2]
            per_mode.append(round(float((_align_2d(moved, base) - base).norm(dim=-1).mean() * px), 3))

    pack = load_pack(shipped_pack())
    m = pack.model
    rest = m.v_template
    near = np.zeros(m.n_vertices, dtype=bool)
    for a, b, radius in ((36, 48, 0.008), (60, 68, 0.006)):
        near |= (np.linalg.norm(rest[:, None] - rest[pack.landmarks68[a:b]][None], axis=-1) < radius).any(1)
    keep = ~near[m.faces].any(1)
    rest_normals = _normals(rest, m.faces)[keep]
    face_centres = rest[m.faces].mean(1)[keep]
    on_face = np.linalg.norm(face_centres - rest[pack.landmarks68[30]], axis=-1) < FACE_RADIUS_M

    rng = np.random.default_rng(0)
    worlds = []
    for modes, std in WORLDS:
        codes = rng.standard_normal((args.draws, modes)) * std
        shape = torch.zeros(args.draws, n)
        shape[:, :modes] = torch.from_numpy(codes).float()
        with torch.no_grad():
            moved = flame(shape=shape).landmarks2d[..., :2]
        shift = (_align_2d(moved, base.expand_as(moved)) - base).norm(dim=-1).mean(1) * px
        flipped, flipped_face = [], []
        for c in codes:
            v = rest + np.einsum("vck,k->vc", m.shapedirs[:, :, :modes], c)
            over = (rest_normals * _normals(v, m.faces)[keep]).sum(-1) < 0.0
            flipped.append(int(over.sum()))
            flipped_face.append(int((over & on_face).sum()))
        row = {"modes": modes, "std": std, "landmark_shift_px": round(float(shift.mean()), 3),
               "flipped_faces_per_draw": round(float(np.mean(flipped)), 2),
               "flipped_on_face_per_draw": round(float(np.mean(flipped_face)), 2),
               "draws_with_a_flip_on_the_face": round(float(np.mean(np.array(flipped_face) > 0)), 3)}
        worlds.append(row)
        print(json.dumps(row), flush=True)
    result = {"per_mode_landmark_shift_px_at_1_sigma": per_mode, "faces_checked": int(keep.sum()), "worlds": worlds}
    print("per mode (px at 1 sigma):", per_mode)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
