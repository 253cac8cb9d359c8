"""Networks, code splitting and the official-checkpoint import (with freshly initialised weights: no trained
weights exist here; the official layout is rebuilt in this file from the published architecture)."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import torchvision
from torch import nn

from decalite.errors import AssetError
from decalite.nets.checkpoints import load_weights
from decalite.nets.codes import CodeSizes, join_code, split_code
from decalite.nets.detail_decoder import DetailDecoder, detail_latent
from decalite.nets.encoders import ResnetEncoder


def _official_generator(latent: int = 181) -> nn.Module:
    """DECA's released detail decoder layout, as its state dict names it (l1, conv_blocks)."""

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = nn.Sequential(nn.Linear(latent, 128 * 64))
            layers: list[nn.Module] = [nn.BatchNorm2d(128)]
            for cin, cout in [(128, 128), (128, 64), (64, 64), (64, 32), (32, 16)]:
                layers += [nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(cin, cout, 3, 1, 1),
                           nn.BatchNorm2d(cout, 0.8), nn.LeakyReLU(0.2)]
            layers += [nn.Conv2d(16, 1, 3, 1, 1), nn.Tanh()]
            self.conv_blocks = nn.Sequential(*layers)

        def forward(self, z):
            return self.conv_blocks(self.l1(z).view(z.shape[0], 128, 8, 8)) * 0.01

    return Generator()


def _official_encoder(out: int) -> nn.Module:
    """DECA's released encoder layout: encoder.* (ResNet-50 without fc), layers.0 / layers.2."""

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torchvision.models.resnet50(weights=None)
            self.encoder.fc = nn.Identity()
            self.layers = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(), nn.Linear(1024, out))

        def forward(self, x):
            return self.layers(self.encoder(x))

    return Encoder()


