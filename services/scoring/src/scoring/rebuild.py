"""Recompute every aggregate from the stored answers; report what differs; optionally replace it.

Used after a method or configuration change (for example new segment properties) or a bug fix. While it
runs with ``apply``, the tables are locked, so the consumer waits (and retries) instead of racing it.
``reset_offsets`` makes the consumer group re-read the responses topic from its beginning on its next
start (stop scoring first): answers already stored are recognised and skipped, lost ones are filled in.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scoring.domain.answers import BucketKey, Placement, segments_of
from scoring.tables import account_state, consumer_offsets, daily_counts, responses

log = logging.getLogger(__name__)

INSERT_CHUNK = 5000


@dataclass
class RebuildReport:
    """What a rebuild found (and did)."""

    answers: int = 0
    buckets_expected: int = 0
    buckets_stored: int = 0
    buckets_differing: int = 0
    answers_counted_before: int = 0
    answers_counted_after: int = 0
    accounts_affected: list[str] = field(default_factory=list)
    segments_changed: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    applied: bool = False

    @property
    def consistent(self) -> bool:
        """Whether the stored aggregates already equalled the recomputed ones."""
        return self.buckets_differing == 0 and self.segments_changed == 0


async def rebuild(engine: AsyncEngine, segment_properties: tuple[str, ...], *, apply: bool) -> RebuildReport:
    """Recompute the counts from ``scoring.responses`` and compare them with ``scoring.daily_counts``."""
    report = RebuildReport()
    async with engine.begin() as conn:
        if apply:
            # Writers (the consumer) wait while the aggregates are replaced; readers carry on.
            await conn.execute(text("LOCK TABLE scoring.responses, scoring.daily_counts IN EXCLUSIVE MODE"))
        expected, new_segments = await _recompute(conn, segment_properties, report)
        stored = await _stored(conn)
        report.buckets_expected = len(expected)
        report.buckets_stored = len(stored)
        report.answers_counted_before = sum(stored.values())
        report.answers_counted_after = sum(expected.values())
        differing = {k for k in expected.keys() | stored.keys() if expected.get(k, 0) != stored.get(k, 0)}
        report.buckets_differing = len(differing)
        report.accounts_affected = sorted({k[0] for k in differing})
        report.examples = [
            {"bucket": _describe(k), "stored": stored.get(k, 0), "recomputed": expected.get(k, 0)}
            for k in sorted(differing, key=str)[:10]
        ]
        if apply and not report.consistent:
            await _replace(conn, expected, new_segments, report.accounts_affected)
            report.applied = True
    if report.applied:
        # A bulk rewrite leaves the planner's statistics stale; refresh them before queries pay for it.
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE scoring.daily_counts"))
    return report


async def _recompute(
    conn: AsyncConnection, segment_properties: tuple[str, ...], report: RebuildReport
) -> tuple[Counter[BucketKey], list[dict[str, Any]]]:
    r = responses.c
    expected: Counter[BucketKey] = Counter()
    new_segments: list[dict[str, Any]] = []
    query = select(r.account_id, r.response_id, r.survey_type, r.scale_min, r.scale_max, r.score, r.day,
                   r.properties, r.segments)
    result = await conn.stream(query.execution_options(yield_per=INSERT_CHUNK))
    async for row in result:
        report.answers += 1
        segments = segments_of(row.properties, segment_properties)
        place = Placement(row.account_id, row.survey_type, row.scale_min, row.scale_max, row.score, row.day,
                          segments)
        expected[place.bucket()] += 1
        if [list(s) for s in segments] != row.segments:
            new_segments.append({"a": row.account_id, "r": row.response_id, "s": [list(s) for s in segments]})
    report.segments_changed = len(new_segments)
    return expected, new_segments


async def _stored(conn: AsyncConnection) -> Counter[BucketKey]:
    c = daily_counts.c
    stored: Counter[BucketKey] = Counter()
    result = await conn.stream(select(daily_counts).where(c.n != 0).execution_options(yield_per=INSERT_CHUNK))
    async for row in result:
        stored[(row.account_id, row.day, row.survey_type, row.scale_min, row.scale_max, row.score,
                tuple(sorted(row.segments.items())))] = int(row.n)
    return stored


async def _replace(conn: AsyncConnection, expected: Counter[BucketKey], new_segments: list[dict[str, Any]],
                   accounts: list[str]) -> None:
    await conn.execute(daily_counts.delete())
    names = ["account_id", "day", "survey_type", "scale_min", "scale_max", "score"]
    rows = [{**dict(zip(names, k[:6], strict=True)), "segments": dict(k[6]), "n": n}
            for k, n in expected.items() if n]
    for i in range(0, len(rows), INSERT_CHUNK):
        await conn.execute(insert(daily_counts), rows[i : i + INSERT_CHUNK])
    if new_segments:
        await conn.execute(
            update(responses)
            .where(responses.c.account_id == bindparam("a"), responses.c.response_id == bindparam("r"))
            .values(segments=bindparam("s")),
            new_segments,
        )
    if accounts:
        # Announce the corrected scores.
        await conn.execute(
            update(account_state).where(account_state.c.account_id.in_(accounts))
            .values(version=account_state.c.version + 1, due_at=func.now())
        )


async def reset_offsets(engine: AsyncEngine, group: str) -> int:
    """Make ``group`` re-read every partition it has consumed from the beginning; return how many."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(consumer_offsets).where(consumer_offsets.c.group_id == group).values(next_offset=0)
        )
    return int(result.rowcount or 0)


def _describe(key: BucketKey) -> str:
    account, day, survey, lo, hi, score, segments = key
    where = ", ".join(f"{prop}={value}" for prop, value in segments) or "no segment"
    return f"{account} {survey} {where} {day.isoformat()} score {score} ({lo}..{hi})"
