"""``decalite-train`` / ``make train``: one training stage from the Hydra config (see conf/train.yaml).

    decalite-train experiment=synthetic_cpu                       # coarse, synthetic data, CPU
    decalite-train experiment=synthetic_cpu_detail                # detail, from the coarse checkpoint
    decalite-train -m experiment=ablation_no_symmetry,ablation_no_mrf
    decalite-train experiment=deca_coarse data=shards data.root=/data/shards trainer=ddp trainer.devices=8

The app only builds objects from the config and calls :func:`decalite.training.train.train`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from decalite.cli._hydra import CONF_PATH

log = logging.getLogger("decalite.train")


def stage_config(cfg: DictConfig):
    """The typed :class:`~decalite.training.config.StageConfig` of the composed config."""
    from decalite.cli.trained import trained_settings
    from decalite.training.config import LossConfig, OptimConfig, StageConfig

    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    return StageConfig(
        stage=str(cfg.stage),
        loss=LossConfig(**{**loss, "terms": {k: float(v) for k, v in loss["terms"].items()}}),
        optim=OptimConfig(**{**optim, "betas": tuple(optim["betas"])}),
        init_from=cfg.init_from,
        init_cam=tuple(float(v) for v in cfg.init_cam),
        init_light=float(cfg.init_light),
        coarse_from=str(cfg.get("coarse_from", "encoder")),
        settings=trained_settings(cfg),
    )


#: Beside each synthetic split's manifest: the head it was rendered from (the assets folder's name, e.g.
#: ``generated_head_v5_seed0``), so data of another head (an older generator, another FLAME) is not mixed in.
SOURCE_FILE = "head_source.txt"


def ensure_synthetic_data(cfg: DictConfig) -> None:
    """Write the synthetic train/val shards when absent or unfinished (resumable: finished shards are kept).
    Existing shards rendered from another head, or written with other settings than configured, are refused
    with the fix."""
    from decalite.errors import AssetError
    from decalite.flame.default import resolve_flame_dir
    from decalite.synth import SyntheticConfig, write_synthetic_dataset

    spec = cfg.data.synthetic
    assets_dir = resolve_flame_dir(cfg.flame.dir, cache_dir=cfg.paths.cache_dir, seed=int(cfg.flame.seed),
                                  embedded=str(cfg.flame.embedded))
    source = Path(assets_dir).name
    for split, count, seed in (("train", spec.train_identities, spec.seed),
                               ("val", spec.val_identities, int(spec.seed) + 1_000_000)):
        out = Path(spec.root) / split
        synth = SyntheticConfig(identities=int(count), images_per_identity=int(spec.images_per_identity),
                                size=int(spec.size), render_size=int(spec.render_size), seed=int(seed),
                                uv_size=int(cfg.renderer.uv_size), n_shape=int(cfg.flame.n_shape),
                                n_exp=int(cfg.flame.n_exp), n_tex=int(cfg.flame.n_tex),
                                shape_std=float(spec.get("shape_std", 1.0)),
                                detail_scale=float(spec.get("detail_scale", 1.0)),
                                detail_width=float(spec.get("detail_width", 1.0)),
                                detail_noise=float(spec.get("detail_noise", 1.0)))
        if (out / "manifest.json").exists():
            written = _check_synthetic_settings(out, synth)
            marker = out / SOURCE_FILE
            found = marker.read_text().strip() if marker.exists() else "an older decalite (no record)"
            if found != source:
                raise AssetError(out, f"synthetic data rendered from {found}, but the configured head is {source}",
                                 what="synthetic training data", expected=f"shards rendered from {source}",
                                 how_to_obtain=f"delete {Path(spec.root)} to regenerate it (automatic, a few minutes), "
                                               "or point data.synthetic.root elsewhere")
            if written >= int(count):
                continue
            log.info("synthetic %s split in %s has %d of %d identities (interrupted): resuming", split, out,
                     written, int(count))
        else:
            log.info("writing %d synthetic %s identities to %s (first use)", count, split, out)
        out.mkdir(parents=True, exist_ok=True)
        (out / SOURCE_FILE).write_text(source + "\n")  # first, so an interrupted write can be resumed
        write_synthetic_dataset(synth, out, identities_per_shard=int(spec.identities_per_shard), assets_dir=assets_dir)


#: The settings :func:`ensure_synthetic_data` derives from the config; existing shards must have been written with
#: the same ones (the manifest records them), or training would silently use other data than configured.
CHECKED_SETTINGS = ("identities", "images_per_identity", "size", "render_size", "seed", "uv_size", "n_shape",
                    "n_exp", "n_tex", "shape_std", "detail_scale", "detail_width", "detail_noise")


def _check_synthetic_settings(out: Path, wanted) -> int:
    """Refuse a synthetic split whose manifest records other settings than ``wanted`` (a SyntheticConfig);
    returns the number of identities written so far."""
    from decalite.data.shards import MANIFEST, read_manifest
    from decalite.errors import AssetError

    try:
        recorded = read_manifest(out)
    except (OSError, ValueError) as err:
        raise AssetError(out / MANIFEST, f"unreadable ({err})", what="synthetic data manifest",
                         how_to_obtain=f"delete {out.parent} to regenerate it") from err
    # A setting the manifest does not record was written by a decalite without it: the default then.
    found = {**type(wanted)().to_json(), **(recorded.get("config") or {})}
    want = wanted.to_json()
    differ = [f"{k}: {found.get(k)!r} there, {want[k]!r} configured" for k in CHECKED_SETTINGS if found.get(k) != want[k]]
    if differ:
        raise AssetError(out, "synthetic data written with other settings than configured (" + "; ".join(differ) + ")",
                         what="synthetic training data", expected="shards written with the configured data.synthetic",
                         how_to_obtain=f"delete {out.parent} to regenerate it (automatic), or point "
                                       "data.synthetic.root elsewhere")
    return int(recorded.get("samples", 0))


def run(cfg: DictConfig):
    """Train one stage; returns the :class:`~decalite.training.train.TrainResult`."""
    from decalite.factory import build_deca
    from decalite.training.train import build_stage_module, train

    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    pl.seed_everything(int(cfg.seed), workers=True)
    if cfg.data.get("synthetic"):
        ensure_synthetic_data(cfg)
    deca, _ = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    module = build_stage_module(deca, stage_config(cfg))
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    for key in ("synthetic", "root"):
        data_cfg.pop(key, None)
    datamodule = instantiate(data_cfg, scale_range=tuple(data_cfg["scale_range"]))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and c.get("_target_")]
    if not cfg.trainer.get("enable_progress_bar", True):  # a progress-bar callback would contradict it
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    result = train(module, datamodule, trainer, resume=cfg.get("resume"))
    output = Path(cfg.paths.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "result.json").write_text(json.dumps(
        {"checkpoint": result.checkpoint, "metrics": result.metrics, "skipped_steps": result.skipped_steps},
        indent=2))
    log.info("stage %s done: checkpoint %s; %s", cfg.stage, result.checkpoint,
             {k: round(v, 4) for k, v in result.metrics.items() if k.startswith(("val/", "train/landmark"))})
    return result


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="train")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
