"""Media code: probing, cut planning and rendering. Knows nothing of HTTP or SQL."""
