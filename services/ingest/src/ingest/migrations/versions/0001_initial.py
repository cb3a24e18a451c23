"""Initial ingest schema: surveys, write keys, webhook sources, widget contacts.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "ingest"


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("survey_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("survey_type", sa.Text, nullable=False),
        sa.Column("scale_min", sa.SmallInteger, nullable=False),
        sa.Column("scale_max", sa.SmallInteger, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("closed", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("recontact_days", sa.Integer, nullable=False, server_default="90"),
        sa.Column("sample_percent", sa.Integer, nullable=False, server_default="100"),
        sa.Column("ask_later_days", sa.Integer, nullable=False, server_default="7"),
        sa.Column("min_days_since_signup", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("scale_min < scale_max", name="surveys_scale"),
        sa.CheckConstraint("sample_percent BETWEEN 0 AND 100", name="surveys_sample_percent"),
        schema=S,
    )
    op.create_table(
        "write_keys",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("survey_id", sa.Text, sa.ForeignKey("ingest.surveys.survey_id"), nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("allowed_origins", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("rate_per_minute", sa.Integer, nullable=False, server_default="600"),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "webhook_sources",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("survey_id", sa.Text, sa.ForeignKey("ingest.surveys.survey_id"), nullable=False),
        sa.Column("secrets", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("mapping", JSONB, nullable=False, server_default="{}"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "widget_contacts",
        sa.Column("survey_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("respondent_id", sa.Text, primary_key=True),
        sa.Column("last_shown_at", sa.DateTime(timezone=True)),
        sa.Column("snoozed_until", sa.DateTime(timezone=True)),
        schema=S,
    )


def downgrade() -> None:
    for table in ("widget_contacts", "webhook_sources", "write_keys", "surveys"):
        op.drop_table(table, schema=S)
