"""Where the Hydra entry points find the repository's ``conf/`` folder; importing it registers the schemas."""

from __future__ import annotations

from pathlib import Path

from decalite.cli import schema

#: The top-level conf/ of the repository (decalite is installed editable from a clone).
CONF_DIR = str(Path(__file__).resolve().parents[3] / "conf")

# The YAML files name their schemas (conf/<group>/*.yaml: "schema", conf/<tool>.yaml: "<tool>_schema").
schema.register()
