"""crmhub's four services: ingest, profile, segmenter, notifier."""
