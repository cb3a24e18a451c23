"""The write path's statements, written over ``unnest`` of array parameters.

One statement per operation whatever the batch size: nothing to compile per batch (multi-row VALUES cost
more in SQLAlchemy compilation than in PostgreSQL), and no 32,767 bind-parameter ceiling.
"""

from __future__ import annotations

from sqlalchemy import text

SELECT_EXISTING = text("""
    SELECT r.account_id, r.response_id, r.revised_at, r.content_hash, r.survey_type, r.score, r.scale_min,
           r.scale_max, r.day, r.segments, r.submitted_at
    FROM scoring.responses r
    JOIN unnest(CAST(:accounts AS text[]), CAST(:ids AS text[])) AS k(account_id, response_id)
      ON r.account_id = k.account_id AND r.response_id = k.response_id
    FOR UPDATE OF r
""")

SELECT_ERASED = text("""
    SELECT e.account_id, e.respondent_id
    FROM scoring.erased_respondents e
    JOIN unnest(CAST(:accounts AS text[]), CAST(:respondents AS text[])) AS k(account_id, respondent_id)
      ON e.account_id = k.account_id AND e.respondent_id = k.respondent_id
""")

RESPONSE_COLUMNS = (
    "account_id", "response_id", "survey_type", "score", "scale_min", "scale_max", "sentiment", "comment",
    "respondent_id", "respondent_email", "properties", "segments", "submitted_at", "day", "revised_at",
    "content_hash", "source", "survey_id", "erased",
)

UPSERT_RESPONSES = text("""
    INSERT INTO scoring.responses (account_id, response_id, survey_type, score, scale_min, scale_max, sentiment,
        comment, respondent_id, respondent_email, properties, segments, submitted_at, day, revised_at,
        content_hash, source, survey_id, erased)
    SELECT u.account_id, u.response_id, u.survey_type, u.score, u.scale_min, u.scale_max, u.sentiment, u.comment,
        u.respondent_id, u.respondent_email, CAST(u.properties AS jsonb), CAST(u.segments AS jsonb),
        u.submitted_at, u.day, u.revised_at, u.content_hash, u.source, u.survey_id, u.erased
    FROM unnest(CAST(:account_id AS text[]), CAST(:response_id AS text[]), CAST(:survey_type AS text[]),
                CAST(:score AS smallint[]), CAST(:scale_min AS smallint[]), CAST(:scale_max AS smallint[]),
                CAST(:sentiment AS text[]), CAST(:comment AS text[]), CAST(:respondent_id AS text[]),
                CAST(:respondent_email AS text[]), CAST(:properties AS text[]), CAST(:segments AS text[]),
                CAST(:submitted_at AS timestamptz[]), CAST(:day AS date[]), CAST(:revised_at AS timestamptz[]),
                CAST(:content_hash AS text[]), CAST(:source AS text[]), CAST(:survey_id AS text[]),
                CAST(:erased AS boolean[]))
      AS u(account_id, response_id, survey_type, score, scale_min, scale_max, sentiment, comment, respondent_id,
           respondent_email, properties, segments, submitted_at, day, revised_at, content_hash, source, survey_id,
           erased)
    ON CONFLICT (account_id, response_id) DO UPDATE SET
        survey_type = excluded.survey_type, score = excluded.score, scale_min = excluded.scale_min,
        scale_max = excluded.scale_max, sentiment = excluded.sentiment, comment = excluded.comment,
        respondent_id = excluded.respondent_id, respondent_email = excluded.respondent_email,
        properties = excluded.properties, segments = excluded.segments, submitted_at = excluded.submitted_at,
        day = excluded.day, revised_at = excluded.revised_at, content_hash = excluded.content_hash,
        source = excluded.source, survey_id = excluded.survey_id, erased = excluded.erased
""")

MOVE_SUBMITTED_AT = text("""
    UPDATE scoring.responses r SET submitted_at = u.submitted_at, day = u.day
    FROM unnest(CAST(:accounts AS text[]), CAST(:ids AS text[]), CAST(:submitted_at AS timestamptz[]),
                CAST(:day AS date[])) AS u(account_id, response_id, submitted_at, day)
    WHERE r.account_id = u.account_id AND r.response_id = u.response_id
""")

BUCKET_ARRAYS = """
    unnest(CAST(:account_id AS text[]), CAST(:survey_type AS text[]), CAST(:segment AS text[]),
           CAST(:segment_value AS text[]), CAST(:day AS date[]), CAST(:scale_min AS smallint[]),
           CAST(:scale_max AS smallint[]), CAST(:score AS smallint[]), CAST(:n AS bigint[]))
      AS d(account_id, survey_type, segment, segment_value, day, scale_min, scale_max, score, n)
"""
BUCKET_COLUMNS = ("account_id", "survey_type", "segment", "segment_value", "day", "scale_min", "scale_max", "score")

ADD_COUNTS = text(f"""
    INSERT INTO scoring.daily_counts (account_id, survey_type, segment, segment_value, day, scale_min, scale_max,
        score, n)
    SELECT d.account_id, d.survey_type, d.segment, d.segment_value, d.day, d.scale_min, d.scale_max, d.score, d.n
    FROM {BUCKET_ARRAYS}
    ON CONFLICT (account_id, segment, segment_value, day, survey_type, scale_min, scale_max, score)
    DO UPDATE SET n = scoring.daily_counts.n + excluded.n
""")

# Decrements update rows that must exist, so the table's n >= 0 check can catch a counting bug.
SUBTRACT_COUNTS = text(f"""
    UPDATE scoring.daily_counts c SET n = c.n - d.n
    FROM {BUCKET_ARRAYS}
    WHERE c.account_id = d.account_id AND c.survey_type = d.survey_type AND c.segment = d.segment
      AND c.segment_value = d.segment_value AND c.day = d.day AND c.scale_min = d.scale_min
      AND c.scale_max = d.scale_max AND c.score = d.score
""")

BUMP_VERSIONS = text("""
    INSERT INTO scoring.account_state (account_id, version, traceparent)
    SELECT a.account_id, 1, a.traceparent
    FROM unnest(CAST(:accounts AS text[]), CAST(:traceparents AS text[])) AS a(account_id, traceparent)
    ON CONFLICT (account_id) DO UPDATE SET
        version = scoring.account_state.version + 1,
        traceparent = excluded.traceparent,
        -- Coalesce announcements: at most one score event per account per second.
        due_at = greatest(now(), coalesce(scoring.account_state.last_published_at + interval '1 second', now()))
""")
