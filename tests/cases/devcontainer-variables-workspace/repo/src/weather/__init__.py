"""Weather service."""
