"""decalite-prepare on real photos (skimage's astronaut) with dlib, offline: layouts, failures, resuming, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from decalite.data.crop import square_crop, transform_points, warp
from decalite.data.shards import CONTEXT_SCALE, iter_tar_samples, read_manifest

skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")

from decalite.data.detect import DlibLandmarker, FanLandmarker, largest_face, make_landmarker  # noqa: E402
from decalite.data.prepare import (  # noqa: E402
    ConfigError,
    PrepareConfig,
    discover,
    merge_parts,
    part_folder,
    prepare,
    read_image,
    resolve_landmarker,
    to_rgb8,
)
from decalite.data.skin import FaceParsingMask, skin_mask  # noqa: E402

SIZE = 128
BAD = {"bob/text.jpg", "bob/trunc.jpg", "bob/empty.jpg", "bob/noise.jpg"}


def _photo() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


def _good_images(folder: Path, names: tuple[str, ...]) -> None:
    """Write some variants of the photo (orig, flip, small = 0.75x, big = 1.25x) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = _photo()
    variants = {"orig": photo, "flip": photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                "small": photo.resize((384, 384)), "big": photo.resize((640, 640))}
    for name in names:
        variants[name].save(folder / f"{name}.jpg", quality=95)


@pytest.fixture(scope="module")
def vgg_root(tmp_path_factory) -> Path:
    """alice: 6 good images (grey, CMYK, 16-bit PNG among them); bob: 2 good + 4 bad; carol: 4 good."""
    root = tmp_path_factory.mktemp("vgg") / "data"
    photo = _photo()
    _good_images(root / "alice", ("orig", "flip", "small"))
    photo.convert("L").save(root / "alice" / "grey.png")
    photo.convert("CMYK").save(root / "alice" / "cmyk.jpg")
    grey16 = np.asarray(photo.convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey16).save(root / "alice" / "grey16.png")
    assert Image.open(root / "alice" / "grey16.png").mode.startswith("I")
    _good_images(root / "bob", ("orig", "flip"))
    (root / "bob" / "text.jpg").write_text("not an image")
    (root / "bob" / "trunc.jpg").write_bytes((root / "bob" / "orig.jpg").read_bytes()[:200])
    (root / "bob" / "empty.jpg").write_bytes(b"")
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "bob" / "noise.jpg")
    _good_images(root / "carol", ("orig", "flip", "small", "big"))
    (root / "carol" / "notes.txt").write_text("ignored: not an image extension")
    return root


def _config(root: Path, out: Path, **kw) -> PrepareConfig:
    base = dict(input=str(root), output=str(out), layout="vggface2", landmarker="dlib", size=SIZE, workers=0,
                identities_per_shard=2, min_images=4, max_images_per_sample=4, progress=False)
    return PrepareConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run_serial(vgg_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return prepare(_config(vgg_root, out)), out


def _samples(out: Path) -> dict[str, object]:
    return {s.key: s for tar in sorted(out.glob("prepared-*.tar")) for s in iter_tar_samples(tar)}


def _by_source(out: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]]:
    """source -> (crop, landmarks, mask, crop box) over every sample of a folder."""
    found = {}
    for s in _samples(out).values():
        for i, src in enumerate(s.meta["sources"]):
            found[src] = (s.images[i], s.landmarks[i], s.masks[i], s.meta["crop_boxes"][i])
    return found


