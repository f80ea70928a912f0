"""ingest: raw inputs -> validated, normalised, deduplicated, identity-resolved events keyed by profile."""
