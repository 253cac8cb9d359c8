"""Video with a stable track: the one-euro filter, the tracker, and decalite-reconstruct track=true end to end on a
clip rendered from the ICT head with known codes (benchmarks/video_clips.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from apps.gltf_reader import accessor, read_glb
from benchmarks.video_clips import render_clip, write_clip
from decalite.apps.smoothing import one_euro


def test_one_euro_removes_jitter_from_a_still_signal_and_follows_motion():
    g = torch.Generator().manual_seed(0)
    still = 0.3 + 0.05 * torch.randn(200, 3, generator=g, dtype=torch.float64)
    smoothed = one_euro(still, fps=30, min_cutoff=1.0, beta=0.0)
    jitter = lambda x: x.diff(dim=0).abs().mean().item()  # noqa: E731
    assert jitter(smoothed) < 0.25 * jitter(still) and abs(smoothed[50:].mean().item() - 0.3) < 0.01
    torch.testing.assert_close(one_euro(torch.full((10, 2), 2.0), 30), torch.full((10, 2), 2.0))  # nothing to remove
    ramp = torch.linspace(0, 10, 100, dtype=torch.float64)[:, None]  # a fast, steady motion
    lag = lambda beta: (ramp - one_euro(ramp, fps=30, min_cutoff=0.5, beta=beta)).abs()[-20:].mean().item()  # noqa: E731
    assert lag(1.0) < 0.5 * lag(0.0)  # the speed term raises the cutoff: less lag
    with pytest.raises(ValueError, match="min_cutoff"):
        one_euro(still, fps=30, min_cutoff=0.0)
    with pytest.raises(ValueError, match="T, D"):
        one_euro(still[:, 0], fps=30)


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory, head_cache):
    folder = tmp_path_factory.mktemp("clip")
    clip = render_clip("still", frames=6, size=192, seed=5, noise=4.0, cache_dir=str(head_cache))
    write_clip(clip, folder / "still.mp4")
    return folder / "still.mp4", clip


def test_the_tracker_detects_once_and_follows_the_face(still_clip):
    from decalite.apps.reconstruct.coordinates import crop_to_photo
    from decalite.apps.reconstruct.track import track_faces
    from decalite.data.detect import make_landmarker
    from decalite.io.inputs import expand_inputs

    path, clip = still_clip
    items, failures = expand_inputs(path, every_n_frames=1)
    track = track_faces(items, make_landmarker("auto"), 1.25, 64)
    assert not failures and len(track.faces) == 6 and track.detections == [0]  # one detection, then tracked
    photo = np.stack([crop_to_photo(f.landmarks_px, f.crop_matrix) for f in track.faces])
    assert np.linalg.norm(photo - clip.landmarks, axis=-1).mean() < 4.0  # pixels of the 192 px frames


def test_track_true_writes_one_identity_a_smooth_sequence_and_an_animated_glb(still_clip, tmp_path, head_cache):
    path, clip = still_clip
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "decalite.cli.reconstruct", f"input={path}", f"output={out}",
                           "track=true", "every_n_frames=1", "fit_steps=20", "renderer.image_size=64", "model=small",
                           "save.gltf=true", "progress=false", "threads=2", f"paths.cache_dir={head_cache}"],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "still_track.json").read_text())
    assert summary["frames"] == 6 and summary["detections"] == 1 and summary["fps"] == pytest.approx(clip.fps)
    assert summary["jitter_px"] < summary["jitter_px_fit"]  # smoothing removes frame-to-frame jitter
    codes = np.load(out / "still_codes.npz")
    assert codes["exp"].shape[0] == 6 and codes["crop_matrix"].shape == (6, 2, 3)
    assert np.allclose(codes["shape"], codes["shape"][:1])  # one identity for the clip
    assert (out / "still_track.mp4").stat().st_size > 1000 and (out / "still_neutral.obj").exists()
    doc, binary = read_glb(out / "still.glb")
    times = accessor(doc, binary, doc["animations"][0]["samplers"][0]["input"])
    assert len(times) == 6
