"""Exactly-once, routed delivery: receivers, fenced leases, recorded attempts, lookups, pacing, accounts.

- alerts: one row per (rule, response, receiver); ``lease_token`` fences outcomes to the lease holder;
  ``attempt_at``/``attempt_channel``/``attempt_digest`` record a post before it is made, so an interrupted one
  is read back instead of repeated; ``revised_at`` keeps an older revision from overwriting a newer one.
- slack_users: the users.lookupByEmail / conversations.open cache, by email.
- channel_budget: the shared per-channel pace (one post per interval across replicas, and 429 pauses).
- accounts: latest segment labels, name and score summary per account (for rules and messages).
- drop_state: whether an account is in a significant drop per rule (a drop fires once).
- erased_respondents: erasure tombstones, so a replay cannot bring personal fields back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

S = "alerts"


def upgrade() -> None:
    op.drop_constraint("alerts_rule_response", "alerts", schema=S)
    op.add_column("alerts", sa.Column("receiver", sa.Text, nullable=False, server_default="owner"), schema=S)
    op.add_column("alerts", sa.Column("fallback_channel", sa.Text), schema=S)
    op.add_column("alerts", sa.Column("severity", sa.Text, nullable=False, server_default="warning"), schema=S)
    op.add_column("alerts", sa.Column("lease_token", UUID(as_uuid=False)), schema=S)
    op.add_column("alerts", sa.Column("attempt_at", sa.DateTime(timezone=True)), schema=S)
    op.add_column("alerts", sa.Column("attempt_channel", sa.Text), schema=S)
    op.add_column("alerts", sa.Column("attempt_digest", sa.Text), schema=S)
    op.add_column("alerts", sa.Column("revised_at", sa.DateTime(timezone=True)), schema=S)
    op.add_column("alerts", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                                      server_default=sa.func.now()), schema=S)
    op.create_unique_constraint("alerts_rule_response_receiver", "alerts",
                                ["rule", "account_id", "response_id", "receiver"], schema=S)
    op.create_index("alerts_by_response", "alerts", ["account_id", "response_id"], schema=S)
    op.drop_index("alerts_due", "alerts", schema=S)
    op.create_index(
        "alerts_due", "alerts", ["next_attempt_at"], schema=S,
        postgresql_where=sa.text("status IN ('pending', 'update_pending')"),
    )
    op.drop_column("account_owners", "slack_user_id", schema=S)
    op.drop_column("account_owners", "slack_lookup_at", schema=S)
    op.add_column("account_owners", sa.Column("changed_at", sa.DateTime(timezone=True)), schema=S)
    op.create_table(
        "slack_users",
        sa.Column("email", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text),
        sa.Column("dm_channel", sa.Text),
        sa.Column("looked_up_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "channel_budget",
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("next_allowed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("in_flight", sa.Boolean, nullable=False, server_default=sa.false()),
        schema=S,
    )
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("labels", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("labels_at", sa.DateTime(timezone=True)),
        sa.Column("scores", JSONB),
        sa.Column("scores_version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "drop_state",
        sa.Column("rule", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("since_version", sa.BigInteger),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "erased_respondents",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("respondent_id", sa.Text, primary_key=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )


def downgrade() -> None:
    for table in ("erased_respondents", "drop_state", "accounts", "channel_budget", "slack_users"):
        op.drop_table(table, schema=S)
    op.drop_column("account_owners", "changed_at", schema=S)
    op.add_column("account_owners", sa.Column("slack_user_id", sa.Text), schema=S)
    op.add_column("account_owners", sa.Column("slack_lookup_at", sa.DateTime(timezone=True)), schema=S)
    op.drop_index("alerts_by_response", "alerts", schema=S)
    op.drop_constraint("alerts_rule_response_receiver", "alerts", schema=S)
    for column in ("updated_at", "revised_at", "attempt_digest", "attempt_channel", "attempt_at", "lease_token",
                   "severity", "fallback_channel", "receiver"):
        op.drop_column("alerts", column, schema=S)
    op.create_unique_constraint("alerts_rule_response", "alerts", ["rule", "account_id", "response_id"], schema=S)
