"""Against alert fatigue: silences, and each alert's quiet hours and cooldown from its route.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

S = "alerts"


def upgrade() -> None:
    op.add_column("alerts", sa.Column("quiet_hours", JSONB), schema=S)
    op.add_column("alerts", sa.Column("cooldown_s", sa.Integer), schema=S)
    op.create_index("alerts_account_rule_delivered", "alerts", ["account_id", "rule", "delivered_at"], schema=S)
    op.create_table(
        "silences",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Text),
        sa.Column("rule", sa.Text),
        sa.Column("labels", JSONB, nullable=False, server_default="{}"),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("silences", schema=S)
    op.drop_index("alerts_account_rule_delivered", "alerts", schema=S)
    op.drop_column("alerts", "cooldown_s", schema=S)
    op.drop_column("alerts", "quiet_hours", schema=S)
