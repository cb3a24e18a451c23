"""Stored offsets carry the fingerprint of a record they were stored after, so an offset that belongs to an
earlier incarnation of its topic (deleted and created again, or a dev broker that lost its log) is recognised
and discarded instead of skipping the new log's first records.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("consumer_offsets", sa.Column("check_offset", sa.BigInteger), schema="alerts")
    op.add_column("consumer_offsets", sa.Column("fingerprint", sa.Text), schema="alerts")


def downgrade() -> None:
    op.drop_column("consumer_offsets", "fingerprint", schema="alerts")
    op.drop_column("consumer_offsets", "check_offset", schema="alerts")
