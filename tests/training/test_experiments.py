"""Every experiment config composes and runs a fast_dev_run on the CPU (synthetic data written on first use);
a short real run leaves a checkpoint that the detail stage and decalite-reconstruct load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from decalite.cli._hydra import CONF_DIR
from decalite.cli.evaluate import EvaluateConfig  # noqa: F401  (importing the tool registers its schema)
from decalite.cli.train import run

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
SMALL = ["trainer=cpu", "model=small", "renderer.image_size=32", "renderer.uv_size=32", "renderer.backend=torch",
         "data.synthetic.train_identities=4", "data.synthetic.val_identities=2", "data.synthetic.size=48",
         "data.synthetic.render_size=48", "data.synthetic.identities_per_shard=2", "data.num_workers=0",
         "threads=2", "logger=csv"]


def _cfg(tmp: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*SMALL, f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={tmp / 'logs'}",
                                          f"paths.cache_dir={os.environ['DECALITE_CACHE']}", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / "run" / "_".join(o.split("=")[-1] for o in overrides[:1]))
    return cfg


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A data/log folder with a coarse checkpoint of a 2-step synthetic_cpu run, and a random VGG19 file."""
    tmp = tmp_path_factory.mktemp("train")
    cfg = _cfg(tmp, "experiment=synthetic_cpu", "trainer.max_steps=2", "data.epoch_length=4",
               "trainer.check_val_every_n_epoch=1",
               "callbacks.images.every_n_steps=1")
    result = run(cfg)
    import torchvision

    vgg = tmp / "vgg19_features.pth"
    torch.save(torchvision.models.vgg19(weights=None).features[:23].state_dict(), vgg)
    return tmp, result, vgg


