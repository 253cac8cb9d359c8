"""Synthetic training data with full ground truth: FLAME heads rendered with identity-specific details.

It renders with the FLAME layer and renderer that :mod:`decalite.model.factory` builds, so it sits with the tools above
the builders (not inside ``data/``, whose shard format it writes). One concept per module: :mod:`~decalite.synth.config` (what to generate), :mod:`~decalite.synth.details` (the detail model),
:mod:`~decalite.synth.sampling` (random draws), :mod:`~decalite.synth.cameras`, :mod:`~decalite.synth.generator`
(rendering), :mod:`~decalite.synth.record` (crops and meta), :mod:`~decalite.synth.writer` (shards + manifest).
"""

from __future__ import annotations

from decalite.geometry.camera import crop_camera
from decalite.synth.cameras import face_camera
from decalite.synth.config import GENERATOR_NAME, SYNTH_VERSION, SyntheticConfig
from decalite.synth.details import DETAIL_DIM, DETAIL_LAYOUT, DetailModel
from decalite.synth.generator import SyntheticGenerator, generate_identity
from decalite.synth.sampling import identity_seed
from decalite.synth.writer import SHARD_PATTERN, write_synthetic_dataset

__all__ = [
    "DETAIL_DIM",
    "DETAIL_LAYOUT",
    "GENERATOR_NAME",
    "SHARD_PATTERN",
    "SYNTH_VERSION",
    "DetailModel",
    "SyntheticConfig",
    "SyntheticGenerator",
    "crop_camera",
    "face_camera",
    "generate_identity",
    "identity_seed",
    "write_synthetic_dataset",
]
