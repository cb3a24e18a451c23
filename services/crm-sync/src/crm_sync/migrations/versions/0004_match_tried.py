"""Remember the match value last searched for in vain, so it is not searched again on every flush.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("crm_writes", sa.Column("match_tried", sa.Text), schema="crm_sync")


def downgrade() -> None:
    op.drop_column("crm_writes", "match_tried", schema="crm_sync")
