"""The FLAME head model: pure LBS functions, the FlameLayer module, safe asset loading and the generated head."""

from __future__ import annotations

from pathlib import Path

from decalite.flame.model_data import AlbedoData, FlameModelData, LandmarkEmbedding

__all__ = ["AlbedoData", "FlameModelData", "LandmarkEmbedding", "load_flame_layer"]


def load_flame_layer(
    flame_dir: str | Path | None = None,
    n_shape: int = 100,
    n_exp: int = 50,
    cache_dir: str | Path | None = None,
    seed: int = 0,
):
    """A :class:`~decalite.flame.layer.FlameLayer` from a FLAME folder, or from the generated head when None."""
    from decalite.flame.assets import (
        FLAME_FILES,
        load_flame_model,
        load_landmark_embedding,
    )
    from decalite.flame.default import resolve_flame_dir
    from decalite.flame.layer import FlameLayer

    root = resolve_flame_dir(flame_dir, cache_dir=cache_dir, seed=seed)
    model = load_flame_model(root / FLAME_FILES["model"])
    embedding = load_landmark_embedding(root / FLAME_FILES["landmarks"])
    return FlameLayer(model, embedding, n_shape=n_shape, n_exp=n_exp)
