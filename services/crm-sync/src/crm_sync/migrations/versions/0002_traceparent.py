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
    op.add_column("crm_writes", sa.Column("traceparent", sa.Text), schema="crm_sync")


def downgrade() -> None:
    op.drop_column("crm_writes", "traceparent", schema="crm_sync")
