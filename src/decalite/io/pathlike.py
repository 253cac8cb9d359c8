"""The path type accepted by decalite's file functions."""

from __future__ import annotations

import os

PathLike = str | os.PathLike[str]
