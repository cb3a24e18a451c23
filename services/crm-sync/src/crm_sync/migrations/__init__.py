"""Alembic migrations of the crm_sync schema."""
