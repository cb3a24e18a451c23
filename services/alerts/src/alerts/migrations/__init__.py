"""Alembic migrations of the alerts schema."""