def _randomise_bn(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def test_code_sizes_split_and_join():
    sizes = CodeSizes()
    assert sizes.coarse == 236 and sizes.detail_latent == 181
    params = torch.randn(4, 236)
    code = split_code(params, sizes)
    assert code.shape.shape == (4, 100) and code.tex.shape == (4, 50) and code.exp.shape == (4, 50)
    assert code.pose.shape == (4, 6) and code.cam.shape == (4, 3) and code.light.shape == (4, 9, 3)
    assert torch.equal(code.jaw_pose, params[:, 203:206])
    assert torch.equal(join_code(code), params)
    with pytest.raises(ValueError, match="236"):
        split_code(torch.randn(2, 235), sizes)


@pytest.mark.parametrize("backbone,features", [("resnet18", 512), ("resnet50", 2048)])
def test_encoder_shapes(backbone, features):
    enc = ResnetEncoder(236, backbone).eval()
    assert enc.feature_dim == features
    assert enc(torch.rand(2, 3, 224, 224)).shape == (2, 236)


def test_detail_decoder_output_range_and_size():
    dec = DetailDecoder(181).eval()
    z = detail_latent(torch.randn(3, 3), torch.randn(3, 50), torch.randn(3, 128))
    disp = dec(z)
    assert disp.shape == (3, 1, 256, 256) and disp.abs().max() <= 0.01


@pytest.mark.parametrize("size", [32, 64, 128])
def test_detail_decoder_makes_smaller_maps_with_fewer_stages(size):
    dec = DetailDecoder(181, out_size=size).eval()
    z = detail_latent(torch.randn(2, 3), torch.randn(2, 50), torch.randn(2, 128))
    assert dec(z).shape == (2, 1, size, size)
    assert len(dec.stages) == {32: 2, 64: 3, 128: 4}[size]
    assert sum(p.numel() for p in dec.parameters()) < sum(p.numel() for p in DetailDecoder(181).parameters())


@pytest.mark.parametrize("size", [8, 96, 512])
def test_detail_decoder_refuses_a_size_it_cannot_make(size):
    with pytest.raises(ValueError, match=f"model.detail_size={size}"):
        DetailDecoder(181, out_size=size)


def test_untrained_detail_decoder_starts_flat_and_learns():
    """A fresh F_d gives D ~ 0 (under 0.05 mm; PyTorch's default init gives a ~1 mm field), and one optimiser step
    on a target map moves it: the scaled-down last layer keeps every gradient path open."""
    torch.manual_seed(0)
    dec = DetailDecoder(181)
    z = detail_latent(torch.randn(4, 3), torch.randn(4, 50), torch.randn(4, 128))
    start = dec(z)
    assert start.abs().max() < 5e-5
    opt = torch.optim.Adam(dec.parameters(), lr=1e-3)
    first = dec.stages[0].conv.weight.detach().clone()
    for _ in range(2):
        opt.zero_grad()
        (dec(z) - 0.002).abs().mean().backward()
        opt.step()
    assert not torch.equal(first, dec.stages[0].conv.weight)
    assert dec(z).mean() > start.mean() + 2e-5  # moved towards the +2 mm target


def test_official_checkpoint_round_trip_with_fresh_weights(tmp_path):
    torch.manual_seed(0)
    e_flame, e_detail, d_detail = _official_encoder(236).eval(), _official_encoder(128).eval(), _official_generator().eval()
    for i, m in enumerate((e_flame, e_detail, d_detail)):
        _randomise_bn(m, i)
    path = tmp_path / "deca_model.tar"
    torch.save({"E_flame": e_flame.state_dict(), "E_detail": e_detail.state_dict(), "D_detail": d_detail.state_dict(),
                "opt": {"lr": torch.tensor(1e-4)}}, path)
    ours = {"coarse_encoder": ResnetEncoder(236).eval(), "detail_encoder": ResnetEncoder(128).eval(),
            "detail_decoder": DetailDecoder(181).eval()}
    report = load_weights(path, ours, strict=True)
    assert report.format == "official DECA" and report.complete
    assert not any(report.unexpected.values())
    image = torch.rand(2, 3, 224, 224)
    z = torch.randn(2, 181)
    with torch.no_grad():
        torch.testing.assert_close(ours["coarse_encoder"](image), e_flame(image))
        torch.testing.assert_close(ours["detail_encoder"](image), e_detail(image))
        torch.testing.assert_close(ours["detail_decoder"](z), d_detail(z))


def test_decalite_checkpoint_loads_through_the_same_entry_point(tmp_path):
    src = {"coarse_encoder": ResnetEncoder(236, "resnet18"), "detail_decoder": DetailDecoder(181)}
    state = {f"model.{name}.{k}": v for name, m in src.items() for k, v in m.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "last.ckpt")
    dst = {"coarse_encoder": ResnetEncoder(236, "resnet18"), "detail_decoder": DetailDecoder(181)}
    report = load_weights(tmp_path / "last.ckpt", dst, strict=True)
    assert report.format == "decalite"
    for name in src:
        for k, v in src[name].state_dict().items():
            torch.testing.assert_close(dst[name].state_dict()[k], v)


def test_missing_and_unexpected_keys_are_reported(tmp_path):
    dec = _official_generator()
    state = dec.state_dict()
    state.pop("conv_blocks.21.weight")
    state["conv_blocks.99.weight"] = torch.zeros(1)
    torch.save({"D_detail": state}, tmp_path / "partial.tar")
    report = load_weights(tmp_path / "partial.tar", {"detail_decoder": DetailDecoder(181)})
    assert report.missing["detail_decoder"] == ["out_conv.weight"]
    assert report.unexpected["detail_decoder"] == ["conv_blocks.99.weight"]
    with pytest.raises(AssetError, match="incomplete"):
        load_weights(tmp_path / "partial.tar", {"detail_decoder": DetailDecoder(181)}, strict=True)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unsafe_and_bad_files_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    with open(tmp_path / "evil.tar", "wb") as f:
        pickle.dump({"E_flame": payload}, f)
    with pytest.raises(AssetError, match="evil.tar"):
        load_weights(tmp_path / "evil.tar", {"coarse_encoder": ResnetEncoder(236, "resnet18")})
    assert not marker.exists()
    torch.save({"E_flame": {"layers.0.weight": "not a tensor"}}, tmp_path / "strings.tar")
    with pytest.raises(AssetError, match="not a state dict of tensors"):
        load_weights(tmp_path / "strings.tar", {"coarse_encoder": ResnetEncoder(236, "resnet18")})
    (tmp_path / "trunc.tar").write_bytes((tmp_path / "strings.tar").read_bytes()[:50])
    with pytest.raises(AssetError, match="trunc.tar"):
        load_weights(tmp_path / "trunc.tar", {"coarse_encoder": ResnetEncoder(236, "resnet18")})
    with pytest.raises(AssetError, match="not found"):
        load_weights(tmp_path / "nope.tar", {})
