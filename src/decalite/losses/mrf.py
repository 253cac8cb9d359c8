"""ID-MRF: the implicit-diversified Markov-random-field loss on VGG19 features (DECA's L_mrf).

Reference: Yi Wang, Xin Tao, Xiaojuan Qi, Xiaoyong Shen, Jiaya Jia, "Image Inpainting via Generative
Multi-column Convolutional Neural Networks", NeurIPS 2018 (section 3.2, ID-MRF regularisation). DECA
(Feng et al. 2021, eq. for L_mrf) uses it on the detail render: ``L_mrf = 2 L_M(conv4_2) + L_M(conv3_2)``.

The layer names follow torchvision's VGG19 ``features`` stack; like both public implementations, decalite takes
the features after the ReLU (``relu3_2``, ``relu4_2``) for the paper's ``conv3_2`` / ``conv4_2``.

Weights: torchvision's ImageNet VGG19 file (``vgg19-dcbb9e9d.pth``, ``VGG19_Weights.IMAGENET1K_V1``). No wheel
ships it and nothing here downloads it: :func:`load_vgg19_features` reads it from a configured path or from
``$TORCH_HOME/hub/checkpoints`` and otherwise raises :class:`~decalite.errors.AssetError` saying what to
place where.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from decalite.errors import AssetError

#: torchvision's file name for VGG19 ImageNet weights (``torchvision.models.VGG19_Weights.IMAGENET1K_V1``).
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILENAME}"
VGG19_WHAT = f"VGG19 ImageNet weights ({VGG19_FILENAME})"
VGG19_EXPECTED = (
    "torchvision's VGG19 ImageNet state dict readable by torch.load(weights_only=True): a dict of tensors "
    "with at least 'features.0.weight' ... 'features.21.bias' (conv1_1 ... conv4_2; deeper layers and the "
    "classifier are ignored)"
)
VGG19_HOW_TO_OBTAIN = (
    f"Get torchvision's VGG19_Weights.IMAGENET1K_V1 file {VGG19_FILENAME} (on a machine with internet: "
    f"python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\", or download "
    f"{VGG19_URL}) and place it at the configured path, or in $TORCH_HOME/hub/checkpoints "
    "(default ~/.cache/torch/hub/checkpoints). Or set the ID-MRF loss weight to 0 to train without it"
)

#: ImageNet normalisation used by torchvision's VGG19 weights (RGB).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# VGG19 ("configuration E") up to conv4_2: output channels of each 3x3 conv, "M" = 2x2 max-pool.
_VGG19_TO_CONV4_2 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512)

#: Index in torchvision's ``vgg19().features`` whose output is each feature layer decalite exposes.
FEATURE_LAYERS: Mapping[str, int] = MappingProxyType({"relu3_2": 13, "relu4_2": 22})

#: DECA's ID-MRF layer weights (paper: 2 L_M(conv4_2) + L_M(conv3_2)).
DEFAULT_LAYER_WEIGHTS: Mapping[str, float] = MappingProxyType({"relu3_2": 1.0, "relu4_2": 2.0})


def _vgg19_layers() -> nn.Sequential:
    """torchvision's ``vgg19().features[:23]`` (conv1_1 ... relu4_2), same module indices, fresh weights."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG19_TO_CONV4_2:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1)
            # torchvision's VGG initialisation, so random-init features keep their scale through the stack.
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=False)]
            in_ch = int(item)
    return nn.Sequential(*layers)


