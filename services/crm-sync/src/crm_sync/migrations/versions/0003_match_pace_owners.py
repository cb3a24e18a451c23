"""Match never invent: account state, sent digests, unmatched and dead letters, shared pause, owners, reconcile.

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

S = "crm_sync"


def upgrade() -> None:
    op.create_table(
        "account_state",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("scores", JSONB, nullable=False, server_default="{}"),
        sa.Column("scores_version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_response_id", sa.Text),
        sa.Column("last_respondent_id", sa.Text),
        sa.Column("last_survey_type", sa.Text),
        sa.Column("last_score", sa.Integer),
        sa.Column("last_submitted_at", sa.DateTime(timezone=True)),
        sa.Column("last_revised_at", sa.DateTime(timezone=True)),
        sa.Column("last_comment", sa.Text),
        sa.Column("match_value", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    # The scores already queued become the accounts' state, so nothing is lost on upgrade.
    op.execute(f"INSERT INTO {S}.account_state (account_id, scores, scores_version) "
               f"SELECT DISTINCT ON (account_id) account_id, properties, version FROM {S}.crm_writes "
               f"ORDER BY account_id, version DESC")
    op.create_table(
        "erased_respondents",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("respondent_id", sa.Text, primary_key=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.add_column("crm_writes", sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False), schema=S)
    op.create_unique_constraint("crm_writes_id", "crm_writes", ["id"], schema=S)
    op.add_column("crm_writes", sa.Column("sent", JSONB, nullable=False, server_default="{}"), schema=S)
    op.add_column("crm_writes", sa.Column("reason", sa.Text), schema=S)
    op.add_column("crm_writes", sa.Column("status_since", sa.DateTime(timezone=True), nullable=False,
                                          server_default=sa.func.now()), schema=S)
    op.add_column("crm_writes", sa.Column("lease_token", UUID(as_uuid=False)), schema=S)
    op.add_column("crm_writes", sa.Column("reconcile_id", sa.BigInteger), schema=S)
    op.execute(f"UPDATE {S}.crm_writes SET status = 'synced' WHERE status = 'pending' AND version <= written_version")
    op.drop_index("crm_writes_due", "crm_writes", schema=S)
    op.create_index("crm_writes_due", "crm_writes", ["connector", "next_attempt_at"], schema=S,
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index("crm_writes_status", "crm_writes", ["connector", "status", "id"], schema=S)
    op.create_table(
        "connector_state",
        sa.Column("connector", sa.Text, primary_key=True),
        sa.Column("paused_until", sa.DateTime(timezone=True)),
        sa.Column("pause_reason", sa.Text),
        sa.Column("last_call_at", sa.DateTime(timezone=True)),
        sa.Column("writer", sa.Text),
        sa.Column("writer_since", sa.DateTime(timezone=True)),
        sa.Column("problems", JSONB, nullable=False, server_default="[]"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "account_owners",
        sa.Column("connector", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("owner_id", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("checked_at", sa.DateTime(timezone=True)),
        sa.Column("changed_at", sa.DateTime(timezone=True)),
        schema=S,
    )
    op.create_table(
        "owner_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", UUID(as_uuid=False), nullable=False),
        sa.Column("connector", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        schema=S,
    )
    op.create_index("owner_outbox_unpublished", "owner_outbox", ["id"], schema=S,
                    postgresql_where=sa.text("published_at IS NULL"))
    op.create_table(
        "reconcile_runs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("connector", sa.Text),
        sa.Column("dry_run", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("accounts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("requested_by", sa.Text),
        schema=S,
    )


def downgrade() -> None:
    for table in ("reconcile_runs", "owner_outbox", "account_owners", "connector_state", "erased_respondents",
                  "account_state"):
        op.drop_table(table, schema=S)
    op.drop_index("crm_writes_status", "crm_writes", schema=S)
    for column in ("reconcile_id", "lease_token", "status_since", "reason", "sent", "id"):
        op.drop_column("crm_writes", column, schema=S)

