"""The widget's look and texts per survey, and test-mode write keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

S = "ingest"


def upgrade() -> None:
    op.add_column("surveys", sa.Column("widget", JSONB, nullable=False, server_default="{}"), schema=S)
    op.add_column("write_keys", sa.Column("test_mode", sa.Boolean, nullable=False, server_default="false"),
                  schema=S)


def downgrade() -> None:
    op.drop_column("write_keys", "test_mode", schema=S)
    op.drop_column("surveys", "widget", schema=S)
