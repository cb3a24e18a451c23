"""Leave room in the pages of the rows updated in place on every batch, so updates stay on their page.

``daily_counts.n`` and ``account_state``'s version and outbox columns change on every batch that touches
an account, and none of them is indexed: with free space on the page PostgreSQL updates them as
heap-only tuples (HOT), without a new index entry per update and with less bloat. Applies to pages
written from now on; a ``VACUUM FULL`` (or ``pg_repack``) rewrites existing ones if wanted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE scoring.daily_counts SET (fillfactor = 80)")
    op.execute("ALTER TABLE scoring.account_state SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE scoring.daily_counts RESET (fillfactor)")
    op.execute("ALTER TABLE scoring.account_state RESET (fillfactor)")
