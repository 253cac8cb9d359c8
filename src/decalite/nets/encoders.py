"""Image encoders: a torchvision ResNet backbone, globally pooled, then Linear(1024) -> ReLU -> Linear(out).

DECA uses ResNet-50 (2048-d features) for both E_coarse (out 236) and E_detail (out 128); smaller backbones
(resnet18/34, 512-d) keep CPU configurations small. The layer names match torchvision's, so ImageNet weights
a user has on disk load with :func:`load_backbone_weights`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

BACKBONES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}


class ResnetEncoder(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> parameters (B, out_dim).

    Args:
        out_dim: size of the output vector.
        backbone: "resnet18", "resnet34" or "resnet50".
        hidden: width of the hidden layer of the regression head (1024 in DECA).
    """

    def __init__(self, out_dim: int, backbone: str = "resnet50", hidden: int = 1024) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {sorted(BACKBONES)}; got {backbone!r}")
        self.backbone_name = backbone
        self.backbone = getattr(torchvision.models, backbone)(weights=None)
        self.backbone.fc = nn.Identity()
        self.feature_dim = BACKBONES[backbone]
        self.head = nn.Sequential(nn.Linear(self.feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
        self.out_dim = out_dim

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, feature_dim) globally average-pooled backbone features."""
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, out_dim)."""
        return self.head(self.features(images))


def load_backbone_weights(encoder: ResnetEncoder, path: str | Path) -> list[str]:
    """Load torchvision-format ResNet weights (e.g. ImageNet) from a local file into the backbone.

    Returns the keys of the file that were not used (``fc.*`` is expected there). The file is read with
    ``torch.load(weights_only=True)``: tensors only, after :func:`~decalite.io.torch_files.check_torch_file`
    (an AssetError for a file that declares more data than it holds).
    """
    from decalite.io.torch_files import check_torch_file

    check_torch_file(path)
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    own = encoder.backbone.state_dict()
    used = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = sorted(set(own) - set(used))
    if missing:
        raise ValueError(f"{path}: not a {encoder.backbone_name} state dict; missing or mismatched: {missing[:5]}...")
    encoder.backbone.load_state_dict(used)
    return sorted(set(state) - set(used))
