"""ID-MRF: the distance against an independent numpy computation, the loss on a random-init VGG19, weight loading."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from decalite.errors import AssetError
from decalite.losses.mrf import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGG19_FILENAME,
    VGG19Features,
    id_mrf_distance,
    id_mrf_loss,
    load_vgg19_features,
)


def numpy_id_mrf(gen: np.ndarray, tar: np.ndarray, h: float = 0.5, eps: float = 1e-5) -> float:
    """The ID-MRF distance of one sample written out with loops. gen, tar: (C, H, W)."""
    g = [gen[:, i, j] for i in range(gen.shape[1]) for j in range(gen.shape[2])]
    t = [tar[:, i, j] for i in range(tar.shape[1]) for j in range(tar.shape[2])]
    mu = sum(t) / len(t)
    g = [(v - mu) / math.sqrt(float((v - mu) @ (v - mu))) for v in g]
    t = [(v - mu) / math.sqrt(float((v - mu) @ (v - mu))) for v in t]
    cs = np.zeros((len(g), len(t)))
    for i, gi in enumerate(g):
        d = [1.0 - float(gi @ tj) for tj in t]
        dmin = min(d)
        w = [math.exp((1.0 - dj / (dmin + eps)) / h) for dj in d]
        for j in range(len(t)):
            cs[i, j] = w[j] / sum(w)
    score = sum(max(cs[i, j] for i in range(len(g))) for j in range(len(t))) / len(t)
    return -math.log(score)


def test_distance_matches_numpy_hand_computation():
    rng = np.random.default_rng(3)
    gen = rng.normal(size=(1, 4, 2, 2))
    tar = rng.normal(size=(1, 4, 2, 2))
    got = id_mrf_distance(torch.from_numpy(gen), torch.from_numpy(tar))
    assert got.shape == (1,) and got.dtype == torch.float64
    assert got.item() == pytest.approx(numpy_id_mrf(gen[0], tar[0]), rel=1e-9, abs=1e-12)
    # Other bandwidth and eps are passed through.
    got = id_mrf_distance(torch.from_numpy(gen), torch.from_numpy(tar), bandwidth=0.2, eps=1e-3)
    assert got.item() == pytest.approx(numpy_id_mrf(gen[0], tar[0], h=0.2, eps=1e-3), rel=1e-9)


def literal_id_mrf(gen: torch.Tensor, tar: torch.Tensor, h: float = 0.5, eps: float = 1e-5) -> torch.Tensor:
    """The docstring's steps one by one, batched: relative distance, exp, normalise, max, mean, -log."""
    g, t = gen.flatten(2), tar.flatten(2)
    mu = t.mean(2, keepdim=True)
    g = (g - mu) / (g - mu).norm(dim=1, keepdim=True)
    t = (t - mu) / (t - mu).norm(dim=1, keepdim=True)
    d = 1 - torch.einsum("bci,bcj->bij", g, t)
    w = torch.exp((1 - d / (d.min(dim=2, keepdim=True).values + eps)) / h)
    cs = w / w.sum(dim=2, keepdim=True)
    return -torch.log(cs.max(dim=1).values.mean(dim=1))


def test_distance_equals_the_literal_formula_with_gradients():
    torch.manual_seed(2)
    tar = torch.randn(2, 32, 12, 12)
    gen = (tar + 0.7 * torch.randn_like(tar)).requires_grad_(True)
    gen_ref = gen.detach().clone().requires_grad_(True)
    got, want = id_mrf_distance(gen, tar), literal_id_mrf(gen_ref, tar)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(gen.grad, gen_ref.grad, rtol=1e-4, atol=1e-7)


def test_distance_zero_for_identical_larger_for_different():
    torch.manual_seed(0)
    tar = torch.randn(2, 8, 5, 5)
    same = id_mrf_distance(tar.clone(), tar)
    assert same.shape == (2,) and same.abs().max() < 1e-4
    noise = torch.randn_like(tar)
    # Small noise keeps every patch's nearest match by a wide margin, so the distance saturates at ~0 ...
    assert id_mrf_distance(tar + 0.05 * noise, tar).abs().max() < 1e-4
    # ... and it grows as matches get ambiguous, then lost.
    mid, large = id_mrf_distance(tar + 0.5 * noise, tar), id_mrf_distance(tar + 1.0 * noise, tar)
    far = id_mrf_distance(torch.randn(2, 8, 5, 5), tar)
    assert (mid > 0.05).all() and (large > mid).all() and (far > large).all()
    # A generated map that copies a single target patch everywhere leaves the others unmatched: log(N_t)-ish.
    copy_one = tar[:, :, :1, :1].expand_as(tar).contiguous()
    assert (id_mrf_distance(copy_one, tar) > 0.9 * math.log(25)).all()


