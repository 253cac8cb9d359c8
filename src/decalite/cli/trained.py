"""Self-describing checkpoints: the settings a checkpoint was trained with, and tools that take them from it.

``decalite-train`` records :func:`trained_settings` of its config in every checkpoint
(:data:`decalite.nets.checkpoints.SETTINGS_KEY`). A tool given a checkpoint (``model.checkpoint=``,
``checkpoint=``) then adopts them with :func:`adopt_trained_settings`: a value the command line did not set is
taken from the checkpoint (so ``decalite-reconstruct model.checkpoint=last.ckpt`` needs nothing else), and a value
it did set that contradicts the checkpoint (another ``flame.n_shape``, another head) is an error naming both.
Checkpoints without settings (official ``deca_model.tar``, decalite's before 0.1.0's settings) change nothing.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

#: What a checkpoint records and a tool adopts: the head, the networks' sizes, the crop and UV sizes, the synthetic
#: world it was trained in and the state training started from (evaluate's "before" model), as dotted keys.
TRAINED_KEYS = (
    "flame.dir", "flame.embedded", "flame.seed", "flame.n_shape", "flame.n_exp", "flame.n_tex",
    "flame.contour_convention",
    "model.backbone", "model.n_shape", "model.n_exp", "model.n_tex", "model.n_detail", "model.detail_size",
    "renderer.image_size", "renderer.uv_size",
    "data.synthetic.root", "data.synthetic.train_identities", "data.synthetic.val_identities",
    "data.synthetic.images_per_identity", "data.synthetic.identities_per_shard", "data.synthetic.size",
    "data.synthetic.render_size", "data.synthetic.shape_std", "data.synthetic.detail_scale",
    "data.synthetic.detail_width", "data.synthetic.detail_noise", "data.synthetic.seed",
    "init_cam", "init_light", "coarse_from",
)

#: Config blocks recorded whole (every key they hold, e.g. a synthetic world's pose ranges set with
#: ``+data.synthetic.yaw=10``), so a tool scores the same world; a tool whose config has the block takes them all.
TRAINED_BLOCKS = ("data.synthetic",)

#: Where files live on a machine: adopted when not set, but a command line may point elsewhere (the same FLAME
#: files or data on another machine). ``flame.dir`` unset vs set still tells the embedded head from FLAME files.
PATH_KEYS = ("flame.dir", "data.synthetic.root")

_ABSENT = object()


class TrainedSettingsError(ValueError):
    """A command-line value contradicts the settings the checkpoint was trained with."""


def _keys(cfg: DictConfig) -> list[str]:
    """:data:`TRAINED_KEYS` and the keys of the :data:`TRAINED_BLOCKS` that ``cfg`` holds (flame before model)."""
    keys = list(TRAINED_KEYS)
    for block in TRAINED_BLOCKS:
        node = OmegaConf.select(cfg, block, default=None)
        if isinstance(node, DictConfig):
            keys += [f"{block}.{k}" for k in node if f"{block}.{k}" not in keys]
    return keys


def trained_settings(cfg: DictConfig) -> dict[str, Any]:
    """The :data:`TRAINED_KEYS` and :data:`TRAINED_BLOCKS` of a composed training config, resolved (dotted key ->
    plain value)."""
    found = {}
    for key in _keys(cfg):
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT:
            found[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return found


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def adopt_trained_settings(cfg: DictConfig, recorded: dict[str, Any], explicit: set[str], source: str) -> list[str]:
    """Take the checkpoint's settings into ``cfg`` (in place) where the command line left them alone.

    Args:
        cfg: the tool's composed config; keys it does not have (a reconstruction has no ``data``) are skipped.
        recorded: the checkpoint's settings (dotted key -> value), see :func:`trained_settings`.
        explicit: the dotted keys the command line set (see :func:`decalite.cli._hydra.explicit_keys`).
        source: the checkpoint's path, for messages.

    Returns:
        "key: old -> new" for each value taken from the checkpoint.

    Raises:
        TrainedSettingsError: an explicit value differs from the checkpoint's (paths aside; the embedded head vs
            FLAME files is not a path difference); the message names the key, both values and the fix.
    """
    changed, conflicts = [], []
    blocks = [k for k in recorded if k not in TRAINED_KEYS and k.rsplit(".", 1)[0] in TRAINED_BLOCKS]
    for key in [*TRAINED_KEYS, *blocks]:  # flame before model: model.n_shape follows flame.n_shape
        value = recorded.get(key, _ABSENT)
        current = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue
        if current is _ABSENT:  # a block's key this tool's config lacks (a generator setting): taken if it has the block
            if key in blocks and isinstance(OmegaConf.select(cfg, key.rsplit(".", 1)[0], default=None), DictConfig):
                with open_dict(cfg):
                    OmegaConf.update(cfg, key, value, merge=False)
                changed.append(f"{key}: (unset) -> {value!r}")
            continue
        current = OmegaConf.to_container(current, resolve=True) if OmegaConf.is_config(current) else current
        if _same(current, value):
            continue
        if key in explicit:
            other_head = key == "flame.dir" and (current is None) != (value is None)
            if key in PATH_KEYS and not other_head:
                continue  # the same files elsewhere
            conflicts.append(f"{key}={current!r} is set, the checkpoint was trained with {key}={value!r}")
            continue
        with open_dict(cfg):
            OmegaConf.update(cfg, key, value, merge=False)
        changed.append(f"{key}: {current!r} -> {value!r}")
    if conflicts:
        raise TrainedSettingsError(
            f"{source}: " + "; ".join(conflicts) + ". Drop these overrides (the checkpoint's values are used), or "
            "use a checkpoint trained with them")
    if changed:
        log.info("%s: using the settings it was trained with: %s", source, ", ".join(changed))
    return changed


def explicit_keys(cfg: DictConfig, config_name: str) -> set[str]:
    """The :data:`TRAINED_KEYS` this run's command line set: named in an override (``flame.n_shape=16``) or changed
    from the tool's defaults by one (a group: ``flame=generated``, ``model=small``, ``experiment=...``; the keys a
    group leaves at the defaults are not counted). Outside a Hydra app (a test composing a config) nothing is."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or not GlobalHydra.instance().is_initialized():
        return set()
    named = {o.lstrip("+~").split("=", 1)[0].split("@", 1)[0] for o in HydraConfig.get().overrides.task}
    base = compose(config_name)
    found = set()
    for key in _keys(cfg):
        if key in named:
            found.add(key)
            continue
        mine, default = OmegaConf.select(cfg, key, default=_ABSENT), OmegaConf.select(base, key, default=_ABSENT)
        if mine is _ABSENT or default is _ABSENT:
            continue
        mine = OmegaConf.to_container(mine, resolve=True) if OmegaConf.is_config(mine) else mine
        default = OmegaConf.to_container(default, resolve=True) if OmegaConf.is_config(default) else default
        if not _same(mine, default):
            found.add(key)
    return found


