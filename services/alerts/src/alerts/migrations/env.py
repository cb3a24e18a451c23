"""Alembic environment of alerts (see pulse_shared.migrations)."""

from alerts.tables import metadata
from pulse_shared.migrations import run_env

run_env(metadata)
