"""The model: DECA's networks around one FLAME layer and one renderer (:mod:`.deca`), and how they are built from
the config groups (:mod:`.factory`)."""
