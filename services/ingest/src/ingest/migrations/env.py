"""Alembic environment of ingest (see pulse_shared.migrations)."""

from ingest.tables import metadata
from pulse_shared.migrations import run_env

run_env(metadata)
