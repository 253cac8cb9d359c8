"""decalite's Hydra configs (YAML), shipped inside the package so installed tools find them (``pkg://decalite.conf``)."""
