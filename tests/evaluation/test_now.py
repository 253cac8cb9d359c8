"""Tests of decalite.evaluation.now: NoW crop, similarity alignment, refinement, distances and summary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from decalite.apps.export import NOW_LANDMARKS as EXPORT_NOW_LANDMARKS
from decalite.evaluation.now import (
    NOW_LANDMARKS,
    apply_similarity,
    crop_scan,
    crop_sphere,
    now_distances,
    now_summary,
    refine_alignment,
    similarity_from_landmarks,
)
from decalite.geometry.distance import point_to_mesh


def _lumpy_head(subdivisions: int = 3, size: float = 80.0) -> tuple[np.ndarray, np.ndarray]:
    """A closed, asymmetric, head-sized (mm) surface: a bumpy ellipsoid (no symmetry for the alignment to slide on)."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    d = np.asarray(mesh.vertices)
    bump = 1.0 + 0.12 * np.sin(3 * d[:, 0] + 1) * np.cos(2 * d[:, 1]) + 0.08 * d[:, 2] ** 3 + 0.05 * d[:, 0] * d[:, 1]
    return size * d * np.array([0.8, 1.0, 0.9]) * bump[:, None], np.asarray(mesh.faces)


def _front_landmarks(vertices: np.ndarray) -> np.ndarray:
    """Indices of 7 well-spread vertices on the +z side, standing in for NoW's landmarks."""
    targets = np.array([[-0.5, 0.3, 1], [-0.2, 0.3, 1], [0.2, 0.3, 1], [0.5, 0.3, 1], [0, 0, 1], [-0.3, -0.4, 1],
                        [0.3, -0.4, 1]])
    d = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    t = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    return (d @ t.T).argmax(0)


def _random_similarity(seed: int, scale: float = 1.3) -> tuple[float, np.ndarray, np.ndarray]:
    rot = Rotation.random(random_state=seed).as_matrix()
    return scale, rot, np.random.default_rng(seed).normal(scale=50.0, size=3)


def test_landmark_indices_come_from_export() -> None:
    assert NOW_LANDMARKS is EXPORT_NOW_LANDMARKS == (36, 39, 42, 45, 33, 48, 54)


def test_similarity_from_landmarks_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(7, 3))
    sim = _random_similarity(1, scale=1.3)
    s, rot, t = similarity_from_landmarks(src, apply_similarity(src, sim))
    assert s == pytest.approx(1.3, abs=1e-12)
    np.testing.assert_allclose(rot, sim[1], atol=1e-12)
    np.testing.assert_allclose(t, sim[2], atol=1e-10)
    # Fixed scale: rotation and translation still exact.
    s, rot, t = similarity_from_landmarks(src, apply_similarity(src, sim), scale=1.3)
    assert s == 1.3
    np.testing.assert_allclose(rot, sim[1], atol=1e-12)
    # A mirrored target gets the best proper rotation, never a reflection.
    _, rot, _ = similarity_from_landmarks(src, src * np.array([-1.0, 1.0, 1.0]))
    assert np.linalg.det(rot) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="coincide"):
        similarity_from_landmarks(np.ones((7, 3)), src)