def use_checkpoint_settings(cfg: DictConfig, checkpoint: str | None, config_name: str) -> list[str]:
    """:func:`adopt_trained_settings` of ``checkpoint``'s record into ``cfg`` (nothing without a checkpoint or a
    record); see :func:`explicit_keys` for what counts as set on the command line.

    Raises:
        AssetError: the checkpoint is missing or unreadable (named, before any work).
        TrainedSettingsError: a command-line value contradicts the checkpoint.
    """
    from decalite.nets.checkpoints import read_training_record

    if not checkpoint:
        return []
    record = read_training_record(checkpoint)
    if record is None:
        return []
    return adopt_trained_settings(cfg, record["settings"], explicit_keys(cfg, config_name), str(checkpoint))


def adopt_or_exit(cfg: DictConfig, checkpoint: str | None, config_name: str, logger: logging.Logger) -> None:
    """:func:`use_checkpoint_settings` for an entry point: a missing or unreadable checkpoint, or an override that
    contradicts it, is logged (file, keys, values and the fix) and the process exits with status 2 before any work."""
    from decalite.errors import AssetError

    try:
        use_checkpoint_settings(cfg, checkpoint, config_name)
    except (AssetError, TrainedSettingsError) as err:
        logger.error("%s", err)
        sys.exit(2)
