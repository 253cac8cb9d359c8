"""DECA's losses as pure functions; weights come from conf/loss (a weight of 0 skips a term)."""
