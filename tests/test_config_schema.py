"""Typed configs: every tool's YAML fits its schema, and a misspelt key or a wrongly typed value is rejected by
name, on the command line (``key=``, ``+key=``) and in the YAML files."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from decalite.cli._hydra import CONF_DIR
from decalite.cli.prepare import PrepareToolConfig
from decalite.cli.schema import (
    AnimateConfig,
    AssetsConfig,
    ConfigError,
    DemoConfig,
    TransferConfig,
    compose_typed,
    project,
)
from decalite.cli.synth import SynthConfig
from decalite.config import FlameConfig, ReconstructConfig, RendererConfig
from decalite.synth import SyntheticConfig

TOOLS = [("reconstruct", ["input=x"], ReconstructConfig), ("animate", [], AnimateConfig),
         ("transfer", ["source=a", "driver=b"], TransferConfig), ("demo", [], DemoConfig), ("assets", [], AssetsConfig),
         ("synth", [], SynthConfig), ("prepare", [], PrepareToolConfig)]


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
    renderer.write_text(renderer.read_text().replace("image_size:", "imag_size:"))
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
