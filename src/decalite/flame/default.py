"""Choose the FLAME asset folder: the user's licensed FLAME 2020 files, or decalite's generated head.

With ``flame_dir`` unset, the generated head (seed 0) is written once into a cache folder and used from there;
this is logged once per process so a user always knows which head a result was computed with.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from decalite.errors import AssetError
from decalite.flame.synthetic import GENERATED_MARKER, GENERATED_README, GENERATOR_VERSION, write_generated_head

log = logging.getLogger(__name__)
_announced: set[str] = set()

#: Environment variable overriding the cache folder (conf/paths sets it from the command line as well).
CACHE_ENV = "DECALITE_CACHE"


def default_cache_dir() -> Path:
    """``$DECALITE_CACHE`` or ``$XDG_CACHE_HOME/decalite`` or ``~/.cache/decalite``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "decalite"


def generated_head_dir(cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The generated head's folder, written on first use (atomically, so parallel ranks can race safely)."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = root / f"generated_head_v{GENERATOR_VERSION}_seed{seed}"
    if (target / GENERATED_README).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        write_generated_head(tmp, seed=seed)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            if not (target / GENERATED_README).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_generated_head(root: str | Path) -> bool:
    """Whether ``root`` holds decalite's generated head (written by :func:`write_generated_head`), not FLAME.

    True for the cached folder :func:`resolve_flame_dir` picks when ``flame.dir`` is unset and for a folder the
    user wrote with ``decalite-assets`` and named in ``flame.dir``.
    """
    readme = Path(root) / GENERATED_README
    return readme.is_file() and GENERATED_MARKER in readme.read_text(errors="ignore")


def resolve_flame_dir(flame_dir: str | Path | None, cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """Return the folder to load FLAME-format assets from.

    Args:
        flame_dir: a folder holding the licensed FLAME 2020 files, or None for the generated head.
        cache_dir: where the generated head is kept (default ``default_cache_dir()``).
        seed: the generated head's seed.
    """
    if flame_dir:
        path = Path(flame_dir).expanduser()
        if not path.is_dir():
            raise AssetError(
                str(path),
                "folder not found",
                what="FLAME folder",
                expected="a folder with generic_model.pkl, landmark_embedding.npy, head_template.obj and the UV masks",
                how_to_obtain="download FLAME 2020 from https://flame.is.tue.mpg.de, or leave flame.dir unset "
                "to use decalite's generated head",
            )
        key = str(path.resolve())
        if key not in _announced:
            _announced.add(key)
            log.info("FLAME assets: %s", path)
        return path
    path = generated_head_dir(cache_dir, seed)
    key = f"generated:{path}"
    if key not in _announced:
        _announced.add(key)
        log.warning(
            "No FLAME folder configured (flame.dir is unset): using decalite's generated FLAME-format head "
            "(seed %d) from %s. It is synthetic, not the FLAME model; set flame.dir=/path/to/FLAME2020 "
            "to use the real one.",
            seed,
            path,
        )
    return path