def test_crop_sphere_on_a_synthetic_landmark_layout() -> None:
    # 36, 39, 42, 45 (eye corners), 33 (nose bottom), 48, 54 (mouth corners), in mm.
    lmk = np.array([[-45.0, 40, 0], [-15, 40, 0], [15, 40, 0], [45, 40, 0], [0, 0, 20], [-25, -30, 5], [25, -30, 5]])
    centre, radius = crop_sphere(lmk)
    # Nose bridge (0, 40, 0): centre = (0, 0, 20) + 0.3 * (0, 40, -20); radius = 1.4 * (90 + sqrt(40^2 + 20^2)) / 2.
    np.testing.assert_allclose(centre, [0.0, 12.0, 14.0], atol=1e-12)
    assert radius == pytest.approx(1.4 * (90.0 + np.sqrt(2000.0)) / 2.0, rel=1e-14)
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(500, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    inside = centre + radius * (1 - 1e-9) * dirs * rng.uniform(0, 1, size=(500, 1)) ** (1 / 3)
    outside = centre + radius * (1 + 1e-9) * dirs * rng.uniform(1, 2, size=(500, 1))
    mask = crop_scan(np.concatenate([inside, outside]), lmk)
    assert mask.dtype == bool and mask[:500].all() and not mask[500:].any()
    # The same from the full 68 landmarks, from torch, and with the face mirrored (left and right swapped).
    full = np.zeros((68, 3))
    full[list(NOW_LANDMARKS)] = lmk
    np.testing.assert_allclose(crop_sphere(torch.tensor(full))[0], centre)
    mirrored = lmk[[3, 2, 1, 0, 4, 6, 5]] * np.array([-1.0, 1, 1])
    np.testing.assert_allclose(crop_sphere(mirrored)[0], centre * np.array([-1.0, 1, 1]), atol=1e-12)
    assert crop_sphere(mirrored)[1] == pytest.approx(radius)


def test_mesh_against_itself_under_a_similarity_gives_zero() -> None:
    vertices, faces = _lumpy_head()
    idx = _front_landmarks(vertices)
    sim = _random_similarity(2, scale=1.3)
    scan = apply_similarity(vertices, sim)
    for crop in (False, True):
        dist = now_distances(vertices, faces, vertices[idx], scan, scan[idx], crop=crop)
        assert dist.shape == ((len(scan),) if not crop else (int(crop_scan(scan, scan[idx]).sum()),))
        assert dist.max() < 1e-8


def test_refinement_repairs_noisy_landmarks_and_recovers_the_transform() -> None:
    vertices, faces = _lumpy_head()
    idx = _front_landmarks(vertices)
    sim = _random_similarity(3, scale=1.3)
    scan = apply_similarity(vertices, sim)
    noisy = scan[idx] + np.random.default_rng(3).normal(scale=4.0, size=(7, 3))  # 4 mm annotation noise
    coarse = now_distances(vertices, faces, vertices[idx], scan, noisy, crop=False, refine=False)
    fine = now_distances(vertices, faces, vertices[idx], scan, noisy, crop=False)
    assert coarse.mean() > 1.0
    assert fine.max() < 1e-4
    start = similarity_from_landmarks(vertices[idx], noisy)
    s, rot, t = refine_alignment(scan, vertices, faces, *start)
    assert s == pytest.approx(1.3, rel=1e-6)
    np.testing.assert_allclose(rot, sim[1], atol=1e-6)
    np.testing.assert_allclose(t, sim[2], atol=1e-4)


def _mean_sq(scan: np.ndarray, vertices: np.ndarray, faces: np.ndarray, sim) -> float:
    return float(np.mean(point_to_mesh(scan, apply_similarity(vertices, sim), faces)[0] ** 2))


@pytest.mark.parametrize("noise", [0.0, 2.0, 15.0])
def test_refinement_never_worsens_the_landmark_alignment(noise: float) -> None:
    vertices, faces = _lumpy_head(subdivisions=3)
    idx = _front_landmarks(vertices)
    rng = np.random.default_rng(4)
    # The "scan": a different, perturbed surface (its vertices jittered), so no transform fits exactly.
    scan_vertices, _ = _lumpy_head(subdivisions=4, size=85.0)
    scan = apply_similarity(scan_vertices + rng.normal(scale=0.5, size=scan_vertices.shape), _random_similarity(5))
    scan_idx = _front_landmarks(scan_vertices)
    scan_lmk = scan[scan_idx] + rng.normal(scale=noise, size=(7, 3))
    mask = crop_scan(scan, scan_lmk)
    start = similarity_from_landmarks(vertices[idx], scan_lmk)
    refined = refine_alignment(scan[mask], vertices, faces, *start)
    assert _mean_sq(scan[mask], vertices, faces, refined) <= _mean_sq(scan[mask], vertices, faces, start)
    assert refine_alignment(scan[mask], vertices, faces, *start, iterations=0) == start


def test_sphere_offset_by_two_mm() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=80.0)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    scan = vertices * (82.0 / 80.0)  # every scan vertex 2 mm radially outside a vertex of the inscribed mesh
    lmk = vertices[_front_landmarks(vertices)]  # the same landmark positions on both: the landmark fit is identity
    # Metrical protocol (scale fixed to 1): the 2 mm remain, refined or not (identity is optimal on the full sphere).
    for refine in (False, True):
        dist = now_distances(vertices, faces, lmk, scan, lmk, crop=False, metrical_scale=1.0, refine=refine)
        np.testing.assert_allclose(dist, 2.0, atol=1e-9)
    cropped = now_distances(vertices, faces, lmk, scan, lmk, metrical_scale=1.0, refine=False)
    assert 0 < len(cropped) < len(scan)
    np.testing.assert_allclose(cropped, 2.0, atol=1e-9)
    # On a cropped cap the refinement may slide the small sphere towards the cap: never further than 2 mm.
    refined = now_distances(vertices, faces, lmk, scan, lmk, metrical_scale=1.0)
    assert np.mean(refined**2) <= 4.0 + 1e-9 and np.median(refined) < 2.0
    # Standard protocol: the free scale absorbs a uniform offset of a sphere.
    assert now_distances(vertices, faces, lmk, scan, lmk * 82.0 / 80.0, crop=False).max() < 1e-9


def test_metrical_scale_converts_units() -> None:
    vertices, faces = _lumpy_head(size=0.08)  # metres
    idx = _front_landmarks(vertices)
    _, rot, t = _random_similarity(6)
    scan = apply_similarity(vertices, (1000.0, rot, t))  # millimetres
    assert now_distances(vertices, faces, vertices[idx], scan, scan[idx], metrical_scale=1000.0).max() < 1e-8
    assert now_distances(vertices, faces, vertices[idx], scan, scan[idx], metrical_scale=500.0).mean() > 5.0


def test_summary_by_hand() -> None:
    stats = now_summary([np.array([1.0, 2.0, 3.0]), np.array([4.0, 10.0])])
    assert stats == pytest.approx({"median": 3.0, "mean": 4.0, "std": np.sqrt(10.0)})
    assert now_summary(np.array([2.0, 4.0])) == pytest.approx({"median": 3.0, "mean": 3.0, "std": 1.0})
    with pytest.raises(ValueError):
        now_summary([])


def test_icp_fallback_alone_still_improves(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the Gauss-Newton step disabled, the ICP (Umeyama on closest points) steps carry the refinement."""
    n_params = 7
    monkeypatch.setattr("decalite.evaluation.now._gauss_newton_system",
                        lambda *a: (np.eye(n_params), np.zeros(n_params)))
    vertices, faces = _lumpy_head()
    idx = _front_landmarks(vertices)
    scan = apply_similarity(vertices, _random_similarity(7))
    noisy = scan[idx] + np.random.default_rng(7).normal(scale=4.0, size=(7, 3))
    start = similarity_from_landmarks(vertices[idx], noisy)
    refined = refine_alignment(scan, vertices, faces, *start, iterations=20)
    assert _mean_sq(scan, vertices, faces, refined) < 0.1 * _mean_sq(scan, vertices, faces, start)
