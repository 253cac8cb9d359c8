"""Reading user inputs: every bad file gets its reason, the good ones load as 8-bit RGB."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image

from decalite.io.images import InputError, load_image
from decalite.io.inputs import expand_inputs


@pytest.fixture(scope="module")
def photo():
    return skimage.data.astronaut()


def test_modes_become_rgb8(tmp_path, photo):
    Image.fromarray(photo).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(photo[..., 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    Image.fromarray(photo).convert("RGBA").save(tmp_path / "alpha.png")
    for name in ("grey.png", "cmyk.jpg", "deep.png", "alpha.png"):
        img = load_image(tmp_path / name)
        assert img.dtype == np.uint8 and img.shape == (512, 512, 3), name
        assert 50 < img.mean() < 200, name
    np.testing.assert_allclose(load_image(tmp_path / "deep.png")[..., 0], photo[..., 0], atol=1)


def test_very_large_images_are_downscaled(tmp_path, photo):
    Image.fromarray(photo).resize((5000, 5000)).save(tmp_path / "big.jpg", quality=50)
    assert max(load_image(tmp_path / "big.jpg").shape) == 4096


@pytest.mark.parametrize("name,content,reason", [
    ("empty.jpg", b"", "empty file"),
    ("text.jpg", b"this is not an image", "not an image"),
])
def test_bad_files_name_the_reason(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=reason) as err:
        load_image(tmp_path / name)
    assert err.value.path.endswith(name)


def test_truncated_image(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "full.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:2000])
    with pytest.raises(InputError, match="truncated|unreadable"):
        load_image(tmp_path / "cut.jpg")


def test_expand_folder_list_and_videos(tmp_path, photo):
    import imageio.v2 as imageio

    (tmp_path / "a").mkdir()
    Image.fromarray(photo).save(tmp_path / "a" / "one.jpg")
    Image.fromarray(photo).save(tmp_path / "a" / "two.png")
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    frames = [np.roll(photo, 3 * i, axis=1)[:256, :256] for i in range(12)]
    imageio.mimsave(tmp_path / "a" / "clip.mp4", frames, fps=10, macro_block_size=16)
    (tmp_path / "a" / "broken.mp4").write_bytes(b"\x00" * 100)
    items, failures = expand_inputs(tmp_path / "a", every_n_frames=5)
    names = [i.name for i in items]
    assert names == ["clip_f000000", "clip_f000005", "clip_f000010", "one", "two"]
    assert items[0].load().shape == (256, 256, 3)
    assert [f["file"].endswith("broken.mp4") for f in failures] == [True]
    (tmp_path / "list.txt").write_text("a/one.jpg\n# comment\na/missing.jpg\n")
    items, failures = expand_inputs(tmp_path / "list.txt")
    assert [i.name for i in items] == ["one"] and "not found" in failures[0]["reason"]
    items, failures = expand_inputs(tmp_path / "nothing_here")
    assert not items and failures


def test_webcam_input_is_named_and_a_missing_camera_is_a_failure_record():
    """input=webcam / webcam:N records from a camera (none exists here: the failure path is what can be tested)."""
    from decalite.io.inputs import expand_inputs, webcam_index

    assert (webcam_index("webcam"), webcam_index("webcam:2"), webcam_index("webcam.mp4"), webcam_index("x")) == \
        (0, 2, None, None)
    items, failures = expand_inputs("webcam:97")
    assert items == [] and len(failures) == 1
    assert failures[0]["file"] == "webcam:97" and "/dev/video97" in failures[0]["reason"]
