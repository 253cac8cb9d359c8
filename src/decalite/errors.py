"""Errors shared by every layer: problems with asset files (FLAME-format assets, network weights, pickles).

Every problem with an asset file (missing, truncated, wrong layout, unsafe pickle) is reported as an
:class:`AssetError` whose message names the file, says what was expected there and how to obtain a good copy.
"""

from __future__ import annotations

import os
from typing import Any

#: How to obtain the licensed FLAME 2020 files (model, landmark embedding, UV template and masks).
FLAME_HOW_TO_OBTAIN = (
    "Get it from https://flame.is.tue.mpg.de (registration, FLAME 2020), "
    "or leave flame.dir unset to use decalite's generated head."
)

#: How to obtain the files DECA ships beside FLAME (landmark embedding, UV template, UV masks).
DECA_DATA_HOW_TO_OBTAIN = (
    "It ships with DECA's data (github.com/yfeng95/DECA, data/ folder; the FLAME parts from "
    "https://flame.is.tue.mpg.de), or leave flame.dir unset to use decalite's generated head."
)

#: How to obtain an albedo model in UV space.
ALBEDO_HOW_TO_OBTAIN = (
    "Build FLAME_albedo_from_BFM.npz with the BFM_to_FLAME tool (github.com/TimoBolkart/BFM_to_FLAME) "
    "from your copy of the Basel Face Model, or use FLAME_texture.npz from the FLAME website "
    "(https://flame.is.tue.mpg.de)."
)


def _sentence(text: str) -> str:
    text = text.strip()
    if text and text[-1] not in ".!?":
        text += "."
    return text


class AssetError(Exception):
    """An asset file is missing, unreadable or does not have the expected content.

    Attributes:
        path: the offending file (or folder), as given.
        problem: what is wrong with it, e.g. ``"file not found"``.
        what: a short description of the asset, e.g. ``"FLAME model"``.
        expected: what the file should contain.
        how_to_obtain: how to get a valid copy.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        problem: str,
        *,
        what: str | None = None,
        expected: str | None = None,
        how_to_obtain: str | None = None,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.what = what
        self.expected = expected
        self.how_to_obtain = how_to_obtain
        super().__init__(path, problem)

    def add_context(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        what: str | None = None,
        expected: str | None = None,
        how_to_obtain: str | None = None,
    ) -> AssetError:
        """Fill in the fields that are still unset (in place) and return ``self`` for re-raising."""
        if self.path is None and path is not None:
            self.path = os.fspath(path)
        if self.what is None:
            self.what = what
        if self.expected is None:
            self.expected = expected
        if self.how_to_obtain is None:
            self.how_to_obtain = how_to_obtain
        return self

    @property
    def message(self) -> str:
        what = self.what or "asset file"
        where = f" '{self.path}'" if self.path is not None else ""
        parts = [_sentence(f"Cannot read {what}{where}: {self.problem}")]
        if self.expected:
            parts.append(_sentence(f"Expected: {self.expected}"))
        if self.how_to_obtain:
            parts.append(_sentence(self.how_to_obtain))
        return " ".join(parts)

    def __str__(self) -> str:
        return self.message

    def _state(self) -> dict[str, Any]:
        return {"what": self.what, "expected": self.expected, "how_to_obtain": self.how_to_obtain}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.path, self.problem, self._state()))


class UnsafePickleError(AssetError):
    """A pickle references a global that is not on decalite's allow-list; nothing in it was executed.

    Attributes:
        global_name: the refused global as ``"module.name"``, e.g. ``"posix.system"``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        global_name: str,
        *,
        what: str | None = None,
        expected: str | None = None,
        how_to_obtain: str | None = None,
        problem: str | None = None,
    ) -> None:
        self.global_name = global_name
        if problem is None:
            problem = (
                f"refused to unpickle it: it references the global '{global_name}', which is not on "
                "decalite's allow-list (numpy/scipy/torch array data and chumpy stand-ins only); "
                "nothing from the file was executed. Do not use files from untrusted sources"
            )
        super().__init__(path, problem, what=what, expected=expected, how_to_obtain=how_to_obtain)

    def __reduce__(self) -> tuple[Any, ...]:
        state = self._state()
        state["problem"] = self.problem
        return (_rebuild_error, (type(self), self.path, self.global_name, state))


def _rebuild_error(cls: type[AssetError], path: str | None, arg: str, kwargs: dict[str, Any]) -> AssetError:
    return cls(path, arg, **kwargs)
