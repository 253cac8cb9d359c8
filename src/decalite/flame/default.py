"""Choose the FLAME asset folder: a configured folder (the user's licensed FLAME 2020 files), or one of decalite's
embedded heads, written once into a cache folder and used from there.

Embedded heads: "ict" (ICT Face Model Light in FLAME's format, expanded from the pack shipped in the package) and
"generated" (decalite's mannequin, built from a seed). Which head a process uses is logged once, so a user always
knows which head a result was computed with.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from decalite.errors import AssetError
from decalite.flame.generated import GENERATED_MARKER, GENERATED_README, GENERATOR_VERSION, write_generated_head

log = logging.getLogger(__name__)
_announced: set[str] = set()

#: Environment variable overriding the cache folder (conf/paths sets it from the command line as well).
CACHE_ENV = "DECALITE_CACHE"
#: The embedded heads ``flame.embedded`` may name.
EMBEDDED_HEADS = ("ict", "generated")


def default_cache_dir() -> Path:
    """``$DECALITE_CACHE`` or ``$XDG_CACHE_HOME/decalite`` or ``~/.cache/decalite``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "decalite"


def _cached_folder(root: Path, name: str, write: Callable[[Path], object]) -> Path:
    """``root / name``, written by ``write(folder)`` on first use (atomically, so parallel ranks can race safely).
    A folder is complete when its README.txt exists (written last)."""
    target = root / name
    if (target / GENERATED_README).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        write(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            if not (target / GENERATED_README).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def generated_head_dir(cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The generated head's folder, written on first use."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return _cached_folder(root, f"generated_head_v{GENERATOR_VERSION}_seed{seed}",
                          lambda out: write_generated_head(out, seed=seed))


def ict_head_dir(cache_dir: str | Path | None = None) -> Path:
    """The ICT head's FLAME-format folder, expanded from the shipped pack on first use."""
    from decalite.flame.ict.pack import PACK_VERSION, load_pack, shipped_pack, write_ict_folder

    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return _cached_folder(root, f"ict_head_v{PACK_VERSION}",
                          lambda out: write_ict_folder(load_pack(shipped_pack()), out))


def is_generated_head(root: str | Path) -> bool:
    """Whether ``root`` holds decalite's generated head (written by :func:`write_generated_head`), not FLAME.

    True for the cached folder :func:`resolve_flame_dir` picks for ``embedded="generated"`` and for a folder the
    user wrote with ``decalite-assets`` and named in ``flame.dir``.
    """
    readme = Path(root) / GENERATED_README
    return readme.is_file() and GENERATED_MARKER in readme.read_text(errors="ignore")


def resolve_flame_dir(flame_dir: str | Path | None, cache_dir: str | Path | None = None, seed: int = 0,
                      embedded: str = "ict") -> Path:
    """Return the folder to load FLAME-format assets from.

    Args:
        flame_dir: a folder holding FLAME-format files, or None for the embedded head.
        cache_dir: where embedded heads are kept (default ``default_cache_dir()``).
        seed: the generated head's seed.
        embedded: "ict" or "generated" (see :data:`EMBEDDED_HEADS`), used when ``flame_dir`` is None.
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
                "to use decalite's embedded ICT head",
            )
        key = str(path.resolve())
        if key not in _announced:
            _announced.add(key)
            log.info("FLAME assets: %s", path)
        return path
    if embedded not in EMBEDDED_HEADS:
        raise ValueError(f"flame.embedded={embedded!r} is not an embedded head; choose one of {EMBEDDED_HEADS} "
                         "(or set flame.dir to a FLAME-format folder)")
    if embedded == "ict":
        path = ict_head_dir(cache_dir)
        message = ("No FLAME folder configured (flame.dir is unset): using ICT Face Model Light (MIT, USC ICT) "
                   "converted to FLAME's format, from %s. Set flame.dir=/path/to/FLAME2020 to use FLAME.")
        args: tuple = (path,)
    else:
        path = generated_head_dir(cache_dir, seed)
        message = ("flame.embedded=generated: using decalite's generated FLAME-format mannequin (seed %d) from %s. "
                   "It is synthetic, not a real head; set flame.dir=/path/to/FLAME2020 to use FLAME.")
        args = (seed, path)
    key = f"{embedded}:{path}"
    if key not in _announced:
        _announced.add(key)
        log.warning(message, *args)
    return path
