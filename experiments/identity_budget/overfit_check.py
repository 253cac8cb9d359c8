"""Pipeline sanity for supervised_bound.py: can the demo's encoder fit the TRUE neutral shape of a FIXED handful of
training images? If it can, the bound's failure to beat the mean face on held-out identities is a matter of data
and steps (generalisation), not of a broken gradient path from the shape loss to the encoder.

    .venv/bin/python experiments/identity_budget/overfit_check.py --root data/synthetic_160_ids1024 \
        --image-size 64 --groups 4 --steps 400
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_dir

from decalite.cli._hydra import CONF_DIR
from decalite.data.datamodule import IdentityGroupDataset, collate_groups
from decalite.factory import build_deca


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="synthetic data folder (train/ shards)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--groups", type=int, default=4, help="identity groups of 4 images, fixed for the whole run")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=synthetic_cpu", f"data.synthetic.root={args.root}",
                                          f"renderer.image_size={args.image_size}"])
    deca, _ = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    optimizer = torch.optim.Adam(deca.coarse_encoder.parameters(), lr=args.lr)
    data = iter(IdentityGroupDataset(f"{args.root}/train/*.tar", k=4, image_size=args.image_size, train=False))
    batch = collate_groups([next(data) for _ in range(args.groups)])
    images = batch["images"].flatten(0, 1)  # (G, 4, 3, S, S) -> (4G, 3, S, S)
    with torch.no_grad():
        true = deca.flame(shape=batch["shape"].flatten(0, 1)[:, : deca.flame.n_shape]).vertices
        mean = deca.flame(shape=torch.zeros_like(batch["shape"].flatten(0, 1)[:, : deca.flame.n_shape])).vertices
    print(f"{images.shape[0]} fixed images; mean face vertex error {1000 * (mean - true).norm(dim=-1).mean():.3f} mm")
    deca.train()
    start = time.time()
    for step in range(1, args.steps + 1):
        code = deca.encode(images, detail=False)
        loss = 1000.0 * (deca.flame(shape=code.shape).vertices - true).norm(dim=-1).mean()  # mm
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step}: training vertex error {loss.item():.3f} mm ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