def test_shards_manifest_and_failures(run_serial):
    summary, out = run_serial
    manifest = read_manifest(out)
    assert [s["name"] for s in manifest["shards"]] == ["prepared-000000.tar", "prepared-000001.tar"]
    assert (manifest["images"], manifest["identities"]) == (12, 3) == (summary.images, summary.identities)
    assert {f["file"] for f in manifest["failures"]} == BAD
    reasons = {f["file"]: f["reason"] for f in manifest["failures"]}
    assert "no face" in reasons["bob/noise.jpg"] and "empty" in reasons["bob/empty.jpg"]
    assert all(reasons.values())
    lines = (out / "failures.jsonl").read_text().splitlines()
    assert {json.loads(line)["file"] for line in lines} == BAD
    assert manifest["flagged"] == [{"identity": "bob", "images": 2, "flags": ["few_images"]}]
    samples = _samples(out)
    assert sorted(samples) == ["alice__000", "alice__001", "bob__000", "carol__000"]
    assert [samples[k].images.shape[0] for k in sorted(samples)] == [3, 3, 2, 4]  # 6 images: chunks of 3 + 3
    assert samples["bob__000"].meta["flags"] == ["few_images"] and samples["carol__000"].meta["flags"] == []
    meta = samples["alice__000"].meta
    assert meta["landmarker"] == "dlib" and meta["detector"] == "dlib_hog" and len(meta["crop_boxes"]) == 3


def test_odd_image_modes_succeed(run_serial, vgg_root):
    _, out = run_serial
    found = _by_source(out)
    for name in ("alice/grey.png", "alice/cmyk.jpg", "alice/grey16.png"):
        assert name in found
        image = read_image(vgg_root / name)
        assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    grey16 = read_image(vgg_root / "alice" / "grey16.png")
    assert abs(float(grey16.mean()) - float(np.asarray(_photo().convert("L")).mean())) < 1.0


def test_landmarks_crops_and_masks(run_serial, vgg_root):
    _, out = run_serial
    found = _by_source(out)
    source = read_image(vgg_root / "alice" / "orig.jpg")
    det = largest_face(DlibLandmarker().detect(source))
    crop = square_crop(det.landmarks, CONTEXT_SCALE, SIZE)
    image, lmk, mask, box = found["alice/orig.jpg"]
    np.testing.assert_allclose(lmk, transform_points(det.landmarks.astype(np.float64), crop.matrix), atol=1e-3)
    np.testing.assert_allclose(box, crop.box, atol=1e-6)
    assert np.abs(image.astype(float) - warp(source, crop).astype(float)).mean() < 3.0  # JPEG in the shard
    for i, (image, lmk, mask, _) in found.items():
        nose = lmk[30]
        assert np.all((nose > 0.3 * SIZE) & (nose < 0.7 * SIZE)), i
        assert lmk[36, 0] < lmk[45, 0], i  # subject's right eye corner is on the image's left
        x, y = np.round(nose).astype(int)
        assert mask[y, x] == 255 and mask[0, 0] == 0 and mask[-1, -1] == 0, i
        eye = np.round(lmk[36:42].mean(0)).astype(int)
        assert mask[eye[1], eye[0]] == 0, i
        assert 0.08 < (mask > 0).mean() < 0.5, i


def test_parallel_resume_and_new_identity(vgg_root, run_serial, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(vgg_root, root)
    out = tmp_path / "out"
    first = prepare(_config(root, out, workers=2, identities_per_shard=1))
    assert first.written == [f"prepared-{i:06d}.tar" for i in range(3)]
    assert {f["file"] for f in first.failures} == BAD and first.images == 12
    serial = _by_source(run_serial[1])
    for src, (_, lmk, _, _) in _by_source(out).items():  # same crops whatever the worker count
        np.testing.assert_allclose(lmk, serial[src][1], atol=1e-4)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("prepared-*.tar")}
    again = prepare(_config(root, out, identities_per_shard=1))
    assert again.written == [] and len(again.skipped) == 3
    assert {f["file"] for f in again.failures} == BAD and again.flagged == first.flagged
    _good_images(root / "dave", ("orig", "flip", "small", "big"))  # sorts last: only a new shard
    more = prepare(_config(root, out, identities_per_shard=1))
    assert more.written == ["prepared-000003.tar"] and more.identities == 4 and more.images == 16
    assert all(stamps[n] == (out / n).stat().st_mtime_ns for n in stamps)
    manifest = read_manifest(out)
    assert [s["name"] for s in manifest["shards"]] == [f"prepared-{i:06d}.tar" for i in range(4)]
    assert {f["file"] for f in manifest["failures"]} == BAD


