"""Shared by scoring's tests: the oracle that recomputes aggregates in plain Python, and the stored state."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.events import RespondentErased, ResponseSubmitted, ResponseUpdated
from scoring.domain.answers import content_hash
from scoring.store import ResponseEvent
from scoring.tables import daily_counts, responses

SEGMENTS = ("plan",)
#: (account, day, survey type, scale min, scale max, score, segment values sorted by property)
Key = tuple[str, object, str, int, int, int, tuple[tuple[str, str], ...]]


State = tuple[Counter[Key], dict[tuple[str, str], str | None]]


def oracle(events: list[ResponseEvent], segment_properties: tuple[str, ...] = SEGMENTS) -> State:
    """Expected counts, and expected comments, computed from the distinct inputs in plain Python."""
    winners: dict[tuple[str, str], ResponseSubmitted | ResponseUpdated] = {}
    first_given: dict[tuple[str, str], datetime] = {}
    erased = {(e.account_id, e.respondent_id) for e in events if isinstance(e, RespondentErased)}
    for e in events:
        if isinstance(e, RespondentErased):
            continue
        key = (e.account_id, e.response_id)
        first_given[key] = min(first_given.get(key, e.submitted_at), e.submitted_at)
        best = winners.get(key)
        if best is None or (e.revised_at, content_hash(e)) > (best.revised_at, content_hash(best)):
            winners[key] = e
    counts: Counter[Key] = Counter()
    comments: dict[tuple[str, str], str | None] = {}
    for key, e in winners.items():
        day = first_given[key].astimezone(UTC).date()
        segments = tuple(sorted((p, str(e.properties[p])) for p in segment_properties if p in e.properties))
        counts[(e.account_id, day, e.survey_type, e.scale_min, e.scale_max, e.score, segments)] += 1
        comments[key] = None if (e.account_id, e.respondent_id) in erased else e.comment
    return counts, comments


async def stored_state(engine: AsyncEngine) -> tuple[Counter[Key], dict[tuple[str, str], str | None]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(daily_counts).where(daily_counts.c.n != 0))).all()
        answers = (await conn.execute(select(responses.c.account_id, responses.c.response_id,
                                             responses.c.comment))).all()
    counts: Counter[Key] = Counter()
    for r in rows:
        counts[(r.account_id, r.day, r.survey_type, r.scale_min, r.scale_max, r.score,
                tuple(sorted(r.segments.items())))] = r.n
    return counts, {(a.account_id, a.response_id): a.comment for a in answers}
