"""Session-wide test settings: one generated-head cache for the whole run (the head is ~90 MB and takes seconds to
build), also handed to subprocesses through DECALITE_CACHE so no test writes into the user's ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def head_cache(tmp_path_factory) -> Path:
    """The generated-head cache folder every test shares (tests of the cache itself use their own)."""
    cache = tmp_path_factory.mktemp("head_cache")
    previous = os.environ.get("DECALITE_CACHE")
    os.environ["DECALITE_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("DECALITE_CACHE", None)
    else:
        os.environ["DECALITE_CACHE"] = previous
