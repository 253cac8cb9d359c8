"""Is a detail world learnable by the detail stage's losses? Evaluate them on held-out synthetic images with the
TRUE coarse codes (coarse_from=truth) and three displacement maps: D = 0, the true D, and -D; and the
correlation of the photometric loss's descent direction at D = 0 with the true D.

If the true D barely lowers the photometric term, or the regularisers cost more than it gains, the losses'
optimum is not the truth, whatever the networks and the budget. Diagnostic only.

    .venv/bin/python experiments/detail_budget/true_detail_gain.py --root data/dw128 \
        renderer.image_size=128 renderer.uv_size=128 data.synthetic.detail_width=3 ...

Overrides after the options go to ``experiment=synthetic_cpu_detail`` (the data folder's settings are read
from its shards; only renderer sizes and loss weights matter here).
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
from hydra import compose, initialize_config_dir

from decalite.cli._hydra import CONF_DIR
from decalite.cli.train import stage_config
from decalite.data.datamodule import IdentityGroupDataset, collate_groups
from decalite.losses.detail import resize_to_mask
from decalite.model.factory import build_deca
from decalite.training.train import build_stage_module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="synthetic data folder (its val/ shards are used)")
    parser.add_argument("--identities", type=int, default=8, help="held-out identities (x 4 images)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of experiment=synthetic_cpu_detail")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=synthetic_cpu_detail", "coarse_from=truth", "init_from=null",
                                          f"data.synthetic.root={args.root}", *args.overrides])
    deca, _ = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    module = build_stage_module(deca, stage_config(cfg))
    dataset = IdentityGroupDataset(f"{args.root}/val/*.tar", k=4, image_size=int(cfg.renderer.image_size), train=False)
    batch = collate_groups(list(itertools.islice(iter(dataset), args.identities)))
    mask = deca.renderer.face_eye_mask
    true = resize_to_mask(batch["disp"].flatten(0, 1), mask)  # (N, 1, U, U)

    def terms(displacement: torch.Tensor) -> dict[str, float]:
        """The stage's loss terms (unweighted) and weighted total with the given map (both halves of the
        detail-consistency batch)."""
        deca.displacement = lambda code: displacement.repeat(code.detail.shape[0] // true.shape[0], 1, 1, 1)
        with torch.no_grad():
            result = module.compute(batch)[0]
        return {**{k: float(v) for k, v in result.terms.items()}, "weighted_total": float(result.total)}

    report = {name: terms(d) for name, d in (("zero", 0 * true), ("true", true), ("minus_true", -true))}
    zero, at_true = report["zero"], report["true"]
    report["photometric_gain"] = 1.0 - at_true["photometric_detail"] / zero["photometric_detail"]
    weights = {k: float(v) for k, v in cfg.loss.terms.items()}
    report["weighted_photometric_gain"] = weights["photometric_detail"] * (zero["photometric_detail"]
                                                                           - at_true["photometric_detail"])
    report["weighted_regulariser_cost"] = sum(weights[k] * (at_true[k] - zero[k]) for k in at_true
                                              if k not in ("photometric_detail", "weighted_total"))
    report["truth_favoured"] = at_true["weighted_total"] < zero["weighted_total"]
    # The descent direction of the photometric term at D = 0, against the true D (where it is not 0).
    flat = torch.zeros_like(true, requires_grad=True)
    deca.displacement = lambda code: flat.repeat(code.detail.shape[0] // true.shape[0], 1, 1, 1)
    (grad,) = torch.autograd.grad(module.compute(batch)[0].terms["photometric_detail"], flat)
    where = mask.expand_as(true).bool() & (true != 0)
    report["descent_vs_true_corr"] = float(torch.corrcoef(torch.stack([-grad[where], true[where]]))[0, 1])
    report["mean_abs_true_d_mm"] = 1000.0 * float(true.abs().mul(mask).sum() / (mask.sum() * true.shape[0]))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
