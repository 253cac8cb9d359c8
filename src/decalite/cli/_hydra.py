"""Where the Hydra entry points find decalite's configs; importing it registers the schemas.

The configs ship inside the package (``src/decalite/conf``), so a wheel or a non-editable install finds them
from any folder: the tools' ``@hydra.main`` uses :data:`CONF_PATH` (Hydra's ``pkg://`` search path) and code that
composes a config itself (tests, experiments) can use :data:`CONF_DIR` with ``initialize_config_dir``.
"""

from __future__ import annotations

from pathlib import Path

import decalite.conf
from decalite.cli import schema

#: Hydra's search path of the shipped configs (``@hydra.main(config_path=CONF_PATH, ...)``).
CONF_PATH = "pkg://decalite.conf"

#: The same configs as a folder on disk (the installed package's ``conf/``).
CONF_DIR = str(Path(decalite.conf.__file__).resolve().parent)

# The YAML files name their schemas (conf/<group>/*.yaml: "schema", conf/<tool>.yaml: "<tool>_schema").
schema.register()
