"""An upper bound for the CPU demo: train the coarse encoder on the TRUE neutral shape of the synthetic data
(direct 3D supervision, which DECA never has) and score held-out identities as the demo does.

If even this cannot beat the mean face in N steps at a given crop size, the self-supervised losses (landmarks,
photometric, shape consistency) cannot either, in the same steps. Diagnostic only: not a training method.

    .venv/bin/python experiments/identity_budget/supervised_bound.py --root data/synthetic_80 --steps 3000 \
        --every 750 --out outputs/identity_budget/bound_64px.json

``--fixed`` is the pipeline check: one fixed batch of training images, trained until it fits (if it does, a
failure on held-out identities is generalisation, not a broken gradient path from the shape loss to the encoder).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from decalite.cli._hydra import CONF_DIR
from decalite.data.datamodule import IdentityGroupDataset, collate_groups
from decalite.evaluation.scores import evaluate_synthetic
from decalite.model.factory import build_deca

FACE_RADIUS = 0.09  # metres around the nose tip: the face the NoW-style score crops (plus a margin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="synthetic data folder (train/ and val/ shards)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=750, help="score held-out identities every N steps")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--groups", type=int, default=4, help="identity groups per step (x --k images)")
    parser.add_argument("--k", type=int, default=4, help="images per identity group in training batches")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--identities", type=int, default=16, help="held-out identities scored")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--unaligned", dest="aligned", action="store_false",
                        help="the first version's loss: all vertices, no scale alignment")
    parser.add_argument("--n-shape", type=int, default=None, help="flame.n_shape (the reduced world: the data's)")
    parser.add_argument("--fixed", action="store_true", help="pipeline check: train on ONE fixed batch of --groups "
                        "training groups (no augmentation) and print its vertex error; no held-out scoring")
    parser.add_argument("--out", help="JSON of the held-out scores (required without --fixed)")
    args = parser.parse_args()
    if not args.fixed and not args.out:
        parser.error("--out is required (or --fixed)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=synthetic_cpu", f"data.synthetic.root={args.root}",
                                          f"renderer.image_size={args.image_size}",
                                          *([f"flame.n_shape={args.n_shape}"] if args.n_shape else [])])
    deca, _ = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)  # the demo's encoder, random init
    optimizer = torch.optim.Adam(deca.coarse_encoder.parameters(), lr=args.lr)
    train = iter(IdentityGroupDataset(f"{args.root}/train/*.tar", k=args.k, image_size=args.image_size,
                                      train=not args.fixed))
    fixed = collate_groups([next(train) for _ in range(args.groups)]) if args.fixed else None

    def score() -> dict[str, float]:
        deca.eval()
        val = IdentityGroupDataset(f"{args.root}/val/*.tar", k=4, image_size=args.image_size, train=False)
        groups = itertools.islice(iter(val), args.identities)
        batches = (collate_groups(list(c)) for c in iter(lambda: list(itertools.islice(groups, 4)), []))
        scores = evaluate_synthetic({"supervised": deca}, batches, detail=False)
        deca.train()
        return {name: s.as_dict()["shape_mm"] for name, s in scores.items()}

    # The loss: vertex error in mm over the face (within FACE_RADIUS of the nose tip), after the best scale and
    # translation of the prediction (``--aligned``, the default). A cropped orthographic image cannot show a head's
    # size, and ICT's first identity mode is mostly size (4.5 % per sigma; 4.76 mm RMS, 1.18 mm after a similarity):
    # an unaligned metric loss is dominated by what no image shows. The NoW-style score aligns with scale too.
    with torch.no_grad():
        template = deca.flame(shape=torch.zeros(1, deca.flame.n_shape)).vertices[0]
        nose = deca.flame(shape=torch.zeros(1, deca.flame.n_shape)).landmarks3d[0, 30]
        face = (template - nose).norm(dim=-1) < FACE_RADIUS

    def vertex_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        if not args.aligned:
            return 1000.0 * (pred - true).norm(dim=-1).mean()
        p, t = pred[:, face], true[:, face]
        p = p - p.mean(1, keepdim=True)
        t = t - t.mean(1, keepdim=True)
        scale = (p * t).sum((1, 2), keepdim=True) / (p * p).sum((1, 2), keepdim=True)
        return 1000.0 * (scale * p - t).norm(dim=-1).mean()

    history, start, window = [], time.time(), []
    deca.train()
    for step in range(1, args.steps + 1):
        batch = fixed or collate_groups([next(train) for _ in range(args.groups)])
        code = deca.encode(batch["images"].flatten(0, 1), detail=False)
        with torch.no_grad():
            true = deca.flame(shape=batch["shape"].flatten(0, 1)[:, : deca.flame.n_shape]).vertices
        loss = vertex_loss(deca.flame(shape=code.shape).vertices, true)  # mm, neutral vertices
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        window = [*window[-(args.every - 1):], float(loss.detach())]  # the training loss over the last --every steps
        if step % args.every == 0:
            row = {"step": step, "images": step * args.groups * args.k, "seconds": round(time.time() - start),
                   "train_vertex_mm": sum(window) / len(window)}
            if fixed is None:
                row.update({f"{k}_shape_mm": v for k, v in score().items()})
            history.append(row)
            print(json.dumps(row), flush=True)
    if not args.out:
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "history": history}, indent=2))


if __name__ == "__main__":
    main()
