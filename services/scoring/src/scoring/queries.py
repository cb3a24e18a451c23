"""Scoring's read path: histograms per window, turned into metrics."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pulse_shared.events import ScoreSummary
from scoring.domain.metrics import Metric, compute
from scoring.domain.windows import Window
from scoring.tables import account_state, daily_counts

SURVEY_TYPES = ("nps", "csat", "ces")


async def account_exists(conn: AsyncConnection, account_id: str) -> bool:
    """Whether scoring has ever counted an answer of ``account_id``."""
    query = select(account_state.c.account_id).where(account_state.c.account_id == account_id)
    return (await conn.execute(query)).first() is not None


async def histograms(
    conn: AsyncConnection, account_id: str, start: date, end: date, segment: str = "", value: str = ""
) -> dict[str, dict[tuple[int, int, int], int]]:
    """Answers per (scale, score) for each survey type of an account (or one of its segments)."""
    c = daily_counts.c
    query = (
        select(c.survey_type, c.scale_min, c.scale_max, c.score, func.sum(c.n).label("n"))
        .where(c.account_id == account_id, c.segment == segment, c.segment_value == value,
               c.day >= start, c.day < end)
        .group_by(c.survey_type, c.scale_min, c.scale_max, c.score)
    )
    result: dict[str, dict[tuple[int, int, int], int]] = defaultdict(dict)
    for row in await conn.execute(query):
        if row.n:
            result[row.survey_type][(row.scale_min, row.scale_max, row.score)] = int(row.n)
    return result


async def account_metrics(conn: AsyncConnection, account_id: str, window: Window) -> dict[str, Metric]:
    """NPS, CSAT and CES of an account over ``window``."""
    hists = await histograms(conn, account_id, window.start, window.end)
    return {t: compute(t, hists.get(t, {})) for t in SURVEY_TYPES}  # type: ignore[arg-type]


def summary(metric: Metric, window: str) -> ScoreSummary:
    """The event form of a metric."""
    return ScoreSummary(
        metric=metric.metric, window=window, n=metric.n, value=metric.value, ci_low=metric.ci_low,
        ci_high=metric.ci_high, counts=metric.counts,
    )
