"""Grouping: a group's members point at their leader, whose message lists them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

S = "alerts"


def upgrade() -> None:
    op.add_column("alerts", sa.Column("group_wait_s", sa.Integer), schema=S)
    op.add_column("alerts", sa.Column("group_interval_s", sa.Integer), schema=S)
    op.add_column("alerts", sa.Column("group_leader", sa.Text), schema=S)
    op.add_column("alerts", sa.Column("group_version", sa.Integer, nullable=False, server_default="0"), schema=S)
    op.create_index("alerts_group_members", "alerts", ["group_leader"], schema=S,
                    postgresql_where=sa.text("group_leader IS NOT NULL"))
    op.create_index("alerts_group_leaders", "alerts", ["account_id", "rule", "receiver", "created_at"], schema=S,
                    postgresql_where=sa.text("group_wait_s IS NOT NULL AND group_leader IS NULL"))


def downgrade() -> None:
    op.drop_index("alerts_group_leaders", "alerts", schema=S)
    op.drop_index("alerts_group_members", "alerts", schema=S)
    for column in ("group_version", "group_leader", "group_interval_s", "group_wait_s"):
        op.drop_column("alerts", column, schema=S)
