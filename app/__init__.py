"""EndoSpine OR display: sources, capture, inference worker, Qt UI, recorder."""
