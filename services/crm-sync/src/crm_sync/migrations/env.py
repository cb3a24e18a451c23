"""Alembic environment of crm-sync (see pulse_shared.migrations)."""

from crm_sync.tables import metadata
from pulse_shared.migrations import run_env

run_env(metadata)
