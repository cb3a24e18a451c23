"""Initial alerts schema: alerts (outbox), account owners, offsets.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "alerts"


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Text, primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("response_id", sa.Text, nullable=False),
        sa.Column("facts", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("channel", sa.Text),
        sa.Column("slack_ts", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("rule", "account_id", "response_id", name="alerts_rule_response"),
        schema=S,
    )
    op.create_index(
        "alerts_due", "alerts", ["next_attempt_at"], schema=S,
        postgresql_where=sa.text("status IN ('pending', 'update_pending')"),
    )
    op.create_table(
        "account_owners",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("owner_email", sa.Text),
        sa.Column("owner_name", sa.Text),
        sa.Column("crm", sa.Text, nullable=False),
        sa.Column("slack_user_id", sa.Text),
        sa.Column("slack_lookup_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "consumer_offsets",
        sa.Column("group_id", sa.Text, primary_key=True),
        sa.Column("topic", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )


def downgrade() -> None:
    for table in ("consumer_offsets", "account_owners", "alerts"):
        op.drop_table(table, schema=S)
