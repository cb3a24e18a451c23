"""Alembic migrations of the scoring schema."""
