"""``decalite-assets source=ict|generated output=DIR``: write a FLAME-format head folder.

``source=ict input=PATH/FaceXModel`` converts ICT Face Model Light's files (``pack=FILE`` also writes the compact
pack the package ships); without ``input`` the shipped ICT head is expanded. ``source=generated seed=N`` writes
the mannequin.
"""

from __future__ import annotations

import json
import logging

import hydra
from omegaconf import DictConfig

from decalite.cli._hydra import CONF_PATH
from decalite.cli.schema import AssetsConfig, typed

log = logging.getLogger("decalite.assets")


def run(cfg: AssetsConfig):
    """Write the folder (and the pack); returns the folder."""
    from pathlib import Path

    if cfg.source == "generated":
        from decalite.flame.generated import write_generated_head

        return write_generated_head(cfg.output, seed=cfg.seed)
    if cfg.source != "ict":
        raise ValueError(f"source={cfg.source!r}: choose source=ict or source=generated")
    from decalite.flame.ict.pack import load_pack, save_pack, shipped_pack, write_ict_folder

    if cfg.input:
        from decalite.flame.ict.convert import convert_ict_folder

        head = convert_ict_folder(cfg.input, target_vertices=cfg.target_vertices)
        log.info("Converted %s: %s", cfg.input, json.dumps({k: round(v, 3) for k, v in head.report.items()}))
        if cfg.pack:
            save_pack(cfg.pack, head)
            log.info("Wrote the compact pack %s (%.1f MB)", cfg.pack, Path(cfg.pack).stat().st_size / 1e6)
    else:
        if cfg.pack:
            raise ValueError("pack= needs input=PATH/FaceXModel (the pack is made from ICT's files)")
        head = load_pack(shipped_pack())
    return write_ict_folder(head, cfg.output)


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="assets")
def main(dict_cfg: DictConfig) -> None:
    cfg = typed(dict_cfg, AssetsConfig)
    out = run(cfg)
    files = sorted(p.name for p in out.iterdir())
    log.info("Wrote the %s head to %s: %s", cfg.source, out, ", ".join(files))


if __name__ == "__main__":
    main()
