"""Training: `endospine-model train`. Never imported by the app (see setup.cfg contracts)."""
