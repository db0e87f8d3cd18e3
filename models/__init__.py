"""EndoSpine model pipeline: datasets, synthetic scene engine, networks, training, export, runtime."""