def _shifted_frames(n: int, size: int = 384, step: int = 2) -> tuple[list[np.ndarray], list[int]]:
    """``n`` frames: the photo at ``size`` px shifted right by ``step`` px per frame (edge-padded)."""
    base = np.asarray(_photo().resize((size, size)))
    pad = np.pad(base, ((0, 0), (step * n, step * n), (0, 0)), mode="edge")
    shifts = [step * i for i in range(n)]
    return [np.ascontiguousarray(pad[:, step * n - s : step * n - s + size]) for s in shifts], shifts


def test_voxceleb2_video_and_frame_folders(tmp_path):
    import imageio.v2 as iio

    root = tmp_path / "vox"
    frames, shifts = _shifted_frames(12)
    (root / "id00001" / "vid_a").mkdir(parents=True)
    iio.mimwrite(root / "id00001" / "vid_a" / "00001.mp4", frames, fps=10, quality=9)
    folder = root / "id00002" / "vid_b"
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames[:6]):
        Image.fromarray(frame).save(folder / f"frame_{i:03d}.jpg", quality=95)
    found = discover(root, "voxceleb2", every_n_frames=4)
    assert found == {"id00001": [("id00001/vid_a/00001.mp4", i) for i in (0, 4, 8)],
                     "id00002": [f"id00002/vid_b/frame_{i:03d}.jpg" for i in (0, 4)]}
    summary = prepare(_config(root, tmp_path / "out", layout="voxceleb2", every_n_frames=4, min_images=2))
    assert summary.failures == [] and summary.flagged == [] and summary.images == 5
    video = _samples(tmp_path / "out")["id00001__000"]
    assert video.meta["sources"] == [["id00001/vid_a/00001.mp4", i] for i in (0, 4, 8)]
    x0 = np.array([b[0] for b in video.meta["crop_boxes"]])
    np.testing.assert_allclose(x0 - x0[0], [shifts[i] for i in (0, 4, 8)], atol=2.0)


def test_bupt_layout_any_depth(tmp_path):
    root = tmp_path / "bupt"
    for rel in ("African/m.01/a.jpg", "African/m.01/b.jpg", "Asian/m.02/a.jpg", "Asian/x/m.03/c.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    assert discover(root, "bupt") == {"m.01": ["African/m.01/a.jpg", "African/m.01/b.jpg"],
                                      "m.02": ["Asian/m.02/a.jpg"], "m.03": ["Asian/x/m.03/c.png"]}
    with pytest.raises(ConfigError, match="not a folder"):
        discover(tmp_path / "missing", "bupt")
    with pytest.raises(ConfigError, match="layout"):
        discover(root, "celeba")


def test_fan_without_weights_fails_fast_and_auto_uses_dlib(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=r"hub/checkpoints") as err:
        FanLandmarker()
    assert "2DFAN4" in str(err.value) and "s3fd" in str(err.value)
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / "2DFAN4-11f355bf06.pth.tar").exists()
    assert make_landmarker("auto").name == "dlib"
    with pytest.raises(ConfigError, match="FAN weights"):
        resolve_landmarker(PrepareConfig(input=".", output=".", landmarker="fan"))


