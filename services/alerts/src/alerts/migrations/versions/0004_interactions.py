"""Interactivity: what the team did with each alert in Slack, and the clicks already applied.

- alerts.handling: acknowledged by/at, assigned to/at, snoozed until/by; ``handling_version`` grows with each
  change, so an edit that was rendered from an older state is made again.
- slack_interactions: one row per click applied (keyed by Slack's action_ts, action, user and message), so a
  redelivered request changes nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

S = "alerts"


def upgrade() -> None:
    op.add_column("alerts", sa.Column("handling", JSONB, nullable=False, server_default="{}"), schema=S)
    op.add_column("alerts", sa.Column("handling_version", sa.Integer, nullable=False, server_default="0"), schema=S)
    op.create_table(
        "slack_interactions",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("alert_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("slack_interactions", schema=S)
    op.drop_column("alerts", "handling_version", schema=S)
    op.drop_column("alerts", "handling", schema=S)
