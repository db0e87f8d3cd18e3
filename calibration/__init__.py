"""EndoSpine endoscope profiles: field of view, color, lens, latency."""
