"""A tiny, deterministic FLAME-like model built in memory (no licensed assets needed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pytest
import torch
import trimesh

from decalite.flame.model_data import (
    N_CONTOUR,
    N_LANDMARKS,
    N_SHAPE_TOTAL,
    N_STATIC,
    N_YAW_BINS,
    FlameModelData,
    LandmarkEmbedding,
)

RADIUS = 0.1
N_EXP_TOTAL = 100
N_POSE_FEATURES = 9 * 4


class TinyFlame(NamedTuple):
    model: FlameModelData
    embedding: LandmarkEmbedding


def _f32(array: np.ndarray) -> np.ndarray:
    """float64 values that float32 represents exactly, so float32 and float64 layers see the same model."""
    return array.astype(np.float32).astype(np.float64)


def _nearest(vertices: np.ndarray, direction: tuple[float, float, float], k: int) -> np.ndarray:
    """Indices of the k vertices nearest to the sphere point in ``direction``."""
    target = RADIUS * np.asarray(direction) / np.linalg.norm(direction)
    return np.argsort(np.linalg.norm(vertices - target, axis=1), kind="stable")[:k]


def _regressor_row(vertices: np.ndarray, directions: list[tuple[float, float, float]], k: int) -> np.ndarray:
    """A J_regressor row: the mean over ``directions`` of the mean of the k nearest vertices of each."""
    row = np.zeros(len(vertices))
    for direction in directions:
        row[_nearest(vertices, direction, k)] += 1.0 / (k * len(directions))
    return row


def build_tiny_flame(seed: int = 0) -> TinyFlame:
    rng = np.random.default_rng(seed)
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=RADIUS)
    vertices = _f32(np.asarray(mesh.vertices, dtype=np.float64))  # (162, 3)
    faces = np.asarray(mesh.faces, dtype=np.int64)  # (320, 3)
    n_vertices, n_faces = len(vertices), len(faces)

    # Joints: root at the bottom of the head, neck above it, jaw in the front-lower part, eyes at +x / -x front.
    left_eye, right_eye = (0.4, 0.3, 0.87), (-0.4, 0.3, 0.87)
    j_regressor = np.stack(
        [
            _regressor_row(vertices, [(0.0, -1.0, 0.0)], 5),
            _regressor_row(vertices, [(0.8, -0.6, 0.0), (-0.8, -0.6, 0.0)], 3),
            _regressor_row(vertices, [(0.9, -0.3, 0.3), (-0.9, -0.3, 0.3)], 3),
            _regressor_row(vertices, [left_eye], 3),
            _regressor_row(vertices, [right_eye], 3),
        ]
    )  # (5, V)
    parents = np.array([-1, 0, 1, 1, 1], dtype=np.int64)

    # Skinning: root on the bottom cap, jaw on the front-lower part (exactly zero elsewhere), neck (head) on
    # the rest, eyes one-hot on the vertices nearest to them.
    y, z = vertices[:, 1], vertices[:, 2]
    w_root = np.clip((-0.07 - y) / 0.02, 0.0, 1.0)
    w_jaw = np.clip((-0.02 - y) / 0.03, 0.0, 1.0) * np.clip(z / 0.03, 0.0, 1.0) * (1.0 - w_root)
    # Multiples of 1/64 are exact in float32, so rows sum to exactly 1 in either precision.
    w_root, w_jaw = np.round(w_root * 64) / 64, np.round(w_jaw * 64) / 64
    weights = np.zeros((n_vertices, 5))
    weights[:, 0] = w_root
    weights[:, 2] = w_jaw
    weights[:, 1] = 1.0 - w_root - w_jaw
    for joint, direction in ((3, left_eye), (4, right_eye)):
        idx = _nearest(vertices, direction, 3)
        weights[idx] = 0.0
        weights[idx, joint] = 1.0

    model = FlameModelData(
        v_template=vertices,
        faces=faces,
        shapedirs=_f32(rng.normal(scale=1e-3, size=(n_vertices, 3, N_SHAPE_TOTAL + N_EXP_TOTAL))),
        posedirs=_f32(rng.normal(scale=1e-3, size=(n_vertices, 3, N_POSE_FEATURES))),
        j_regressor=_f32(j_regressor),
        parents=parents,
        lbs_weights=weights,
        source="tests:tiny_flame",
    )

    def bary(*shape: int) -> np.ndarray:
        # Multiples of 1/1024 summing to exactly 1 in float32 and float64 (landmarks stay affine-equivariant).
        raw = rng.random((*shape, 3)) + 0.05
        out = np.round(1024 * raw / raw.sum(axis=-1, keepdims=True)) / 1024
        out[..., 2] = 1.0 - out[..., 0] - out[..., 1]
        assert (out > 0).all()
        return out

    embedding = LandmarkEmbedding(
        static_faces=rng.integers(0, n_faces, size=N_STATIC),
        static_bary=bary(N_STATIC),
        dynamic_faces=rng.integers(0, n_faces, size=(N_YAW_BINS, N_CONTOUR)),
        dynamic_bary=bary(N_YAW_BINS, N_CONTOUR),
        full_faces=rng.integers(0, n_faces, size=N_LANDMARKS),
        full_bary=bary(N_LANDMARKS),
        source="tests:tiny_flame",
    )
    return TinyFlame(model, embedding)


@pytest.fixture(scope="session")
def tiny_flame() -> TinyFlame:
    """(model, embedding) of a 162-vertex FLAME-like head; treat the arrays as read-only."""
    return build_tiny_flame()


@pytest.fixture(scope="package", autouse=True)
def _single_torch_thread() -> Iterator[None]:
    """Run these tiny-tensor tests on one intra-op thread, restoring the setting afterwards.

    With a shared, busy CPU, torch's OpenMP pool can make the gradchecks 10-50x slower (threads spin-waiting
    for a descheduled peer); one thread keeps the folder at a few seconds.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
