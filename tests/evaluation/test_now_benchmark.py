"""Tests of decalite.evaluation.now_benchmark and ``decalite-evaluate benchmark=now``: NoW's layout, readers,
scoring with missing and corrupt files, the per-condition breakdown and the written report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from hydra import compose, initialize_config_dir
from PIL import Image
from scipy.spatial.transform import Rotation

from decalite.cli._hydra import CONF_DIR
from decalite.cli.evaluate import EvaluateConfig  # noqa: F401  (importing the tool registers its schema)
from decalite.evaluation.now import apply_similarity
from decalite.evaluation.now_benchmark import (
    NowConfig,
    NowConfigError,
    NowInputError,
    cumulative_error_curve,
    evaluate_items,
    find_prediction,
    markdown_table,
    parse_image_list,
    read_landmarks,
    read_obj,
    read_pp,
    summarise,
)

SUBJECTS = ("FaMoS_180424_03335_TA", "FaMoS_180426_03336_TA")
CONDITIONS = ("multiview_neutral", "selfie")
IMAGES = ("IMG_0101", "IMG_0102")


def _head(subdivisions: int = 3, size: float = 80.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed, asymmetric, head-sized (mm) surface and 7 vertex indices on its front standing in for NoW's."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    d = np.asarray(mesh.vertices)
    bump = 1.0 + 0.12 * np.sin(3 * d[:, 0] + 1) * np.cos(2 * d[:, 1]) + 0.08 * d[:, 2] ** 3 + 0.05 * d[:, 0] * d[:, 1]
    targets = np.array([[-0.5, 0.3, 1], [-0.2, 0.3, 1], [0.2, 0.3, 1], [0.5, 0.3, 1], [0, 0, 1], [-0.3, -0.4, 1],
                        [0.3, -0.4, 1]])
    lmk = (d @ (targets / np.linalg.norm(targets, axis=1, keepdims=True)).T).argmax(0)
    return size * d * np.array([0.8, 1.0, 0.9]) * bump[:, None], np.asarray(mesh.faces), lmk


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# test mesh"] + [f"v {x:.9f} {y:.9f} {z:.9f}" for x, y, z in vertices]
    lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


def _write_pp(path: Path, points: np.ndarray) -> None:
    """A MeshLab picked-points file, as NoW's scans_lmks_onlypp."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f' <point x="{x:.6f}" y="{y:.6f}" z="{z:.6f}" active="1" name="{i}"/>' for i, (x, y, z) in
            enumerate(points)]
    path.write_text("\n".join(['<!DOCTYPE PickedPoints>', '<PickedPoints>', ' <DocumentData>',
                               '  <DateTime time="12:00:00" date="2018-04-24"/>', '  <User name="test"/>',
                               '  <DataFileName name="scan.obj"/>', '  <templateName name=""/>', ' </DocumentData>',
                               *rows, '</PickedPoints>']) + "\n")


