"""Synthetic retail traffic for ``crmhub demo`` and the benchmark."""
