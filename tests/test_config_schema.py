"""Typed configs: every tool's YAML fits its schema, and a misspelt key or a wrongly typed value is rejected by
name, on the command line (``key=``, ``+key=``) and in the YAML files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from decalite.cli._hydra import CONF_DIR
from decalite.cli.evaluate import EvaluateConfig
from decalite.cli.prepare import PrepareToolConfig
from decalite.cli.schema import (
    AnimateConfig,
    AssetsConfig,
    ConfigError,
    DemoConfig,
    TrainConfig,
    TransferConfig,
    compose_typed,
    project,
)
from decalite.cli.synth import SynthConfig
from decalite.config import FlameConfig, ReconstructConfig, RendererConfig
from decalite.synth import SyntheticConfig
from decalite.training.config import StageConfig

TOOLS = [("reconstruct", ["input=x"], ReconstructConfig), ("animate", [], AnimateConfig),
         ("transfer", ["source=a", "driver=b"], TransferConfig), ("demo", [], DemoConfig), ("assets", [], AssetsConfig),
         ("synth", [], SynthConfig), ("prepare", [], PrepareToolConfig),
         ("train", ["experiment=synthetic_cpu"], TrainConfig), ("evaluate", [], EvaluateConfig)]


@pytest.mark.parametrize(("name", "overrides", "schema"), TOOLS, ids=[t[0] for t in TOOLS])
def test_every_tool_config_fits_its_schema(name, overrides, schema):
    cfg = compose_typed(name, overrides, schema)
    assert type(cfg) is schema
    if isinstance(cfg, ReconstructConfig):
        assert isinstance(cfg.flame, FlameConfig) and isinstance(cfg.renderer, RendererConfig)


def test_values_come_from_the_yaml_and_the_groups():
    cfg = compose_typed("animate", ["fit_steps=7", "renderer.image_size=128"], AnimateConfig)
    assert (cfg.fit_steps, cfg.frames, cfg.output, cfg.renderer.image_size) == (7, 60, "outputs/animate", 128)
    synth = project(compose_typed("synth", ["renderer.uv_size=64", "flame.n_exp=20"], SynthConfig), SyntheticConfig)
    assert type(synth) is SyntheticConfig and (synth.uv_size, synth.n_exp, synth.jaw) == (64, 20, (0.0, 0.4))


@pytest.mark.parametrize(("name", "schema", "base"), [("reconstruct", ReconstructConfig, ["input=x"]),
                                                      ("synth", SynthConfig, [])])
@pytest.mark.parametrize(("override", "named"), [("renderer.imag_size=1", "imag_size"),
                                                 ("+renderer.imag_size=1", "renderer.imag_size"),
                                                 ("renderer.image_size=big", "image_size"),
                                                 ("+identitiez=3", "identitiez")])
def test_typos_and_wrong_types_are_rejected_by_name(name, schema, base, override, named):
    with pytest.raises((ConfigCompositionException, ConfigError)) as err:
        compose_typed(name, [*base, override], schema)
    assert named in str(err.value) + str(err.value.__cause__)


def test_flame2020_requires_its_folder():
    with pytest.raises(ConfigError, match="dir"):
        compose_typed("reconstruct", ["input=x", "flame=flame2020"], ReconstructConfig)
    assert compose_typed("reconstruct", ["input=x", "flame=flame2020", "flame.dir=/data/FLAME"],
                         ReconstructConfig).flame.dir == "/data/FLAME"


def test_a_typo_in_a_yaml_file_is_rejected(tmp_path):
    conf = shutil.copytree(CONF_DIR, tmp_path / "conf")
    renderer = conf / "renderer" / "default.yaml"
    renderer.write_text(renderer.read_text() + "imag_size: 64\n")  # a misspelt image_size
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as err:
            compose("reconstruct", overrides=["input=x"])
    assert "imag_size" in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize(("module", "args"), [("decalite.cli.reconstruct", ["input=x"]),
                                              ("decalite.cli.synth", ["output=unused"])])
@pytest.mark.parametrize("override", ["renderer.imag_size=1", "+renderer.imag_size=1"])
def test_clis_reject_a_misspelt_override_by_name(tmp_path, module, args, override):
    proc = subprocess.run([sys.executable, "-m", module, *args, override], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "imag_size" in proc.stdout + proc.stderr
    assert not (tmp_path / "unused").exists() and not (tmp_path / "x").exists()


def _schema_of(path, raw) -> type | None:
    """The dataclass a conf/ YAML names in its defaults list (``schema`` in a group, ``<tool>_schema``)."""
    from decalite.cli import schema as registry

    tools = {**registry._TOOLS, "synth": SynthConfig, "prepare": PrepareToolConfig, "evaluate": EvaluateConfig}
    for entry in raw.get("defaults", []):
        if entry == "schema":
            return registry._GROUPS[path.parent.name]
        if isinstance(entry, str) and entry.endswith("_schema"):
            return tools[entry.removesuffix("_schema")]
    return None


def _repeated_defaults(raw, defaults, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig, OmegaConf

    found = []
    for key in raw:
        if key in ("defaults", "hydra") or key not in defaults:
            continue
        mine, default = raw._get_node(key), defaults._get_node(key)
        if isinstance(mine, DictConfig) and isinstance(default, DictConfig):
            found += _repeated_defaults(mine, default, f"{prefix}{key}.")
        elif not OmegaConf.is_interpolation(raw, key) and not OmegaConf.is_missing(defaults, key) \
                and mine._value() == default._value():
            found.append(f"{prefix}{key}: {mine._value()!r}")
    return found


def test_no_conf_value_repeats_its_schema_default():
    """Each value declared once: a YAML that names a schema sets only what differs from the schema's defaults
    (the dataclasses declare them; ``--cfg job`` shows the composed values)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    repeated, checked = {}, 0
    for path in sorted(Path(CONF_DIR).rglob("*.yaml")):
        raw = OmegaConf.load(path)
        schema = _schema_of(path, raw)
        if schema is None:
            continue
        checked += 1
        found = _repeated_defaults(raw, OmegaConf.structured(schema))
        if found:
            repeated[str(path.relative_to(CONF_DIR))] = found
    assert checked >= 15  # the groups' and tools' files
    assert not repeated, repeated


EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_fits_the_train_schema(experiment):
    cfg = compose_typed("train", [f"experiment={experiment}"], TrainConfig)
    assert type(cfg) is TrainConfig and cfg.stage in ("coarse", "detail")
    assert tuple(cfg.init_cam) == StageConfig.init_cam and cfg.coarse_from == StageConfig.coarse_from  # declared once


def test_train_and_evaluate_reject_typos_and_name_unset_values_with_an_example():
    with pytest.raises((ConfigCompositionException, ConfigError), match="init_ligt"):
        compose_typed("train", ["+init_ligt=2"], TrainConfig)
    with pytest.raises((ConfigCompositionException, ConfigError)) as err:
        compose_typed("train", ["seed=zero"], TrainConfig)
    assert "seed" in str(err.value) + str(err.value.__cause__)
    with pytest.raises(ConfigError, match=r"data\.root.*data\.root=/data/shards"):
        compose_typed("train", ["data=shards"], TrainConfig)
    evaluate = compose_typed("evaluate", ["synthetic.fit_steps=5", "now.unit=mm"], EvaluateConfig)
    assert (evaluate.synthetic.fit_steps, evaluate.now.unit, evaluate.synthetic.detail) == (5, "mm", True)
    with pytest.raises((ConfigCompositionException, ConfigError), match="benchmarck"):
        compose_typed("evaluate", ["+benchmarck=now"], EvaluateConfig)


def test_a_detail_stage_without_a_coarse_checkpoint_stops_before_any_work(tmp_path):
    """experiment=deca_detail without init_from used to train on top of an untrained, frozen E_coarse (its YAML's
    ``init_from: ???`` was overwritten by train.yaml's null: a merge never replaces a value with ???)."""
    proc = subprocess.run([sys.executable, "-m", "decalite.cli.train", "experiment=synthetic_cpu_detail",
                           "init_from=null", f"paths.log_dir={tmp_path / 'logs'}", f"paths.data_dir={tmp_path / 'data'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "init_from is not set" in proc.stdout + proc.stderr and "coarse_from=truth" in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()  # no synthetic data written first
