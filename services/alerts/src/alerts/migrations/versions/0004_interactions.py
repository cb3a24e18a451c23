"""Interactivity and escalation: what the team did with each alert in Slack, the clicks already applied, and
where an unacknowledged alert escalates.

- alerts.handling: acknowledged by/at, assigned to/at, snoozed until/by; ``handling_version`` grows with each
  change, so an edit that was rendered from an older state is made again.
- alerts.escalate_to / escalate_after_s / escalated_at: the route's escalation and when it happened (once).
- pagerduty_events: the Events v2 outbox (a trigger per escalation, a resolve per acknowledgement).
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
    op.add_column("alerts", sa.Column("escalate_to", sa.Text), schema=S)
    op.add_column("alerts", sa.Column("escalate_after_s", sa.Integer), schema=S)
    op.add_column("alerts", sa.Column("escalated_at", sa.DateTime(timezone=True)), schema=S)
    op.create_index("alerts_escalation_due", "alerts", ["delivered_at"], schema=S,
                    postgresql_where=sa.text("escalate_to IS NOT NULL AND escalated_at IS NULL"))
    op.create_table(
        "pagerduty_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("dedup_key", "action", name="pagerduty_events_once"),
        schema=S,
    )
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
    op.drop_table("pagerduty_events", schema=S)
    op.drop_index("alerts_escalation_due", "alerts", schema=S)
    for column in ("escalated_at", "escalate_after_s", "escalate_to"):
        op.drop_column("alerts", column, schema=S)
    op.drop_column("alerts", "handling_version", schema=S)
    op.drop_column("alerts", "handling", schema=S)
