"""DECA's networks: image encoders (coarse and detail), the detail decoder F_d and the frozen face-recognition
networks of the identity loss (nets.identity)."""