def test_image_modes_and_mask_helpers(tmp_path):
    rgba = Image.fromarray(np.full((4, 5, 4), 200, np.uint8), "RGBA")
    assert to_rgb8(rgba).shape == (4, 5, 3)
    grey16 = Image.fromarray(np.full((3, 3), 65535, np.uint16))
    assert to_rgb8(grey16).max() == 255
    with pytest.raises(FileNotFoundError, match="mask.model"):
        FaceParsingMask(tmp_path / "parser.pt")
    image = np.asarray(_photo())
    lmk = largest_face(DlibLandmarker().detect(image)).landmarks
    mask = skin_mask(image, lmk)
    assert mask.shape == image.shape[:2] and set(np.unique(mask)) <= {0, 255}
    forehead = np.round(lmk[17:27].mean(0) - [0, 0.1 * np.ptp(lmk[:, 1])]).astype(int)
    assert mask[forehead[1], forehead[0]] == 255  # the forehead cap reaches above the brows


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "decalite.cli.prepare", *args, "workers=0", "progress=false",
                             "landmarker=auto", f"size={SIZE}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_cli_exit_status(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    _good_images(good / "alice", ("orig",))
    _good_images(bad / "alice", ("orig",))
    (bad / "alice" / "broken.jpg").write_text("not an image")
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    runs = {"good": _cli([f"input={good}", f"output={tmp_path / 'out_good'}"], tmp_path, env),
            "bad": _cli([f"input={bad}", f"output={tmp_path / 'out_bad'}"], tmp_path, env),
            "missing": _cli([f"input={tmp_path / 'nope'}", f"output={tmp_path / 'out_none'}"], tmp_path, env)}
    logs = {k: p.communicate(timeout=120)[0] for k, p in runs.items()}
    codes = {k: p.returncode for k, p in runs.items()}
    assert codes == {"good": 0, "bad": 1, "missing": 2}, logs
    assert "1 images, 1 identities, 1 failures" in logs["bad"]
    assert "broken.jpg" in logs["bad"]
    assert read_manifest(tmp_path / "out_bad")["images"] == 1


def _without_timing(manifest: dict) -> dict:
    """A manifest less what differs between two runs of the same work (seconds per shard)."""
    records = {n: {k: v for k, v in r.items() if k != "seconds"} for n, r in manifest["shard_records"].items()}
    return {**manifest, "shard_records": records}


def test_two_parts_in_two_processes_merge_into_one_runs_output(vgg_root, tmp_path):
    """part=i parts=2 in two concurrent processes, then merge=true: the same shards (sha256) and manifest as one
    run; a missing or unfinished part is refused by name before anything is merged."""
    one = tmp_path / "one"
    prepare(_config(vgg_root, one, identities_per_shard=1))
    split = tmp_path / "split"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    args = [f"input={vgg_root}", f"output={split}", "landmarker=dlib", "identities_per_shard=1", "min_images=4",
            "max_images_per_sample=4", "parts=2"]
    procs = [subprocess.Popen([sys.executable, "-m", "decalite.cli.prepare", *args, f"part={i}", "workers=0",
                               "progress=false", f"size={SIZE}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 1], logs  # part 0: alice, carol; part 1: bob and his broken files
    assert sorted(p.name for p in part_folder(split, 0, 2).glob("*.tar")) == ["prepared-000000.tar",
                                                                              "prepared-000002.tar"]
    assert sorted(p.name for p in part_folder(split, 1, 2).glob("*.tar")) == ["prepared-000001.tar"]
    assert not list(split.glob("*.tar"))  # nothing in the output until the merge

    merged = subprocess.run([sys.executable, "-m", "decalite.cli.prepare", "merge=true", f"output={split}"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert merged.returncode == 1, merged.stdout + merged.stderr  # the merged run reports bob's failures too
    assert _without_timing(read_manifest(split)) == _without_timing(read_manifest(one))
    assert (split / "failures.jsonl").read_text() == (one / "failures.jsonl").read_text()
    for tar in sorted(one.glob("prepared-*.tar")):
        assert (split / tar.name).read_bytes() == tar.read_bytes(), tar.name

    # an unfinished part (a shard lost) and a missing part are refused, naming the part and the fix
    (part_folder(split, 0, 2) / "manifest.json").write_text(json.dumps(
        {**read_manifest(part_folder(split, 0, 2)), "shards": read_manifest(part_folder(split, 0, 2))["shards"][:1]}))
    with pytest.raises(ConfigError, match=r"part-0000-of-0002: 1 of 2 shards unfinished.*part=0 parts=2"):
        merge_parts(split)
    shutil.rmtree(part_folder(split, 1, 2))
    with pytest.raises(ConfigError, match=r"part\(s\) \[1\] of 2 not prepared"):
        merge_parts(split)
    with pytest.raises(ConfigError, match="holds no parts"):
        merge_parts(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="part=2 parts=2"):
        prepare(_config(vgg_root, tmp_path / "bad", part=2, parts=2))