class VGG19Features(nn.Module):
    """Frozen VGG19 feature extractor: ImageNet-normalises RGB images in [0, 1] and returns relu3_2 / relu4_2.

    The module holds torchvision's ``vgg19().features`` truncated after relu4_2 (module indices and state-dict
    keys ``features.<i>.weight`` as in torchvision). Its parameters never require gradients and it stays in
    eval mode (``train()`` is a no-op), but gradients flow through it to the input.

    Build it with :func:`load_vgg19_features`; a bare ``VGG19Features()`` has random weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg19_layers()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> VGG19Features:
        """Stay in eval mode whatever the caller asks (a frozen loss network)."""
        return super().train(False)

    def forward(self, images: torch.Tensor, layers: Iterable[str] = tuple(FEATURE_LAYERS)) -> dict[str, torch.Tensor]:
        """Features of ``images``.

        Args:
            images: (B, 3, H, W) RGB in [0, 1].
            layers: which of ``"relu3_2"`` (B, 256, H/4, W/4) and ``"relu4_2"`` (B, 512, H/8, W/8) to return;
                the stack stops after the deepest one asked for.

        Returns:
            dict layer name -> feature map.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"VGG19Features expects (B, 3, H, W) RGB images, got {tuple(images.shape)}")
        wanted = {}
        for name in layers:
            if name not in FEATURE_LAYERS:
                raise ValueError(f"unknown VGG19 feature layer {name!r}; available: {sorted(FEATURE_LAYERS)}")
            wanted[FEATURE_LAYERS[name]] = name
        out: dict[str, torch.Tensor] = {}
        if not wanted:
            return out
        x = (images - self.mean) / self.std
        last = max(wanted)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
            if i == last:
                break
        return out