def test_distance_per_sample_and_shape_errors():
    torch.manual_seed(1)
    gen, tar = torch.randn(3, 6, 4, 4), torch.randn(3, 6, 4, 4)
    batched = id_mrf_distance(gen, tar)
    alone = torch.cat([id_mrf_distance(gen[i : i + 1], tar[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, alone)  # samples do not see each other (per-sample centring)
    with pytest.raises(ValueError):
        id_mrf_distance(gen[0], tar[0])
    with pytest.raises(ValueError):
        id_mrf_distance(gen, tar[:, :5])


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    torch.manual_seed(0)
    return load_vgg19_features(None, random_init=True)


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)


def test_vgg_features_frozen_eval_and_shapes(vgg):
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training and not vgg.features.training
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    out = vgg(x)
    assert out["relu3_2"].shape == (1, 256, 16, 16) and out["relu4_2"].shape == (1, 512, 8, 8)
    out["relu4_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert set(vgg(x, layers=["relu3_2"])) == {"relu3_2"}
    with pytest.raises(ValueError):
        vgg(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError):
        vgg(x, layers=["relu5_1"])


def test_loss_zero_for_identical_positive_otherwise_with_gradient(vgg, images):
    target, other = images
    assert id_mrf_loss(vgg, target.clone(), target).item() == pytest.approx(0.0, abs=1e-3)
    pred = other.clone().requires_grad_(True)
    loss = id_mrf_loss(vgg, pred, target)
    assert loss.ndim == 0 and loss.item() > 0.1
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in vgg.parameters())


def test_loss_layer_weights(vgg, images):
    target, pred = images
    feats_p, feats_t = vgg(pred), vgg(target)
    l3 = id_mrf_distance(feats_p["relu3_2"], feats_t["relu3_2"]).mean()
    l4 = id_mrf_distance(feats_p["relu4_2"], feats_t["relu4_2"]).mean()
    torch.testing.assert_close(id_mrf_loss(vgg, pred, target), l3 + 2 * l4)  # default: paper's 1 and 2
    torch.testing.assert_close(id_mrf_loss(vgg, pred, target, {"relu3_2": 1.0, "relu4_2": 0.0}), l3)
    torch.testing.assert_close(id_mrf_loss(vgg, pred, target, {"relu4_2": 0.5}), 0.5 * l4)
    assert id_mrf_loss(vgg, pred, target, {"relu3_2": 0.0}).item() == 0.0
    # The batch is averaged, not summed (the official code sums).
    torch.testing.assert_close(
        id_mrf_loss(vgg, pred, target),
        (id_mrf_loss(vgg, pred[:1], target[:1]) + id_mrf_loss(vgg, pred[1:], target[1:])) / 2,
    )
    with pytest.raises(ValueError):
        id_mrf_loss(vgg, pred, target, {"conv4_2": 1.0})
    with pytest.raises(ValueError):
        id_mrf_loss(vgg, pred, target[:, :, :32])


def test_missing_weights_raise_asset_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(AssetError) as info:
        load_vgg19_features(None)
    msg = str(info.value)
    assert VGG19_FILENAME in msg and "TORCH_HOME" in msg and "IMAGENET1K_V1" in msg
    with pytest.raises(AssetError, match="file not found") as info:
        load_vgg19_features(tmp_path / "nowhere" / VGG19_FILENAME)
    assert VGG19_FILENAME in str(info.value)
    with pytest.raises(ValueError):
        load_vgg19_features(tmp_path, random_init=True)


@pytest.fixture(scope="module")
def torchvision_vgg19(tmp_path_factory) -> tuple[torchvision.models.VGG, str]:
    """A random torchvision VGG19 and its full state dict (classifier included) saved like the real file."""
    torch.manual_seed(7)
    model = torchvision.models.vgg19(weights=None).eval()
    folder = tmp_path_factory.mktemp("torch_home") / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    path = folder / VGG19_FILENAME
    torch.save(model.state_dict(), path)
    return model, str(path)


def test_torchvision_state_dict_loads_and_matches(torchvision_vgg19, monkeypatch):
    model, path = torchvision_vgg19
    for source in (path, str(Path(path).parent)):  # the file, then its folder
        vgg = load_vgg19_features(source)
        for key, value in vgg.state_dict().items():
            torch.testing.assert_close(value, model.state_dict()[key], rtol=0, atol=0)
    # path=None finds the file in $TORCH_HOME/hub/checkpoints.
    monkeypatch.setenv("TORCH_HOME", str(Path(path).parents[2]))  # <TORCH_HOME>/hub/checkpoints/<file>
    vgg = load_vgg19_features(None)
    x = torch.rand(2, 3, 48, 48)
    h = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = {}
    with torch.no_grad():
        for i, layer in enumerate(model.features[:23]):
            h = layer(h)
            expected[i] = h.clone()
        got = vgg(x)
    torch.testing.assert_close(got["relu3_2"], expected[13])
    torch.testing.assert_close(got["relu4_2"], expected[22])


def test_bad_state_dicts_raise_clear_errors(torchvision_vgg19, tmp_path):
    model, _ = torchvision_vgg19
    features = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}

    missing = dict(features)
    del missing["features.21.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(AssetError, match=r"missing 1 key\(s\): features\.21\.weight"):
        load_vgg19_features(tmp_path / "missing.pth")

    reshaped = dict(features)
    reshaped["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(reshaped, tmp_path / "shape.pth")
    with pytest.raises(AssetError, match=r"features\.0\.weight has shape \(64, 1, 3, 3\), expected \(64, 3, 3, 3\)"):
        load_vgg19_features(tmp_path / "shape.pth")

    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(AssetError, match="not a state dict"):
        load_vgg19_features(tmp_path / "tensor.pth")

    (tmp_path / "garbage.pth").write_bytes(b"not a torch file")
    with pytest.raises(AssetError, match="torch.load"):
        load_vgg19_features(tmp_path / "garbage.pth")

    # A bare `features` state dict (keys without the prefix) is accepted too, also in the legacy (pre-zip)
    # serialisation that older torchvision files use (it cannot be memory-mapped).
    bare = {k.removeprefix("features."): v for k, v in features.items()}
    torch.save(bare, tmp_path / "bare.pth", _use_new_zipfile_serialization=False)
    vgg = load_vgg19_features(tmp_path / "bare.pth")
    torch.testing.assert_close(vgg.features[21].weight, features["features.21.weight"], rtol=0, atol=0)
