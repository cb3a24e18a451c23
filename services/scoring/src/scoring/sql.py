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

#: The columns of a ``scoring.responses`` row as the write path builds it (``stored_at`` is the default).
RESPONSE_COLUMNS = ("account_id", "response_id", "survey_type", "score", "scale_min", "scale_max", "sentiment",
                    "comment", "respondent_id", "respondent_email", "properties", "segments", "submitted_at", "day",
                    "revised_at", "content_hash", "source", "survey_id", "erased")

#: The rows of an upsert travel as one JSON array of objects with these keys: encoding one JSON text costs a
#: fraction of encoding nineteen typed arrays element by element, and PostgreSQL parses it in C.
UPSERT_RESPONSES = text("""
    INSERT INTO scoring.responses (account_id, response_id, survey_type, score, scale_min, scale_max, sentiment,
        comment, respondent_id, respondent_email, properties, segments, submitted_at, day, revised_at,
        content_hash, source, survey_id, erased)
    SELECT u.account_id, u.response_id, u.survey_type, u.score, u.scale_min, u.scale_max, u.sentiment, u.comment,
        u.respondent_id, u.respondent_email, u.properties, u.segments, u.submitted_at, u.day, u.revised_at,
        u.content_hash, u.source, u.survey_id, u.erased
    FROM json_to_recordset(CAST(:rows AS json))
      AS u(account_id text, response_id text, survey_type text, score smallint, scale_min smallint,
           scale_max smallint, sentiment text, comment text, respondent_id text, respondent_email text,
           properties jsonb, segments jsonb, submitted_at timestamptz, day date, revised_at timestamptz,
           content_hash text, source text, survey_id text, erased boolean)
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

#: Count changes travel as one JSON array of net changes, each [account, day, survey type, scale min, scale
#: max, score, {segment: value, ...}, n] (netted per bucket by the caller, so each bucket appears once).
#: Negative changes subtract from rows that must exist (so the n >= 0 check catches a counting bug), the rest
#: are added, in key order. Read as jsonb: parsed once, where ``->>`` on plain json rescans the text for
#: every field.
APPLY_COUNT_CHANGES = text("""
    WITH d AS (
        SELECT p->>0 AS account_id, CAST(p->>1 AS date) AS day, p->>2 AS survey_type,
               CAST(p->>3 AS smallint) AS scale_min, CAST(p->>4 AS smallint) AS scale_max,
               CAST(p->>5 AS smallint) AS score, p->6 AS segments, CAST(p->>7 AS bigint) AS n
        FROM jsonb_array_elements(CAST(:changes AS jsonb)) AS e(p)
    ), subtracted AS (
        UPDATE scoring.daily_counts c SET n = c.n + d.n
        FROM d
        WHERE d.n < 0 AND c.account_id = d.account_id AND c.day = d.day AND c.survey_type = d.survey_type
          AND c.scale_min = d.scale_min AND c.scale_max = d.scale_max AND c.score = d.score
          AND c.segments = d.segments
    )
    INSERT INTO scoring.daily_counts (account_id, day, survey_type, scale_min, scale_max, score, segments, n)
    SELECT account_id, day, survey_type, scale_min, scale_max, score, segments, n
    FROM d WHERE n > 0
    ORDER BY account_id, day, survey_type, scale_min, scale_max, score, segments
    ON CONFLICT (account_id, day, survey_type, scale_min, scale_max, score, segments)
    DO UPDATE SET n = scoring.daily_counts.n + excluded.n
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