def _default_weights_path() -> Path:
    """Where torchvision caches VGG19 weights: ``torch.hub.get_dir()/checkpoints`` ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def _asset_error(path: str | os.PathLike[str] | None, problem: str) -> AssetError:
    return AssetError(path, problem, what=VGG19_WHAT, expected=VGG19_EXPECTED, how_to_obtain=VGG19_HOW_TO_OBTAIN)


def _read_state_dict(path: Path) -> Mapping[str, object]:
    from decalite.io.torch_files import check_torch_file

    try:
        check_torch_file(path)  # declared sizes against the file's bytes, before torch allocates them
    except AssetError as err:
        raise err.add_context(what=VGG19_WHAT, expected=VGG19_EXPECTED, how_to_obtain=VGG19_HOW_TO_OBTAIN)
    try:
        # The zip format can be memory-mapped, so the 400 MB classifier is never read; the legacy format cannot.
        mmap = zipfile.is_zipfile(path)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # any failure to read the file is reported as an asset problem
        raise _asset_error(path, f"torch.load(weights_only=True) failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, Mapping):
        raise _asset_error(path, f"it holds a {type(state).__name__}, not a state dict")
    return state


def _first(items: list[str], n: int, sep: str) -> str:
    return sep.join(items[:n]) + (" ..." if len(items) > n else "")


def _features_state(path: Path, state: Mapping[str, object], model: VGG19Features) -> dict[str, torch.Tensor]:
    """Pick the tensors the truncated stack needs; accepts a full VGG19 state dict or a bare ``features`` one."""
    picked: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    wrong: list[str] = []
    for key, param in model.state_dict().items():  # keys "features.<i>.weight" / "features.<i>.bias"
        value = state.get(key, state.get(key.removeprefix("features.")))
        if value is None:
            missing.append(key)
        elif not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(param.shape):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            wrong.append(f"{key} has shape {got}, expected {tuple(param.shape)}")
        else:
            picked[key] = value
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {_first(missing, 6, ', ')}")
        if wrong:
            parts.append(f"{len(wrong)} tensor(s) of the wrong shape: {_first(wrong, 4, '; ')}")
        sample = ", ".join(list(state)[:4])
        raise _asset_error(
            path, f"not a torchvision VGG19 state dict ({'; '.join(parts)}; its first keys: {sample or 'none'})"
        )
    return picked


def load_vgg19_features(path: str | os.PathLike[str] | None, random_init: bool = False) -> VGG19Features:
    """Build :class:`VGG19Features` from torchvision's ImageNet VGG19 weights.

    Args:
        path: the state-dict file ``vgg19-dcbb9e9d.pth`` (or a folder holding it). None looks in
            ``$TORCH_HOME/hub/checkpoints`` (where torchvision caches it). Nothing is downloaded.
        random_init: return randomly initialised weights and read nothing (tests, mechanics, benchmarks only:
            random features make ID-MRF a generic patch-statistics loss, not DECA's).

    Raises:
        AssetError: the file is absent (the message names it and says how to get it), unreadable, or not a
            VGG19 state dict (missing keys or wrong shapes, listed).
        ValueError: both a path and ``random_init=True`` were given.
    """
    if random_init:
        if path is not None:
            raise ValueError("load_vgg19_features: pass a weights path or random_init=True, not both")
        return VGG19Features()
    if path is None:
        file = _default_weights_path()
        if not file.is_file():
            raise _asset_error(
                file,
                "no VGG19 weights path is configured and the file is not in $TORCH_HOME/hub/checkpoints "
                f"(TORCH_HOME={os.environ.get('TORCH_HOME', '<unset: ~/.cache/torch>')})",
            )
    else:
        file = Path(path)
        if file.is_dir():
            file = file / VGG19_FILENAME
        if not file.is_file():
            raise _asset_error(file, "file not found")
    model = VGG19Features()
    picked = _features_state(file, _read_state_dict(file), model)
    model.load_state_dict(picked, strict=True)
    return model


def id_mrf_distance(
    gen_feat: torch.Tensor, tar_feat: torch.Tensor, bandwidth: float = 0.5, eps: float = 1e-5
) -> torch.Tensor:
    """ID-MRF distance L_M between generated and target features on one layer (1x1 patches), per sample.

    Wang et al., "Image Inpainting via Generative Multi-column CNNs" (NeurIPS 2018), section 3.2, in the
    contextual-similarity form that both public implementations (GMCNN's and DECA's ``IDMRFLoss``) compute.
    With g_i the generated and t_j the target channel vectors of one sample (i over N_g = H*W generated
    positions, j over N_t target positions):

    1. centre by the target's mean feature:  mu = mean_j t_j  (C,);  g_i <- g_i - mu,  t_j <- t_j - mu
    2. L2-normalise each channel vector:  g_i <- g_i / |g_i|,  t_j <- t_j / |t_j|
    3. cosine distance:  d_ij = 1 - <g_i, t_j>                                   (N_g, N_t)
    4. relative distance:  r_ij = d_ij / (min_k d_ik + eps)                      (N_g, N_t)
    5. contextual similarity, normalised over targets:
       w_ij = exp((1 - r_ij) / h),  cs_ij = w_ij / sum_k w_ik                     (N_g, N_t)
    6. each target patch's best match among the generated ones, averaged over targets:
       L_M = -log( (1 / N_t) sum_j max_i cs_ij )                                  ()

    L_M is ~0 when every target patch is matched by a generated patch that is much closer to it than to any
    other target patch (identical feature maps give ~0), and grows as target patches lose their matches
    (the "diversified" part: many generated patches copying one target patch only score once).

    Differences from the official PyTorch code (GMCNN's, copied into DECA's ``lossfunc.IDMRFLoss``), chosen
    to follow the paper and the original TensorFlow implementation:
    - it centres by the mean over *channels* at each position (``mean(tar, 1)``); decalite subtracts the
      target's mean feature vector (mean over positions, per sample), as GMCNN's TensorFlow code does
      (over batch and positions there; decalite keeps samples independent);
    - it uses (1 - cos) / 2; decalite uses 1 - cos (identical up to the effective eps);
    - it divides by |x| without a floor (NaN for a zero vector); decalite uses ``F.normalize``.

    Cost: dense (B, N_g, N_t) matrices; at relu3_2 of a 224x224 image N = 3136, so each is 39 MB per image in
    float32 and autograd keeps two of them (the distances and the softmax).

    Args:
        gen_feat: (B, C, H, W) features of the generated image (gradients flow through it).
        tar_feat: (B, C, H', W') features of the target image.
        bandwidth: h, the similarity bandwidth (0.5 in GMCNN and DECA).
        eps: the epsilon in the relative distance (1e-5 in both).

    Returns:
        (B,) the distance per sample, >= 0.
    """
    if gen_feat.ndim != 4 or tar_feat.ndim != 4:
        raise ValueError(
            "id_mrf_distance expects (B, C, H, W) feature maps, got "
            f"{tuple(gen_feat.shape)} and {tuple(tar_feat.shape)}"
        )
    if gen_feat.shape[:2] != tar_feat.shape[:2]:
        raise ValueError(
            f"batch and channel sizes differ: generated {tuple(gen_feat.shape)}, target {tuple(tar_feat.shape)}"
        )
    gen = gen_feat.flatten(2)  # (B, C, H, W) -> (B, C, N_g)
    tar = tar_feat.flatten(2)  # (B, C, H', W') -> (B, C, N_t)
    mean_t = tar.mean(dim=2, keepdim=True)  # (B, C, 1)
    gen = F.normalize(gen - mean_t, dim=1)
    tar = F.normalize(tar - mean_t, dim=1)
    # Steps 3-5 as one softmax over targets: exp((1 - d_ij / m_i) / h) / sum_k(...) with m_i = min_k d_ik + eps
    # equals softmax_j(-d_ij / (h m_i)); the constant exp(1/h) cancels. Fewer (B, N_g, N_t) temporaries than
    # the literal form, same values (checked against it in the tests).
    neg_dist = torch.bmm(gen.transpose(1, 2), tar)  # (B, N_g, C) @ (B, C, N_t) -> (B, N_g, N_t) cosines
    neg_dist.sub_(1.0)  # -d_ij = cos_ij - 1 (in place: bmm does not keep its output for backward)
    # max(dim) rather than amax: its backward scatters into one index instead of comparing the whole matrix.
    nearest = (-neg_dist.max(dim=2, keepdim=True).values).clamp_min(0.0)  # (B, N_g, 1): min_k d_ik
    cs = torch.softmax(neg_dist * (1.0 / (bandwidth * (nearest + eps))), dim=2)  # (B, N_g, N_t), rows sum to 1
    best = cs.max(dim=1).values  # (B, N_t): max over generated patches
    return -torch.log(best.mean(dim=1))  # (B,)


def id_mrf_loss(
    features: VGG19Features,
    pred: torch.Tensor,
    target: torch.Tensor,
    layer_weights: Mapping[str, float] = DEFAULT_LAYER_WEIGHTS,
    bandwidth: float = 0.5,
) -> torch.Tensor:
    """DECA's ID-MRF loss: ``sum_l w_l * mean_b L_M(VGG_l(pred)_b, VGG_l(target)_b)``.

    The paper's weights (Wang et al. 2018, and DECA: ``L_mrf = 2 L_M(conv4_2) + L_M(conv3_2)``) are the default
    ``{"relu3_2": 1.0, "relu4_2": 2.0}``. The official code reaches the same weights another way
    (``feat_style_layers = {relu3_2: 1, relu4_2: 1}`` plus ``feat_content_layers = {relu4_2: 1}``, with
    ``lambda_style = lambda_content = 1``), so the layer weights agree; where it deviates is the reduction: it
    *sums* L_M over the batch, so its value (and its effective weight 0.05) scales with the batch size.
    decalite follows the paper and averages over the batch. In DECA's trainer the loss compares the
    visibility-masked UV textures (face region cropped and resized to 256x256); that is the caller's business.

    Args:
        features: the frozen VGG19 (see :func:`load_vgg19_features`).
        pred: (B, 3, H, W) rendered/generated RGB in [0, 1]; gradients flow to it.
        target: (B, 3, H, W) RGB in [0, 1].
        layer_weights: layer name ("relu3_2", "relu4_2") -> weight; layers with weight 0 are not computed.
        bandwidth: h of :func:`id_mrf_distance`.

    Returns:
        () the weighted loss.
    """
    if pred.ndim != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
        raise ValueError(
            f"id_mrf_loss expects pred and target of the same shape (B, 3, H, W), got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    unknown = set(layer_weights) - set(FEATURE_LAYERS)
    if unknown:
        raise ValueError(f"unknown ID-MRF layer(s) {sorted(unknown)}; available: {sorted(FEATURE_LAYERS)}")
    active = {name: float(w) for name, w in layer_weights.items() if float(w) != 0.0}
    if not active:
        return pred.new_zeros(())
    gen = features(pred, layers=active)
    tar = features(target, layers=active)  # builds no graph unless target requires grad (VGG is frozen)
    loss = pred.new_zeros(())
    for name, w in active.items():
        loss = loss + w * id_mrf_distance(gen[name], tar[name], bandwidth=bandwidth).mean()
    return loss
