"""Scoring's read path: histograms from the daily counts (or, for the per-respondent method, from the
stored answers), turned into metrics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from sqlalchemy import Date, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scoring.domain.metrics import Histogram, Metric, compute
from scoring.domain.windows import Window
from scoring.tables import account_state, daily_counts, responses

SURVEY_TYPES = ("nps", "csat", "ces")
Method = Literal["all", "latest_per_respondent"]
#: survey type -> (scale_min, scale_max, score) -> n
Histograms = dict[str, dict[tuple[int, int, int], int]]


def _empty() -> Histograms:
    return defaultdict(dict)


def _add(target: dict[tuple[int, int, int], int], key: tuple[int, int, int], n: int) -> None:
    target[key] = target.get(key, 0) + n


def metrics_of(hists: Histograms) -> dict[str, Metric]:
    """NPS, CSAT and CES of a set of histograms (a metric with no answers has n = 0 and no value)."""
    return {t: compute(t, hists.get(t, {})) for t in SURVEY_TYPES}  # type: ignore[arg-type]


def _start_ts(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def account_exists(conn: AsyncConnection, account_id: str) -> bool:
    """Whether scoring has ever counted an answer of ``account_id``."""
    query = select(account_state.c.account_id).where(account_state.c.account_id == account_id)
    return (await conn.execute(query)).first() is not None


async def account_windows(
    conn: AsyncConnection, account_id: str, windows: list[Window], method: Method = "all"
) -> list[Histograms]:
    """The account's histograms for each window (one round trip for all of them)."""
    start = min(w.start for w in windows)
    end = max(w.end for w in windows)
    result = [_empty() for _ in windows]
    if method == "latest_per_respondent":
        rows = await _latest_per_respondent_rows(conn, account_id, start, end)
    else:
        c = daily_counts.c
        query = (
            select(c.day, c.survey_type, c.scale_min, c.scale_max, c.score, func.sum(c.n))
            .where(c.account_id == account_id, c.day >= start, c.day < end, c.n > 0)
            .group_by(c.day, c.survey_type, c.scale_min, c.scale_max, c.score)
        )
        rows = [tuple(r) for r in await conn.execute(query)]
    for day, survey_type, lo, hi, score, n in rows:
        for i, w in enumerate(windows):
            if w.start <= day < w.end:
                _add(result[i][survey_type], (lo, hi, score), int(n))
    return result


async def _latest_per_respondent_rows(
    conn: AsyncConnection, account_id: str, start: date, end: date
) -> list[tuple[Any, ...]]:
    """(day, type, scale, score, 1) of each respondent's latest answer per survey type in [start, end).

    Answers without a respondent (anonymous or erased) each count on their own."""
    r = responses.c
    anonymous = r.respondent_id.is_(None)
    who = func.coalesce(r.respondent_id, r.response_id)
    latest = (
        select(r.day, r.survey_type, r.scale_min, r.scale_max, r.score)
        .where(r.account_id == account_id, r.submitted_at >= _start_ts(start), r.submitted_at < _start_ts(end))
        .distinct(anonymous, who, r.survey_type)
        .order_by(anonymous, who, r.survey_type, r.submitted_at.desc(), r.response_id.desc())
    )
    return [(*row, 1) for row in await conn.execute(latest)]


async def timeseries(
    conn: AsyncConnection, account_id: str, metric: str, bucket: str, start: date, end: date
) -> dict[date, Histogram]:
    """Per bucket start, the account's histogram of one survey type."""
    c = daily_counts.c
    bucket_col = cast(func.date_trunc(bucket, c.day), Date).label("bucket")
    query = (
        select(bucket_col, c.scale_min, c.scale_max, c.score, func.sum(c.n).label("n"))
        .where(c.account_id == account_id, c.survey_type == metric, c.day >= start, c.day < end)
        .group_by(bucket_col, c.scale_min, c.scale_max, c.score)
    )
    result: dict[date, dict[tuple[int, int, int], int]] = defaultdict(dict)
    for row in await conn.execute(query):
        if row.n:
            _add(result[row.bucket], (row.scale_min, row.scale_max, row.score), int(row.n))
    return dict(result)


async def by_segment(
    conn: AsyncConnection, prop: str, windows: list[Window]
) -> dict[str, list[Histograms]]:
    """Per value of a segment property, across every account, the histograms of each window."""
    c = daily_counts.c
    start = min(w.start for w in windows)
    end = max(w.end for w in windows)
    value = c.segments[prop].astext.label("segment_value")
    query = (
        select(value, c.day, c.survey_type, c.scale_min, c.scale_max, func.sum(c.n).label("n"), c.score)
        .where(c.segments.has_key(prop), c.day >= start, c.day < end)
        .group_by(value, c.day, c.survey_type, c.scale_min, c.scale_max, c.score)
    )
    result: dict[str, list[Histograms]] = {}
    for row in await conn.execute(query):
        if not row.n:
            continue
        per_window = result.setdefault(row.segment_value, [_empty() for _ in windows])
        for i, w in enumerate(windows):
            if w.start <= row.day < w.end:
                _add(per_window[i][row.survey_type], (row.scale_min, row.scale_max, row.score), int(row.n))
    return result


async def whole_base(conn: AsyncConnection, windows: list[Window]) -> tuple[list[Histograms], int]:
    """The histograms of every account together for each window, and how many accounts answered."""
    c = daily_counts.c
    start = min(w.start for w in windows)
    end = max(w.end for w in windows)
    query = (
        select(c.day, c.survey_type, c.scale_min, c.scale_max, c.score, func.sum(c.n).label("n"))
        .where(c.day >= start, c.day < end)
        .group_by(c.day, c.survey_type, c.scale_min, c.scale_max, c.score)
    )
    result = [_empty() for _ in windows]
    for row in await conn.execute(query):
        for i, w in enumerate(windows):
            if w.start <= row.day < w.end and row.n:
                _add(result[i][row.survey_type], (row.scale_min, row.scale_max, row.score), int(row.n))
    accounts = (
        await conn.execute(
            select(func.count(func.distinct(c.account_id))).where(
                c.day >= windows[0].start, c.day < windows[0].end, c.n > 0
            )
        )
    ).scalar_one()
    return result, int(accounts)


async def list_responses(
    conn: AsyncConnection,
    *,
    account_id: str | None,
    sentiments: Sequence[tuple[str, str]] | None,
    survey_type: str | None,
    after: tuple[datetime, str, str] | None,
    limit: int,
) -> list[Any]:
    """Answers, newest first, after a keyset cursor (submitted_at, account_id, response_id)."""
    r = responses.c
    conditions = []
    if account_id is not None:
        conditions.append(r.account_id == account_id)
    if sentiments is not None:  # (survey type, sentiment) pairs: a category's meaning differs by survey type
        conditions.append(or_(*(and_(r.survey_type == kind, r.sentiment == sentiment)
                                for kind, sentiment in sentiments)))
    if survey_type is not None:
        conditions.append(r.survey_type == survey_type)
    if after is not None:
        at, acc, rid = after
        conditions.append(
            or_(r.submitted_at < at,
                and_(r.submitted_at == at, or_(r.account_id < acc, and_(r.account_id == acc, r.response_id < rid))))
        )
    query = (
        select(r.response_id, r.account_id, r.survey_type, r.score, r.scale_min, r.scale_max, r.sentiment, r.comment,
               r.respondent_id, r.properties, r.submitted_at, r.source, r.erased)
        .where(*conditions)
        .order_by(r.submitted_at.desc(), r.account_id.desc(), r.response_id.desc())
        .limit(limit)
    )
    return list((await conn.execute(query)).all())
