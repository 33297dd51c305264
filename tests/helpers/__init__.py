"""Reusable test helpers (schema checks, fixtures that start real components)."""
