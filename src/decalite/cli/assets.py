"""``decalite-assets out=DIR seed=N``: write the generated FLAME-format head to DIR."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from decalite.cli._hydra import CONF_DIR
from decalite.cli.schema import AssetsConfig, typed
from decalite.flame.synthetic import write_generated_head

log = logging.getLogger("decalite.assets")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="assets")
def main(dict_cfg: DictConfig) -> None:
    cfg = typed(dict_cfg, AssetsConfig)
    out = write_generated_head(cfg.out, seed=cfg.seed)
    files = sorted(p.name for p in out.iterdir())
    log.info("Wrote the generated FLAME-format head (seed %d) to %s: %s", cfg.seed, out, ", ".join(files))


if __name__ == "__main__":
    main()
