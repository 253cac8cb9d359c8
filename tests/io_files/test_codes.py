"""decalite.io.codes: one face and a sequence round-trip through a ``_codes.npz``, with extras."""

from __future__ import annotations

import numpy as np
import torch

from decalite.io.codes import load_codes, save_codes
from decalite.types import FaceCode


def _code(b: int, detail: bool = True) -> FaceCode:
    g = torch.Generator().manual_seed(b)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return FaceCode(shape=r(b, 100), tex=r(b, 50), exp=r(b, 44), pose=r(b, 6), cam=r(b, 3), light=r(b, 9, 3),
                    detail=r(b, 128) if detail else None)


def test_one_face_of_a_batch_round_trips_with_extras(tmp_path):
    code = _code(3)
    path = save_codes(tmp_path / "a_codes.npz", code, index=1, extra={"photo_size": np.array([480, 640])})
    with np.load(path) as z:
        assert z["shape"].shape == (100,) and z["light"].shape == (9, 3)  # no batch axis for one face
        assert z["photo_size"].tolist() == [480, 640]
    back = load_codes(path)
    for name in ("shape", "tex", "exp", "pose", "cam", "light", "detail"):
        assert torch.equal(getattr(back, name), getattr(code, name)[1:2]), name


def test_a_sequence_round_trips_and_a_missing_detail_stays_none(tmp_path):
    code = _code(5, detail=False)
    back = load_codes(save_codes(tmp_path / "seq_codes.npz", code))
    assert back.detail is None and back.light.shape == (5, 9, 3)
    assert torch.equal(back.exp, code.exp) and torch.equal(back.light, code.light)
