"""Remember the trace of the change that queued each outbox row, so the side effect continues it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("traceparent", sa.Text), schema="alerts")


def downgrade() -> None:
    op.drop_column("alerts", "traceparent", schema="alerts")
