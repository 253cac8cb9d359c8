"""Where the Hydra entry points find the repository's ``conf/`` folder."""

from __future__ import annotations

from pathlib import Path

#: The top-level conf/ of the repository (decalite is installed editable from a clone).
CONF_DIR = str(Path(__file__).resolve().parents[3] / "conf")
