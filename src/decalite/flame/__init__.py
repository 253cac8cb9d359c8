"""The FLAME head model: pure LBS functions, the FlameLayer module, safe asset loading and the generated head.

Build a layer from the flame config group with :func:`decalite.model.factory.build_flame` (or
:func:`decalite.model.factory.load_flame_layer`).
"""

from __future__ import annotations

from decalite.flame.model_data import AlbedoData, FlameModelData, LandmarkEmbedding

__all__ = ["AlbedoData", "FlameModelData", "LandmarkEmbedding"]
