"""Count each answer once, under its combination of segment values, instead of once per segment.

Until now an answer added one to the account's total row and one to a row per segment property (three rows
with ``plan`` and ``region``), which made the count upserts the largest part of the write path. Now it adds
one to a single row keyed by the account, day, survey type, scale, score and its segment values together
(``{"plan": "pro", "region": "eu"}``; ``{}`` without any). The account's total is the sum over its rows,
a segment value's is the sum over the rows holding it: no information is lost (combinations are even
kept), and the write touches a third of the rows.

The new counts are recomputed from the stored answers (the counts always equal them; ``rebuild`` checks
it); the migration runs in one transaction, so writers wait for it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: A stored answer's segment pairs ([[property, value], ...]) as the counts' object.
_SEGMENT_OBJECT = (
    "(SELECT coalesce(jsonb_object_agg(s->>0, s->>1), '{}'::jsonb) FROM jsonb_array_elements(r.segments) AS x(s))"
)


def upgrade() -> None:
    op.execute("DROP TABLE scoring.daily_counts")
    op.execute("""
        CREATE TABLE scoring.daily_counts (
            account_id text NOT NULL,
            day date NOT NULL,
            survey_type text NOT NULL,
            scale_min smallint NOT NULL,
            scale_max smallint NOT NULL,
            score smallint NOT NULL,
            segments jsonb NOT NULL,
            n bigint NOT NULL,
            CONSTRAINT daily_counts_pkey
                PRIMARY KEY (account_id, day, survey_type, scale_min, scale_max, score, segments),
            CONSTRAINT daily_counts_n_not_negative CHECK (n >= 0)
        ) WITH (fillfactor = 80)
    """)
    op.execute("CREATE INDEX daily_counts_day ON scoring.daily_counts (day)")
    op.execute(f"""
        INSERT INTO scoring.daily_counts (account_id, day, survey_type, scale_min, scale_max, score, segments, n)
        SELECT r.account_id, r.day, r.survey_type, r.scale_min, r.scale_max, r.score, {_SEGMENT_OBJECT}, count(*)
        FROM scoring.responses r
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    """)


def downgrade() -> None:
    op.execute("DROP TABLE scoring.daily_counts")
    op.execute("""
        CREATE TABLE scoring.daily_counts (
            account_id text NOT NULL,
            segment text NOT NULL,
            segment_value text NOT NULL,
            day date NOT NULL,
            survey_type text NOT NULL,
            scale_min smallint NOT NULL,
            scale_max smallint NOT NULL,
            score smallint NOT NULL,
            n bigint NOT NULL,
            CONSTRAINT daily_counts_pkey PRIMARY KEY
                (account_id, segment, segment_value, day, survey_type, scale_min, scale_max, score),
            CONSTRAINT daily_counts_n_not_negative CHECK (n >= 0)
        ) WITH (fillfactor = 80)
    """)
    op.execute("CREATE INDEX daily_counts_segment_day ON scoring.daily_counts (segment, segment_value, day)")
    op.execute("""
        INSERT INTO scoring.daily_counts (account_id, segment, segment_value, day, survey_type, scale_min,
                                          scale_max, score, n)
        SELECT r.account_id, b.segment, b.segment_value, r.day, r.survey_type, r.scale_min, r.scale_max, r.score,
               count(*)
        FROM scoring.responses r
        CROSS JOIN LATERAL (
            SELECT '' AS segment, '' AS segment_value
            UNION ALL
            SELECT s->>0, s->>1 FROM jsonb_array_elements(r.segments) AS x(s)
        ) AS b
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    """)