def _prediction(vertices: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The scan surface as a prediction: in metres, somewhere else (a random rigid motion)."""
    sim = (1e-3, Rotation.random(random_state=seed).as_matrix(), np.random.default_rng(seed).normal(scale=0.1, size=3))
    return apply_similarity(vertices, sim), sim


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict:
    """A NoW-layout folder: 2 subjects x 2 conditions x 2 images, predictions equal to the scan (error ~0).

    Subject 0 uses NoW's submission names (``<stem>.obj`` + ``.npy``); subject 1 decalite-reconstruct's
    (``<stem>/<stem>_now.obj`` + ``_now_lmk7.npy``), except one ``.ply`` + ``.txt`` pair.
    """
    root = tmp_path_factory.mktemp("now")
    verts, faces, lmk = _head()
    lines = []
    for s, subject in enumerate(SUBJECTS):
        scan = apply_similarity(verts, (1.0, Rotation.random(random_state=10 + s).as_matrix(), np.full(3, 5.0 * s)))
        _write_obj(root / "scans" / subject / "natural_head_rotation.000001.obj", scan, faces)
        _write_pp(root / "lmks" / subject / "natural_head_rotation.000001_picked_points.pp", scan[lmk])
        for c, condition in enumerate(CONDITIONS):
            for i, image in enumerate(IMAGES):
                lines.append(f"{subject}/{condition}/{image}.jpg")
                pred, _ = _prediction(verts, 100 * s + 10 * c + i)
                folder = root / "pred" / subject / condition
                if s == 0:
                    _write_obj(folder / f"{image}.obj", pred, faces)
                    np.save(folder / f"{image}.npy", pred[lmk])
                elif (c, i) == (1, 1):
                    folder.mkdir(parents=True, exist_ok=True)
                    trimesh.Trimesh(pred, faces, process=False).export(folder / f"{image}.ply")
                    np.savetxt(folder / f"{image}.txt", pred[lmk])
                else:
                    _write_obj(folder / image / f"{image}_now.obj", pred, faces)
                    np.save(folder / image / f"{image}_now_lmk7.npy", pred[lmk])
    (root / "imagepathsvalidation.txt").write_text("\n".join(lines) + "\n")
    return {"root": root, "verts": verts, "faces": faces, "lmk": lmk, "lines": lines}


def _config(root: Path, predictions: Path | None = None, **kw) -> NowConfig:
    return NowConfig(image_list=str(root / "imagepathsvalidation.txt"), scans=str(root / "scans"),
                     scan_landmarks=str(root / "lmks"), predictions=str(predictions or root / "pred"), progress=False,
                     **kw)


def _evaluate(cfg: NowConfig) -> list:
    items = parse_image_list(Path(cfg.image_list).read_text().splitlines(), challenge=cfg.challenge)
    return evaluate_items(items, Path(cfg.scans), Path(cfg.scan_landmarks), Path(cfg.predictions),
                          metrical_scale=cfg.metrical_scale, iterations=cfg.iterations, workers=cfg.workers,
                          executor=cfg.executor)


def test_parse_image_list_reads_subject_condition_and_stem() -> None:
    items = parse_image_list(["FaMoS_180424_03335_TA/multiview_neutral/IMG_0101.jpg", "", "# comment",
                              "iphone_pictures/FaMoS_2/selfie/IMG_7.JPG\r"])
    assert [(i.subject, i.condition, i.stem) for i in items] == [
        ("FaMoS_180424_03335_TA", "multiview_neutral", "IMG_0101"), ("FaMoS_2", "selfie", "IMG_7")]
    assert [i.stem for i in parse_image_list(["a/selfie/x.jpg", "a/multiview_neutral/y.jpg"], "selfie")] == ["x"]
    with pytest.raises(NowInputError, match="line 1"):
        parse_image_list(["IMG_0101.jpg"])


def test_readers(tmp_path: Path) -> None:
    points = np.arange(21, dtype=float).reshape(7, 3) / 7
    _write_pp(tmp_path / "a.pp", points)
    np.testing.assert_allclose(read_landmarks(tmp_path / "a.pp"), points, atol=1e-6)
    np.testing.assert_allclose(read_pp("<point y='2' x='1' z='3'/>"), [[1, 2, 3]])
    with pytest.raises(NowInputError, match="no <point>"):
        read_pp("<PickedPoints/>")
    np.save(tmp_path / "b.npy", np.zeros((5, 3)))
    with pytest.raises(NowInputError, match=r"b\.npy.*\(5, 3\)"):
        read_landmarks(tmp_path / "b.npy")
    # A quad, slashes and a negative index: fanned into two triangles, vertices as written.
    verts, faces = read_obj("v 0 0 0\nv 1 0 0 0.5 0.5 0.5\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1 2//1 3/1/1 -1\n"
                            "v 2 2 2\nf -1 -2 -3\n")
    assert verts.shape == (5, 3) and verts[1].tolist() == [1, 0, 0]
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3], [4, 3, 2]])
    assert read_obj("v 0 0 0\nf 1 1 1\n", faces=False)[1].shape == (0, 3)
    with pytest.raises(NowInputError, match="not 'v x y z'"):
        read_obj("v 0 0 0\nv 1 x 0\n")


def test_find_prediction_accepts_now_and_reconstruct_names(layout) -> None:
    first, last = parse_image_list([layout["lines"][0], layout["lines"][-1]])
    pred = find_prediction(layout["root"] / "pred", first)
    assert (pred.mesh.name, pred.landmarks.name) == ("IMG_0101.obj", "IMG_0101.npy")
    pred = find_prediction(layout["root"] / "pred", last)
    assert (pred.mesh.name, pred.landmarks.name) == ("IMG_0102.ply", "IMG_0102.txt")
    pred = find_prediction(layout["root"] / "pred", parse_image_list([layout["lines"][4]])[0])
    assert (pred.mesh.name, pred.landmarks.name) == ("IMG_0101_now.obj", "IMG_0101_now_lmk7.npy")


def test_exact_predictions_score_zero_with_the_breakdown(layout) -> None:
    results = _evaluate(_config(layout["root"]))
    assert [r.item.image for r in results] == layout["lines"]
    assert all(r.status == "scored" for r in results), [r.reason for r in results]
    summary = summarise(results)
    assert summary["overall"]["scored"] == 8 and summary["overall"]["median"] < 1e-6
    assert summary["overall"]["mean"] < 1e-6
    assert list(summary["conditions"]) == list(CONDITIONS)
    for row in summary["conditions"].values():
        assert (row["images"], row["scored"], row["missing"], row["failed"]) == (4, 4, 0, 0)
    assert summary["overall"]["points"] == sum(len(r.distances) for r in results)
    assert summary["missing"] == [] and summary["failed"] == []


def test_an_offset_along_the_normals_scores_the_offset(layout, tmp_path: Path) -> None:
    """A sphere pushed out along its normals by 1.5 mm scores 1.5 mm.

    Metrical protocol (scale fixed by the unit: a free scale would shrink the offset surface onto the scan), and
    landmarks spread around the sphere so that NoW's crop holds all of it: on a cropped cap a translation would
    undo most of the offset, and on a less symmetric closed surface the least-squares refinement trades some of it
    for a small rigid motion. The prediction is finely tessellated (its flat facets lie at most 0.02 mm inside the
    sphere), else the refinement would turn the scan's points towards the facets' centres.
    """
    directions = np.array([[-1, 0, 0], [0, 0.1, 1], [0, -0.1, 1], [1, 0, 0], [0, 0, -1], [0, 1, 0], [0, -1, 0]])

    def sphere(subdivisions: int, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
        verts = np.asarray(mesh.vertices)
        return verts, np.asarray(mesh.faces), verts[(verts @ directions.T).argmax(0)]

    scan, scan_faces, scan_lmk = sphere(3, 80.0)
    offset, faces, lmk = sphere(5, 81.5)
    scans, lmks = tmp_path / "scans", tmp_path / "lmks"
    _write_obj(scans / SUBJECTS[0] / "scan.obj", scan, scan_faces)
    _write_pp(lmks / SUBJECTS[0] / "scan.pp", scan_lmk)
    lines = [line for line in layout["lines"] if line.startswith(f"{SUBJECTS[0]}/multiview_neutral/")]
    for k, line in enumerate(lines):
        subject, condition, image = line.split("/")
        _, sim = _prediction(offset, k)
        _write_obj(tmp_path / "pred" / subject / condition / f"{Path(image).stem}.obj", apply_similarity(offset, sim),
                   faces)
        np.save(tmp_path / "pred" / subject / condition / f"{Path(image).stem}.npy", apply_similarity(lmk, sim))
    (tmp_path / "list.txt").write_text("\n".join(lines))
    cfg = NowConfig(image_list=str(tmp_path / "list.txt"), scans=str(scans), scan_landmarks=str(lmks),
                    predictions=str(tmp_path / "pred"), metrical=True, unit="m")
    results = _evaluate(cfg)
    assert [r.status for r in results] == ["scored", "scored"]
    assert sum(len(r.distances) for r in results) == 2 * len(scan)  # the crop kept the whole sphere
    summary = summarise(results, metrical=True, unit="m")
    assert summary["protocol"] == "NoW metrical"
    assert summary["overall"]["median"] == pytest.approx(1.5, abs=0.03)
    assert summary["overall"]["mean"] == pytest.approx(1.5, abs=0.03)
    assert summary["overall"]["std"] < 0.03


def test_missing_and_corrupt_predictions_are_named_and_the_rest_scored(layout, tmp_path: Path) -> None:
    import shutil

    pred = tmp_path / "pred"
    shutil.copytree(layout["root"] / "pred", pred)
    s0, s1 = SUBJECTS
    (pred / s0 / "selfie" / "IMG_0101.obj").unlink()  # missing mesh
    (pred / s0 / "multiview_neutral" / "IMG_0102.obj").write_text("v 1 2\nf 1 2 x\n")  # corrupt
    (pred / s1 / "multiview_neutral" / "IMG_0101" / "IMG_0101_now.obj").write_text("f 1 2 3\n")  # no vertices
    np.save(pred / s1 / "selfie" / "IMG_0101" / "IMG_0101_now_lmk7.npy", np.zeros((6, 3)))  # bad landmarks
    results = _evaluate(_config(layout["root"], pred, workers=2, executor="thread"))
    summary = summarise(results)
    assert [m["image"] for m in summary["missing"]] == [f"{s0}/selfie/IMG_0101.jpg"]
    assert "IMG_0101.obj" in summary["missing"][0]["reason"]
    failed = {f["image"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {f"{s0}/multiview_neutral/IMG_0102.jpg", f"{s1}/multiview_neutral/IMG_0101.jpg",
                           f"{s1}/selfie/IMG_0101.jpg"}
    assert "IMG_0102.obj" in failed[f"{s0}/multiview_neutral/IMG_0102.jpg"]
    assert "(6, 3)" in failed[f"{s1}/selfie/IMG_0101.jpg"]
    assert summary["overall"]["scored"] == 4 and summary["overall"]["median"] < 1e-6
    neutral, selfie = summary["conditions"]["multiview_neutral"], summary["conditions"]["selfie"]
    assert (neutral["images"], neutral["scored"], neutral["missing"], neutral["failed"]) == (4, 2, 0, 2)
    assert (selfie["images"], selfie["scored"], selfie["missing"], selfie["failed"]) == (4, 2, 1, 1)
    table = markdown_table(summary)
    assert "| multiview_neutral | 4 | 2 | 0 | 2 |" in table and f"`{s0}/selfie/IMG_0101.jpg`" in table


def test_cumulative_error_curve() -> None:
    x, pct = cumulative_error_curve(np.array([0.5, 1.0, 2.0, 9.0]), max_error=8.0, samples=17)
    assert x[0] == 0 and x[-1] == 8.0
    assert pct[0] == 0 and pct[1] == 25.0 and pct[2] == 50.0 and pct[4] == 75.0 and pct[-1] == 75.0


def test_config_errors_name_the_key(layout) -> None:
    with pytest.raises(NowConfigError, match=r"now\.image_list is not set: pass now\.image_list="):
        NowConfig().check()
    with pytest.raises(NowConfigError, match=r"now\.scans=.*does not exist"):
        NowConfig(image_list=str(layout["root"] / "imagepathsvalidation.txt"), scans="/nonexistent").check()
    with pytest.raises(NowConfigError, match=r"now\.unit"):
        _config(layout["root"], unit="inch").check()


def test_no_prediction_scored_writes_the_report_and_exits_1(layout, tmp_path: Path) -> None:
    from decalite.cli.evaluate import run_now

    root = layout["root"]
    (tmp_path / "empty").mkdir()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=["benchmark=now", f"now.image_list={root / 'imagepathsvalidation.txt'}",
                                             f"now.scans={root / 'scans'}", f"now.scan_landmarks={root / 'lmks'}",
                                             f"now.predictions={tmp_path / 'empty'}", f"output={tmp_path / 'out'}",
                                             "now.progress=false"])
    with pytest.raises(SystemExit) as exit_:
        run_now(cfg)
    assert exit_.value.code == 1
    saved = json.loads((tmp_path / "out" / "now_results.json").read_text())
    assert saved["overall"]["scored"] == 0 and saved["overall"]["median"] is None and len(saved["missing"]) == 8
    assert (tmp_path / "out" / "now_curve.png").is_file()


def test_compose_defaults_keep_the_demo_benchmark() -> None:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=["output=somewhere"])
    assert cfg.benchmark == "demo" and cfg.output == "somewhere" and cfg.now.image_list is None


def test_cli_writes_json_md_png_npz(layout, tmp_path: Path) -> None:
    root = layout["root"]
    out = tmp_path / "report"
    args = ["benchmark=now", f"now.image_list={root / 'imagepathsvalidation.txt'}", f"now.scans={root / 'scans'}",
            f"now.scan_landmarks={root / 'lmks'}", f"now.predictions={root / 'pred'}", f"output={out}",
            "now.progress=false", "threads=1"]
    proc = subprocess.run([sys.executable, "-m", "decalite.cli.evaluate", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = json.loads((out / "now_results.json").read_text())
    assert saved["overall"]["scored"] == 8 and saved["overall"]["median"] < 1e-6
    assert set(saved["conditions"]) == set(CONDITIONS) and saved["missing"] == []
    assert "| **all** | 8 | 8 | 0 | 0 |" in (out / "now_results.md").read_text()
    with Image.open(out / "now_curve.png") as img:
        assert img.size[0] > 100 and img.size[1] > 100
    with np.load(out / "now_distances.npz", allow_pickle=False) as npz:
        assert list(npz["images"]) == layout["lines"]
        assert npz["offsets"][-1] == len(npz["distances"]) == saved["overall"]["points"]
    # A required path left out: exit status 2 and the key named.
    proc = subprocess.run([sys.executable, "-m", "decalite.cli.evaluate", *args[:1], f"output={out}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "now.image_list is not set" in proc.stdout + proc.stderr
