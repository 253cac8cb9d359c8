"""File input/output helpers shared across decalite (restricted unpickling of asset files)."""

from __future__ import annotations

from decalite.io.safe_pickle import (
    ALLOWED_GLOBALS,
    ChumpyStandIn,
    RestrictedUnpickler,
    SparseStandIn,
    chumpy_to_numpy,
    safe_load_npy_pickle,
    safe_load_pickle,
)

__all__ = [
    "ALLOWED_GLOBALS",
    "ChumpyStandIn",
    "RestrictedUnpickler",
    "SparseStandIn",
    "chumpy_to_numpy",
    "safe_load_npy_pickle",
    "safe_load_pickle",
]
