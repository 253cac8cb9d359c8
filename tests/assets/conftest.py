"""Tiny in-memory FLAME-format assets for the loader/writer tests (no licensed files needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from decalite.flame.asset_writer import (
    write_albedo_npz,
    write_flame_model,
    write_landmark_embedding,
    write_obj_with_uvs,
    write_uv_mask,
)
from decalite.flame.assets import FLAME_FILES
from decalite.flame.model_data import (
    N_CONTOUR,
    N_LANDMARKS,
    N_STATIC,
    N_YAW_BINS,
    AlbedoData,
    FlameModelData,
    LandmarkEmbedding,
)
from decalite.types import UVLayout

N_VERTS = 30
N_FACES = 40
N_JOINTS = 5
N_UVS = 35
TEX_SIZE = 8
N_TEX = 4


def _rows_sum_to_one(a: np.ndarray) -> np.ndarray:
    return a / a.sum(axis=1, keepdims=True)


@pytest.fixture
def tiny_model() -> FlameModelData:
    """V=30, F=40, J=5, 300 shape + 100 expression components, FLAME's kinematic tree."""
    rng = np.random.default_rng(0)
    faces = np.stack([rng.choice(N_VERTS, size=3, replace=False) for _ in range(N_FACES)]).astype(np.int64)
    j_regressor = rng.random((N_JOINTS, N_VERTS))
    j_regressor[j_regressor < 0.6] = 0.0
    return FlameModelData(
        v_template=rng.normal(size=(N_VERTS, 3)) * 0.1,
        faces=faces,
        shapedirs=rng.normal(size=(N_VERTS, 3, 400)) * 1e-3,
        posedirs=rng.normal(size=(N_VERTS, 3, 9 * (N_JOINTS - 1))) * 1e-3,
        j_regressor=_rows_sum_to_one(j_regressor + 1e-3),
        parents=np.array([-1, 0, 1, 1, 1], dtype=np.int64),
        lbs_weights=_rows_sum_to_one(rng.random((N_VERTS, N_JOINTS))),
    )


@pytest.fixture
def tiny_embedding() -> LandmarkEmbedding:
    rng = np.random.default_rng(1)
    return LandmarkEmbedding(
        static_faces=rng.integers(0, N_FACES, size=N_STATIC).astype(np.int64),
        static_bary=rng.dirichlet(np.ones(3), size=N_STATIC),
        dynamic_faces=rng.integers(0, N_FACES, size=(N_YAW_BINS, N_CONTOUR)).astype(np.int64),
        # float32-exact values: the file stores the dynamic part as float32 tensors, like DECA's.
        dynamic_bary=rng.dirichlet(np.ones(3), size=(N_YAW_BINS, N_CONTOUR)).astype(np.float32).astype(np.float64),
        full_faces=rng.integers(0, N_FACES, size=N_LANDMARKS).astype(np.int64),
        full_bary=rng.dirichlet(np.ones(3), size=N_LANDMARKS),
    )


@pytest.fixture
def tiny_uv() -> UVLayout:
    rng = np.random.default_rng(2)
    return UVLayout(
        vertices=rng.normal(size=(N_VERTS, 3)) * 0.1,
        faces=np.stack([rng.choice(N_VERTS, size=3, replace=False) for _ in range(N_FACES)]).astype(np.int64),
        verts_uvs=rng.random((N_UVS, 2)),
        faces_uvs=rng.integers(0, N_UVS, size=(N_FACES, 3)).astype(np.int64),
    )


@pytest.fixture
def tiny_albedo() -> AlbedoData:
    """8x8 texture, 4 components; R, G and B of the mean differ everywhere (R=0.7, G=0.5, B=0.2 + noise)."""
    rng = np.random.default_rng(3)
    mean = np.empty((TEX_SIZE, TEX_SIZE, 3), dtype=np.float32)
    mean[..., 0], mean[..., 1], mean[..., 2] = 0.7, 0.5, 0.2
    mean += rng.uniform(-0.05, 0.05, size=mean.shape).astype(np.float32)
    basis = (rng.normal(size=(TEX_SIZE, TEX_SIZE, 3, N_TEX)) * 0.05).astype(np.float32)
    return AlbedoData(mean=mean, basis=basis)


@pytest.fixture
def tiny_mask() -> np.ndarray:
    """(16, 16) mask with values that 8 bits store exactly."""
    yy, xx = np.mgrid[0:16, 0:16]
    return (((xx + yy) * 8) % 256 / 255.0).astype(np.float32)


@pytest.fixture
def asset_dir(
    tmp_path: Path,
    tiny_model: FlameModelData,
    tiny_embedding: LandmarkEmbedding,
    tiny_uv: UVLayout,
    tiny_albedo: AlbedoData,
    tiny_mask: np.ndarray,
) -> Path:
    """A folder with every FLAME-format file, written by decalite's writers."""
    root = tmp_path / "flame"
    write_flame_model(root / FLAME_FILES["model"], tiny_model)
    write_landmark_embedding(root / FLAME_FILES["landmarks"], tiny_embedding)
    write_obj_with_uvs(root / FLAME_FILES["template"], tiny_uv)
    write_uv_mask(root / FLAME_FILES["face_mask"], tiny_mask)
    write_uv_mask(root / FLAME_FILES["face_eye_mask"], 1.0 - tiny_mask)
    write_albedo_npz(root / FLAME_FILES["albedo"][0], tiny_albedo)
    return root
