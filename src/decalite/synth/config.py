"""What the synthetic-data generator makes: :class:`SyntheticConfig`, and the generator's version tag."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from decalite.config import CodeSizes
from decalite.data import shards

#: Bumped whenever the generator's output for a given configuration changes.
SYNTH_VERSION = 1
#: Stored in every manifest and sample (a format tag, kept as first written so datasets stay byte-identical;
#: the generator now lives in :mod:`decalite.synth`).
GENERATOR_NAME = f"decalite.data.synthetic v{SYNTH_VERSION}"


@dataclass
class SyntheticConfig:
    """What to generate. Angles in degrees (config-friendly), jaw in radians, sizes in pixels.

    Attributes:
        identities: number of identities.
        images_per_identity: K, images per identity.
        size: side of the stored crops (shards' ``size``).
        render_size: side of the rendered images (the crop is warped out of them).
        uv_size: side of the UV maps (displacement, detail normals).
        backend: rasterizer backend ("auto", "torch", "nvdiffrast").
        seed: master seed.
        n_shape, n_exp, n_tex: numbers of shape, expression and albedo components used.
        shape_std, exp_std, tex_std: std of the random codes.
        exp_active, blendshape_std: for a head whose expressions are blendshapes (ARKit-named, weights in [0, 1]:
            the ICT head), the chance that a component is active in an image and the std of its weight, then
            |N(0, blendshape_std)| clamped to 1 (measured on the ICT head: with 0.2 and 0.3 none of 256 random
            draws folds the face; 0.4 folds 4, 0.6 one in ten). PCA expressions draw every component N(0, exp_std).
        yaw, pitch, roll: head pose ranges (+-, degrees), uniform.
        jaw: (min, max) jaw opening in radians, uniform; the maximum is capped at the head's jawOpen angle where
            it has one (the ICT head: 0.235 rad; beyond it ICT's lips fold).
        light_variation: 0 = plain white frontal light; 1 = the default random directional terms and tints.
        face_fraction: (min, max) landmark box side / render side, uniform (the crop covers twice that).
        max_shift: largest offset of the face centre from the render centre (NDC units).
        background_noise: std of the smooth noise added to the colour-gradient backgrounds.
        landmark_noise: std of gaussian noise added to the stored landmarks (crop pixels).
        detail_scale: multiplier of the displacement maps (0 disables details).
        detail_width: multiplier of the details' widths (:class:`~decalite.synth.details.DetailModel`'s ``width``:
            1 skin-scale, 3 about a centimetre, what a 64-128 px crop resolves).
        detail_noise: multiplier of the static noise's amplitude (DetailModel's ``noise``; 0 removes it).
        device: torch device to render on.
    """

    identities: int = 10
    images_per_identity: int = 4
    size: int = shards.DEFAULT_SIZE
    render_size: int = 224
    uv_size: int = 256
    backend: str = "auto"
    seed: int = 0
    n_shape: int = CodeSizes.n_shape
    n_exp: int = CodeSizes.n_exp
    n_tex: int = CodeSizes.n_tex
    shape_std: float = 1.0
    exp_std: float = 0.6
    exp_active: float = 0.2
    blendshape_std: float = 0.3
    tex_std: float = 1.0
    yaw: float = 40.0
    pitch: float = 20.0
    roll: float = 10.0
    jaw: tuple[float, float] = (0.0, 0.4)
    light_variation: float = 1.0
    face_fraction: tuple[float, float] = (0.38, 0.5)
    max_shift: float = 0.05
    background_noise: float = 0.08
    landmark_noise: float = 0.0
    detail_scale: float = 1.0
    detail_width: float = 1.0
    detail_noise: float = 1.0
    device: str = "cpu"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists), as stored in the manifest."""
        return json.loads(json.dumps(asdict(self)))
