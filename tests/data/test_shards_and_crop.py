"""The shard format round trip, and DECA's crop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import skimage.data

from decalite.data.crop import square_crop, transform_points, warp
from decalite.data.shards import (
    IdentitySample,
    decode_sample,
    encode_sample,
    iter_tar_samples,
    read_manifest,
    write_manifest,
    write_shard,
)


def _sample(identity: str = "n000123", n: int = 3, chunk: int = 0) -> IdentitySample:
    rng = np.random.default_rng(0)
    images = np.zeros((n, 64, 64, 3), np.uint8)
    images[:, 16:48, 16:48] = rng.integers(0, 255, 3, dtype=np.uint8)
    return IdentitySample(identity, images, rng.random((n, 68, 2)).astype(np.float32) * 64,
                          (images[..., 0] > 0).astype(np.uint8) * 255, {"detector": "test"}, chunk=chunk,
                          gt={"shape": rng.normal(size=(n, 10)), "verts": rng.normal(size=(n, 5, 3))})


def test_encode_decode_round_trip():
    s = _sample()
    back = decode_sample(encode_sample(s))
    assert back.identity == s.identity and back.key == "n000123__000"
    assert np.abs(back.images.astype(int) - s.images)[:, 20:44, 20:44].max() <= 8  # JPEG, away from edges
    np.testing.assert_array_equal(back.masks, s.masks)
    np.testing.assert_array_equal(back.landmarks, s.landmarks)
    np.testing.assert_allclose(back.gt["shape"], s.gt["shape"], rtol=1e-6)
    np.testing.assert_allclose(back.gt["verts"], s.gt["verts"], atol=2e-3)  # stored as float16
    assert back.meta["detector"] == "test" and back.meta["n_images"] == 3


def test_shards_are_deterministic_and_keys_are_safe(tmp_path):
    a = _sample()
    b = dataclasses.replace(_sample(), identity="id.with.dots/x", chunk=1)
    info = write_shard(tmp_path / "s0.tar", [a, b])
    again = write_shard(tmp_path / "s1.tar", [a, b])
    assert info.sha256 == again.sha256 and info.samples == 2 and info.images == 6
    back = list(iter_tar_samples(tmp_path / "s0.tar"))
    assert [s.identity for s in back] == ["n000123", "id.with.dots/x"] and back[1].key == "id-with-dots-x__001"
    write_manifest(tmp_path, [info], failures=[{"file": "x.jpg", "reason": "no face"}])
    m = read_manifest(tmp_path)
    assert m["images"] == 6 and m["identities"] == 2 and m["failures"][0]["file"] == "x.jpg"


def test_corrupt_sample_names_its_key():
    raw = encode_sample(_sample())
    raw["01.jpg"] = b"not a jpeg"
    with pytest.raises(ValueError, match="n000123__000"):
        decode_sample(raw)


def test_crop_keeps_landmarks_on_their_pixels():
    image = skimage.data.astronaut()
    rng = np.random.default_rng(1)
    points = rng.uniform(150, 250, (68, 2))
    crop = square_crop(points, scale=2.0, size=128)
    out = warp(image, crop)
    moved = transform_points(points, crop.matrix)
    assert out.shape == (128, 128, 3) and (moved > 0).all() and (moved < 128).all()
    # Landmark box side * 2 maps to the crop: the box's centre lands at the crop's centre.
    centre = transform_points(((points.min(0) + points.max(0)) / 2)[None], crop.matrix)[0]
    np.testing.assert_allclose(centre, [63.5, 63.5], atol=1e-9)
    # Colours under transformed integer points match the source (bilinear at exact pixel centres when s = 1).
    same = square_crop(np.array([[100.0, 100.0], [163.0, 163.0]]), scale=64 / 63, size=64)  # x' = x - 100
    patch = warp(image, same)
    np.testing.assert_array_equal(patch[5, 7], image[105, 107])
