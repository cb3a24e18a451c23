"""Alembic environment of scoring (see pulse_shared.migrations)."""

from pulse_shared.migrations import run_env
from scoring.tables import metadata

run_env(metadata)
