"""profile: folds each customer's events into one unified profile, stored in SQL and cached in Redis."""
