"""DECA's networks: image encoders (coarse and detail) and the detail decoder F_d."""
