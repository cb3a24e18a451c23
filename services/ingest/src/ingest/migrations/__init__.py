"""Alembic migrations of the ingest schema."""
