"""decalite's ``_codes.npz`` files: a FaceCode's parts as named arrays (``shape``, ``tex``, ``exp``, ``pose``,
``cam``, ``light`` (9 x 3 per face), ``detail`` when present) plus optional extras (a reconstruction's
``crop_matrix`` and ``photo_size``). One face is stored without a batch axis (what ``decalite-reconstruct`` writes
per face), a sequence with one (``decalite-transfer``'s frames); :func:`load_codes` reads both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from decalite.types import FaceCode

#: The FaceCode parts a codes file holds, in order.
PARTS = ("shape", "tex", "exp", "pose", "cam", "light", "detail")


def save_codes(path: str | Path, code: FaceCode, index: int | None = None,
               extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``code`` (face ``index`` of the batch, without a batch axis; or the whole batch when None) and
    ``extra`` arrays to ``path`` (``.npz``, no pickles). Returns the path."""
    arrays = {}
    for name in PARTS:
        value = getattr(code, name)
        if value is not None:
            value = value.detach().cpu()
            arrays[name] = (value[index] if index is not None else value).numpy()
    arrays.update(extra or {})
    np.savez(Path(path), **arrays)
    return Path(path)


def load_codes(path: str | Path) -> FaceCode:
    """The FaceCode of a codes file: (1, ...) for one face, (N, ...) for a sequence; light (B, 9, 3)."""
    with np.load(Path(path), allow_pickle=False) as z:
        arrays = {k: torch.from_numpy(z[k]).float() for k in z.files if k in PARTS}
    single = arrays["shape"].ndim == 1
    if single:
        arrays = {k: v[None] for k, v in arrays.items()}
    arrays["light"] = arrays["light"].reshape(arrays["light"].shape[0], 9, 3)
    return FaceCode(**{k: arrays.get(k) for k in PARTS})
