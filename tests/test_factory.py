"""The builders build: modules from config groups, on the CPU, in the constructors' mode; callers place them."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from decalite.config import FlameConfig, ModelConfig, PathsConfig, RendererConfig
from decalite.errors import AssetError
from decalite.model.factory import build_deca, build_flame, build_renderer, load_assets
from decalite.nets.codes import split_code


@pytest.fixture(scope="module")
def assets(head_cache):
    return load_assets(FlameConfig(dir=None, embedded="generated"), head_cache)


def test_build_flame_takes_the_flame_group(assets):
    layer = build_flame(FlameConfig(dir=None, n_shape=7, n_exp=3, contour_convention="smplx"), assets)
    assert (layer.n_shape, layer.n_exp) == (7, 3)
    assert layer.contour_convention == "smplx"
    assert layer.v_template.device.type == "cpu"


@pytest.mark.parametrize(("value", "expected"), [("auto", True), ("false", False), ("True", True), (False, False)])
def test_build_renderer_reads_cull_backfaces(assets, value, expected):
    renderer = build_renderer(RendererConfig(image_size=32, uv_size=16, backend="torch", cull_backfaces=value), assets)
    assert renderer.image_size == 32 and renderer.cull_backfaces is expected  # auto: the generated head is closed
    assert renderer.fixed_displacement is None


def test_auto_culling_is_off_for_the_open_ict_head(head_cache):
    ict = load_assets(FlameConfig(dir=None), head_cache)  # the default head: neck, mouth and eyes are open
    assert build_renderer(RendererConfig(image_size=32, uv_size=16, backend="torch"), ict).cull_backfaces is False


def test_build_deca_leaves_placement_and_mode_to_the_caller(head_cache):
    deca, assets = build_deca(FlameConfig(dir=None, n_shape=10, n_exp=5),
                              ModelConfig(backbone="resnet18", n_shape=10, n_exp=5),
                              RendererConfig(image_size=32, uv_size=32, backend="torch"),
                              PathsConfig(cache_dir=str(head_cache)))
    assert not assets.generated and assets.model.n_vertices == 10_000  # the embedded default: the ICT head
    assert deca.training  # not switched to eval by the builder
    assert {p.device.type for p in deca.parameters()} == {"cpu"}
    assert deca.flame.n_shape == 10 and deca.renderer.image_size == 32
    assert isinstance(deca.to(torch.device("cpu")).eval(), torch.nn.Module) and not deca.training


def test_build_deca_rejects_code_sizes_that_differ_from_the_flame_layer(head_cache):
    with pytest.raises(ValueError, match="flame.n_shape"):
        build_deca(FlameConfig(dir=None, n_shape=10, n_exp=5), ModelConfig(n_shape=20, n_exp=5), RendererConfig(),
                   PathsConfig(cache_dir=str(head_cache)))


def test_detail_decoder_size_round_trips_through_a_checkpoint(head_cache, tmp_path):
    """model.detail_size=64 trains, saves and loads back; a model of another size refuses the file by name."""
    flame, renderer = FlameConfig(dir=None, n_shape=10, n_exp=5), RendererConfig(image_size=32, uv_size=64, backend="torch")
    paths = PathsConfig(cache_dir=str(head_cache))
    small = ModelConfig(backbone="resnet18", n_shape=10, n_exp=5, detail_size=64)
    deca, _ = build_deca(flame, small, renderer, paths)
    assert deca.detail_decoder.out_size == 64
    torch.save({"state_dict": {f"deca.{k}": v for k, v in deca.state_dict().items()}}, tmp_path / "last.ckpt")
    again, _ = build_deca(flame, replace(small, checkpoint=str(tmp_path / "last.ckpt")), renderer, paths)
    code = split_code(torch.randn(2, deca.sizes.coarse), deca.sizes, detail=torch.randn(2, deca.sizes.n_detail))
    with torch.no_grad():
        torch.testing.assert_close(again.eval().displacement(code), deca.eval().displacement(code))
    with pytest.raises(AssetError, match="model.detail_size=256.*set model.detail_size=64"):
        build_deca(flame, replace(small, detail_size=256, checkpoint=str(tmp_path / "last.ckpt")), renderer, paths)
