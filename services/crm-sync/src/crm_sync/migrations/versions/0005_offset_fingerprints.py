"""Stored offsets carry the fingerprint of a record they were stored after, so an offset that belongs to an
earlier incarnation of its topic (deleted and created again, or a dev broker that lost its log) is recognised
and discarded instead of skipping the new log's first records.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("consumer_offsets", sa.Column("check_offset", sa.BigInteger), schema="crm_sync")
    op.add_column("consumer_offsets", sa.Column("fingerprint", sa.Text), schema="crm_sync")


def downgrade() -> None:
    op.drop_column("consumer_offsets", "fingerprint", schema="crm_sync")
    op.drop_column("consumer_offsets", "check_offset", schema="crm_sync")
