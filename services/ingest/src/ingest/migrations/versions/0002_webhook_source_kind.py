"""Several webhook sources per tool: a source is a name, its ``kind`` the tool that sends it.

Existing sources were named after their tool, so each one's kind is its name.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "ingest"


def upgrade() -> None:
    op.add_column("webhook_sources", sa.Column("kind", sa.Text), schema=S)
    op.execute(f"UPDATE {S}.webhook_sources SET kind = source")
    op.alter_column("webhook_sources", "kind", nullable=False, schema=S)


def downgrade() -> None:
    op.drop_column("webhook_sources", "kind", schema=S)