def test_short_run_leaves_a_checkpoint_and_images(workspace):
    tmp, result, _ = workspace
    assert result.checkpoint and Path(result.checkpoint).is_file()
    assert "train/loss/landmark" in result.metrics and "val/landmark_nme" in result.metrics
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    assert any(k.startswith("deca.coarse_encoder.") for k in state["state_dict"])
    assert not any(k.startswith("pretrained.") or "v_template" in k for k in state["state_dict"])
    assert list((Path(result.checkpoint).parents[1] / "images").glob("coarse_step*.png"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_fast_dev_run_of_every_experiment(workspace, name):
    tmp, coarse, vgg = workspace
    overrides = [f"experiment={name}", "debug=fdr", f"loss.vgg19_weights={vgg}"]
    if "detail" in name or name in ("ablation_no_mrf", "ablation_no_symmetry"):
        overrides.append(f"init_from={coarse.checkpoint}")
    if name in ("deca_coarse", "ablation_no_shape_consistency"):
        overrides.append(f"init_from={coarse.checkpoint}")
    before = set((tmp / "run").rglob("*.ckpt"))
    result = run(_cfg(tmp, *overrides))
    assert result.skipped_steps == 0
    assert any(k.startswith("train/loss/") for k in result.metrics)
    assert result.checkpoint is None  # a smoke test writes no checkpoint (hundreds of MB each)
    assert set((tmp / "run").rglob("*.ckpt")) == before


@pytest.mark.parametrize("name", ["synthetic_cpu", "synthetic_cpu_detail"])
def test_bf16_mixed_precision_runs_both_stages(workspace, name):
    """trainer.precision=bf16-mixed, as trainer=gpu sets it, through a whole step on the CPU (the detail stage's UV
    resize had no bf16 kernel there)."""
    tmp, coarse, _ = workspace
    overrides = [f"experiment={name}", "debug=fdr", "trainer.precision=bf16-mixed"]
    if "detail" in name:
        overrides.append(f"init_from={coarse.checkpoint}")
    result = run(_cfg(tmp, *overrides))
    assert result.skipped_steps == 0
    losses = {k: v for k, v in result.metrics.items() if k.startswith("train/loss/")}
    assert losses and all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())


def test_synthetic_benchmark_writes_the_table(workspace):
    """decalite-evaluate scores before / after / mean face on held-out identities and writes train_eval.json."""
    import json

    from decalite.cli.evaluate import run as evaluate

    tmp, coarse, _ = workspace
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=[*SMALL, "experiment=synthetic_cpu", f"paths.data_dir={tmp / 'data'}",
                                             f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={os.environ['DECALITE_CACHE']}",
                                             f"model.checkpoint={coarse.checkpoint}", f"output={tmp / 'eval'}",
                                             "max_identities=1", "data.k=2"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / "eval")
    scores = evaluate(cfg)
    saved = json.loads((tmp / "eval" / "train_eval.json").read_text())
    assert set(saved) == {"before", "after", "mean_face"}
    for row in saved.values():
        assert row["landmark_nme"] > 0 and row["shape_mm"] >= 0 and row["displacement_mm"] is not None
    assert saved["mean_face"]["detail_consistency_mm"] is None
    assert scores["after"]["landmark_nme"] == saved["after"]["landmark_nme"]
    heldout = tmp / "eval" / "heldout"
    assert list(heldout.glob("*_grid.png")) and list(heldout.glob("*_neutral_true.ply"))


def test_oracle_coarse_detail_run_trains_and_is_scored_on_the_true_codes(workspace):
    """coarse_from=truth: the detail stage trains on the data's true coarse codes (no coarse checkpoint), and
    decalite-evaluate scores its details on them: the landmarks of the true codes are exact."""
    import json

    from decalite.cli.evaluate import run as evaluate

    tmp, _, _ = workspace
    oracle = ["experiment=synthetic_cpu_detail", "coarse_from=truth", "init_from=null", "data.jitter=false"]
    cfg = _cfg(tmp, *oracle, "trainer.max_steps=2", "data.epoch_length=4", "trainer.check_val_every_n_epoch=1")
    result = run(cfg)
    assert result.skipped_steps == 0 and "val/displacement_mm" in result.metrics
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=[*SMALL, *oracle, f"paths.data_dir={tmp / 'data'}",
                                             f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={os.environ['DECALITE_CACHE']}",
                                             f"model.checkpoint={result.checkpoint}", f"output={tmp / 'eval_oracle'}",
                                             "max_identities=2", "data.k=2"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / "eval_oracle")
    evaluate(cfg)
    saved = json.loads((tmp / "eval_oracle" / "train_eval.json").read_text())
    assert saved["after"]["landmark_nme"] < 0.02 < saved["mean_face"]["landmark_nme"]
    assert -1.0 <= saved["after"]["expression_change_pearson"] <= 1.0
    assert saved["after"]["detail_other_identity_mm"] is not None


def test_coarse_from_must_name_a_source():
    from decalite.training.config import StageConfig

    with pytest.raises(ValueError, match="coarse_from"):
        StageConfig(coarse_from="oracle")


def test_fit_predictors_are_scored_beside_the_encoder(workspace):
    """evaluate_synthetic scores fitting predictors on the same images: the identity fit from the mean face shares
    one shape per person and, on exact landmarks, lands nearer them than the mean face it starts from."""
    import itertools

    from decalite.apps.fitting import FitConfig, IdentityFitConfig
    from decalite.data.datamodule import IdentityGroupDataset, collate_groups
    from decalite.evaluation.scores import evaluate_synthetic, fit_predictor, identity_fit_predictor
    from decalite.model.factory import build_deca
    from decalite.nets.checkpoints import load_weights

    tmp, coarse, _ = workspace
    cfg = _cfg(tmp, "experiment=synthetic_cpu")
    deca, _ = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    load_weights(coarse.checkpoint, deca.networks(), strict=True)
    deca.eval()
    dataset = IdentityGroupDataset(str(Path(cfg.data.synthetic.root) / "val" / "*.tar"), k=2,
                                   image_size=int(cfg.data.image_size), train=False)
    batch = collate_groups(list(itertools.islice(iter(dataset), 2)))
    seen = {}

    def spy(predictor):
        def wrapped(images, landmarks, masks, groups, k, truth):
            seen["groups_k"] = (groups, k)
            seen["truth"] = set(truth)
            code = predictor(images, landmarks, masks, groups, k, truth)
            seen["shape"] = code.shape
            return code
        return wrapped

    no_photo = {"landmark": 1.0, "eye_closure": 1.0, "lip_closure": 0.5, "reg_shape": 3e-4, "reg_exp": 3e-4}
    models = {"encoder": deca, "fit": deca, "identity_fit": deca}
    predictors = {"fit": fit_predictor(deca, FitConfig(steps=30, lr=0.01, terms=no_photo)),
                  "identity_fit": spy(identity_fit_predictor(deca, IdentityFitConfig(steps=60, pose_steps=20,
                                                                                     terms=no_photo),
                                                             from_encoder=False))}
    scores = evaluate_synthetic(models, [batch], detail=False, predictors=predictors)
    assert set(scores) == {"encoder", "fit", "identity_fit", "mean_face"}
    assert seen["groups_k"] == (2, 2)
    torch.testing.assert_close(seen["shape"][0], seen["shape"][1])  # one shape per person
    assert not torch.allclose(seen["shape"][0], seen["shape"][2])
    assert scores["identity_fit"].landmark_nme < scores["mean_face"].landmark_nme
    assert scores["fit"].landmark_nme < scores["encoder"].landmark_nme  # the fit refines the 2-step encoder


def test_synthetic_benchmark_cli_scores_methods_and_writes_the_report(workspace):
    """decalite-evaluate benchmark=synthetic: one row per method plus the mean face, JSON + markdown + curve; an
    unknown method is refused by name."""
    import json

    from decalite.cli.evaluate import BENCHMARKS
    from decalite.evaluation.method_benchmark import BenchmarkConfigError

    tmp, coarse, _ = workspace

    def cfg(*extra):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            made = compose("evaluate", overrides=[
                *SMALL, "experiment=synthetic_cpu", "benchmark=synthetic", f"paths.data_dir={tmp / 'data'}",
                f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={os.environ['DECALITE_CACHE']}",
                f"model.checkpoint={coarse.checkpoint}", f"output={tmp / 'synthetic'}", "max_identities=2", "data.k=2",
                "synthetic.fit_steps=5", "synthetic.identity_fit_steps=5", *extra])
        return made

    scores = BENCHMARKS["synthetic"](cfg("synthetic.methods=[encoder,encoder+identity_fit]"))
    assert set(scores) == {"encoder", "encoder+identity_fit", "mean_face"}
    saved = json.loads((tmp / "synthetic" / "synthetic_results.json").read_text())
    assert saved["scores"]["encoder"]["landmark_nme"] == scores["encoder"]["landmark_nme"]
    assert saved["meta"]["identities"] == 2
    row = saved["scores"]["encoder"]
    assert row["shape_mean_mm"] > 0 and row["shape_std_mm"] > 0
    for key in ("detail_consistency_mm", "detail_other_identity_mm", "expression_change_mm",
                "expression_change_true_mm"):
        assert row[key] is not None and row[key] >= 0
    assert row["expression_change_true_mm"] > 0  # the synthetic wrinkles move with the expression
    table = (tmp / "synthetic" / "synthetic_results.md").read_text()
    assert "| encoder+identity_fit |" in table and "| mean_face |" in table
    assert (tmp / "synthetic" / "synthetic_curve.png").stat().st_size > 1000
    with pytest.raises(BenchmarkConfigError, match="synthetic.methods"):
        BENCHMARKS["synthetic"](cfg("synthetic.methods=[encoder,magic]"))
