"""Initial scoring schema: responses, daily counts, account state (outbox), erasures, offsets.

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

S = "scoring"


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("response_id", sa.Text, primary_key=True),
        sa.Column("survey_type", sa.Text, nullable=False),
        sa.Column("score", sa.SmallInteger, nullable=False),
        sa.Column("scale_min", sa.SmallInteger, nullable=False),
        sa.Column("scale_max", sa.SmallInteger, nullable=False),
        sa.Column("sentiment", sa.Text, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("respondent_id", sa.Text),
        sa.Column("respondent_email", sa.Text),
        sa.Column("properties", JSONB, nullable=False),
        sa.Column("segments", JSONB, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("revised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("survey_id", sa.Text),
        sa.Column("erased", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_index("responses_account_day", "responses", ["account_id", "submitted_at"], schema=S)
    op.create_index("responses_respondent", "responses", ["account_id", "respondent_id"], schema=S)
    op.create_table(
        "daily_counts",
        sa.Column("account_id", sa.Text, primary_key=True),
        # Key order serves the hot query: one account, the all-answers segment, a range of days.
        sa.Column("segment", sa.Text, primary_key=True),
        sa.Column("segment_value", sa.Text, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("survey_type", sa.Text, primary_key=True),
        sa.Column("scale_min", sa.SmallInteger, primary_key=True),
        sa.Column("scale_max", sa.SmallInteger, primary_key=True),
        sa.Column("score", sa.SmallInteger, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.CheckConstraint("n >= 0", name="daily_counts_n_not_negative"),
        schema=S,
    )
    op.create_index("daily_counts_segment_day", "daily_counts", ["segment", "segment_value", "day"], schema=S)
    op.create_table(
        "account_state",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("published_version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_published_at", sa.DateTime(timezone=True)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        schema=S,
    )
    op.create_index(
        "account_state_pending", "account_state", ["due_at"], schema=S,
        postgresql_where=sa.text("version > published_version"),
    )
    op.create_table(
        "erased_respondents",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("respondent_id", sa.Text, primary_key=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
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
    for table in ("consumer_offsets", "erased_respondents", "account_state", "daily_counts", "responses"):
        op.drop_table(table, schema=S)
