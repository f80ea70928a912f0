"""crmhub's data contracts (pydantic v2 models), shared by every service."""
