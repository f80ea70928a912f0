"""segmenter: keeps segment membership right as profiles change, and publishes enter/exit events."""
