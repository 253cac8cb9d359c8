"""The CLIs' structured configs: dataclasses registered in Hydra's ConfigStore, and the typed view of a run's config.

Every YAML file of ``conf/`` names its schema in its defaults list (``schema`` in a group, ``<tool>_schema`` in a
tool's file), so composing it checks every key and type: a misspelt key (``renderer.imag_size=1``) or a value of
the wrong type (``renderer.image_size=big``) is an error that names it. Fields without a default are the ones the
YAML sets, so values are written once, in ``conf/``; the dataclasses declare names, types and meaning.

The shared groups and the reconstruction options are :mod:`decalite.config`; the synthetic-data and prepare
tools extend their library dataclasses (:class:`~decalite.synth.SyntheticConfig`,
:class:`~decalite.data.prepare.PrepareConfig`), registered by their own CLI modules (they import the library).
Only ``decalite.cli`` touches DictConfig: each app turns its config into its dataclass with :func:`typed`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from decalite.config import FlameConfig, ModelConfig, PathsConfig, ReconstructConfig, RendererConfig
from decalite.training.config import LossConfig, OptimConfig, StageConfig

T = TypeVar("T")


class ConfigError(ValueError):
    """The composed configuration does not fit its schema (the message names the key)."""


@dataclass
class AnimateConfig(ReconstructConfig):
    """``decalite-animate`` (``conf/animate.yaml``): expression, jaw and yaw sweeps of one face.

    Attributes:
        codes: a ``_codes.npz`` of decalite-reconstruct (instead of ``input``).
        frames: frames of the animation. n_components: expression components swept in turn.
        exp_amplitude: largest expression coefficient. jaw_max, yaw_max: largest jaw opening and head yaw (radians).
        fps: frames per second of the GIF and MP4.
    """

    codes: str | None
    frames: int
    n_components: int
    exp_amplitude: float
    jaw_max: float
    yaw_max: float
    fps: int


@dataclass
class TransferConfig(ReconstructConfig):
    """``decalite-transfer`` (``conf/transfer.yaml``): a source's identity with a driver's expressions.

    Attributes:
        source: the source image. driver: an image, a folder or a video. fps: frames per second.
    """

    source: str
    driver: str
    fps: int


@dataclass
class DemoConfig(ReconstructConfig):
    """``decalite-demo`` (``conf/demo.yaml``): the head's showcase, then reconstruct and animate a photo (with
    ``model.checkpoint`` when set: its recorded settings, head and sizes, are used; unset: fit from the mean face).

    Attributes:
        output: the demo's folder (``head/``, ``reconstruct/`` or ``reconstruct_trained/``, ``animate/``).
        frames, fps: the animation.
    """

    frames: int
    fps: int


@dataclass
class AssetsConfig:
    """``decalite-assets`` (``conf/assets.yaml``): which head to write as a FLAME-format folder, and where.

    Attributes:
        source: "ict" (ICT Face Model Light) or "generated" (the mannequin).
        output: the folder to write.
        seed: the generated head's seed.
        input: ICT's FaceXModel folder to convert; None expands the ICT head shipped with decalite.
        pack: also write the converted head as a compact pack to this file (how the shipped pack is made).
        target_vertices: the ICT conversion's vertex budget (decimation); None keeps every vertex.
    """

    source: str
    output: str
    seed: int
    input: str | None
    pack: str | None
    target_vertices: int | None


@dataclass
class TrainConfig:
    """``decalite-train`` (``conf/train.yaml``): one training stage, composed from the config groups.

    Attributes:
        paths, flame, model, renderer, optim, loss: the typed groups.
        data, trainer, logger, callbacks: constructor arguments (``_target_`` and keywords) of the datamodule, the
            Lightning Trainer, the loggers and the callbacks (Hydra's ``instantiate``); ``data.synthetic`` holds the
            synthetic world (:class:`~decalite.synth.SyntheticConfig` fields, its folder and identity counts).
        name: the run's name (log folders, wandb). stage: "coarse" (also the pretrain stage) or "detail".
        seed: the run's seed. resume: a checkpoint of this run to continue (optimizer state and step count).
        init_from: a checkpoint whose networks start this stage (the detail stage: a coarse checkpoint).
        threads: torch's CPU threads (None: torch's default; set it on shared CPU machines).
        init_cam, init_light, coarse_from: :class:`~decalite.training.config.StageConfig`'s (defaults there).
    """

    paths: PathsConfig
    flame: FlameConfig
    model: ModelConfig
    renderer: RendererConfig
    optim: OptimConfig
    loss: LossConfig
    data: Any
    trainer: Any
    logger: Any
    callbacks: Any
    name: str
    stage: str
    seed: int
    resume: str | None
    init_from: str | None
    threads: int | None
    init_cam: tuple[float, float, float] = StageConfig.init_cam
    #: What a user sets for a key a config leaves unset (``???``), quoted by the error that names it.
    EXAMPLES: ClassVar[dict[str, str]] = {
        "init_from": "init_from=outputs/train/deca_coarse/coarse/checkpoints/last.ckpt",
        "loss.vgg19_weights": "loss.vgg19_weights=/weights/vgg19-dcbb9e9d.pth (torchvision's ImageNet VGG19)",
        "data.root": "data=shards data.root=/data/shards (decalite-prepare's output: train/ and val/ inside)",
    }
    init_light: float = StageConfig.init_light
    coarse_from: str = StageConfig.coarse_from


_GROUPS = {"flame": FlameConfig, "renderer": RendererConfig, "model": ModelConfig, "paths": PathsConfig,
           "loss": LossConfig, "optim": OptimConfig}
_TOOLS = {"reconstruct": ReconstructConfig, "animate": AnimateConfig, "transfer": TransferConfig,
          "demo": DemoConfig, "assets": AssetsConfig, "train": TrainConfig}


def register(tools: dict[str, type] | None = None) -> None:
    """Store the schemas in Hydra's ConfigStore: ``<group>/schema`` for the shared groups and ``<tool>_schema``
    for the tools (``tools``: more of them, name -> dataclass). Idempotent; runs when ``decalite.cli._hydra`` is
    imported, which every app and every test that composes ``conf/`` does."""
    store = ConfigStore.instance()
    for group, node in _GROUPS.items():
        store.store(group=group, name="schema", node=node)
    for name, node in {**_TOOLS, **(tools or {})}.items():
        store.store(name=f"{name}_schema", node=node)


def typed_or_exit(cfg: DictConfig, schema: type[T], log: logging.Logger) -> T:
    """:func:`typed` for an entry point: a ConfigError is logged and the process exits with status 2."""
    try:
        return typed(cfg, schema)
    except ConfigError as err:
        log.error("%s", err)
        sys.exit(2)


def inference_model(cfg):
    """(DECA, FlameAssets) built from a tool's config groups, placed on ``cfg.device`` in eval mode; sets torch's
    CPU threads first (``cfg.threads``, :func:`decalite.threads.apply_thread_policy`)."""
    from decalite.model.factory import build_deca, resolve_device
    from decalite.threads import apply_thread_policy

    apply_thread_policy(cfg.get("threads") if isinstance(cfg, DictConfig) else getattr(cfg, "threads", None))

    deca, assets = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    return deca.to(resolve_device(cfg.device)).eval(), assets


def typed(cfg: DictConfig, schema: type[T]) -> T:
    """The composed config as an instance of ``schema`` (nested dataclasses included).

    Raises:
        ConfigError: a key ``schema`` does not declare (also one added with ``+key=``), a value of the wrong type
            or a required value left unset; the message names the key (for an unset one, with an example from the
            schema's ``EXAMPLES`` where it has one).
    """
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        # A key appended with "+key=" survives a merge of same-typed nodes; to_object would drop it silently.
        extra = _undeclared(merged)
        if extra:
            raise ConfigError("configuration error: not a key of the schema: " + ", ".join(extra))
        missing = sorted(OmegaConf.missing_keys(merged))  # to_object would pass an optional one on as None
        if missing:
            raise _unset(missing, schema)
        return OmegaConf.to_object(merged)
    except MissingMandatoryValue as err:
        raise _unset([err.full_key], schema) from None
    except OmegaConfBaseException as err:
        unset = re.search(r"Missing mandatory value: (\S+)", str(err))  # met while resolving an interpolation
        if unset:
            raise _unset([unset.group(1)], schema) from None
        raise ConfigError(f"configuration error: {err}") from None


def _unset(keys: list[str], schema: type) -> ConfigError:
    """The error for mandatory values left unset (``???``): each key, with the schema's example where it has one."""
    examples = getattr(schema, "EXAMPLES", {})
    return ConfigError("configuration error: not set (its config says ???): " + ", ".join(keys)
                       + "; set it on the command line, e.g. " + "; ".join(examples.get(k, f"{k}=VALUE") for k in keys))


def _undeclared(node: DictConfig, prefix: str = "") -> list[str]:
    """Full names of the keys of ``node`` (recursively) that its dataclass types do not declare."""
    cls = OmegaConf.get_type(node)
    declared = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else None
    found = []
    for key in node.keys():
        if declared is not None and key not in declared:
            found.append(f"{prefix}{key}")
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            found += _undeclared(child, f"{prefix}{key}.")
    return found


def project(obj: Any, cls: type[T]) -> T:
    """``cls`` built from the fields of ``obj`` it declares (a tool's config -> the library's dataclass); lists
    become tuples where ``cls``'s default is a tuple."""
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        values[f.name] = tuple(value) if isinstance(value, list) and isinstance(f.default, tuple) else value
    return cls(**values)


def compose_typed(config_name: str, overrides: list[str], schema: type[T]) -> T:
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` outside an app (tests, benchmarks) and return it typed.

    Sets Hydra's runtime config as an app would, so ``${hydra:...}`` values (``paths.output_dir``) resolve.
    """
    from hydra import compose, initialize_config_dir

    from decalite.cli._hydra import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return typed(cfg, schema)
