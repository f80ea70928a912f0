"""The profile's facets: one module per kind of fact, each holding its part of the profile model and the
segment fields it exposes. ``schemas.profile.Profile`` is their union; the fold and merge rules of each
facet are in ``services.profile.facets`` (the profile service owns the writing)."""
