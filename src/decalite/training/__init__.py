"""Training: the coarse and detail LightningModules, callbacks and ``train(cfg)``."""
