"""Score queries: an account, its time series, a segment property, the whole customer base."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.events import utcnow
from scoring.api.models import (
    PROBLEMS,
    SMALL_SAMPLE,
    AccountScores,
    BaseScores,
    MetricOut,
    SegmentRow,
    SegmentScores,
    Timeseries,
    TimeseriesPoint,
    metric_out,
)
from scoring.domain.metrics import change, compute
from scoring.domain.windows import Window, WindowName, bucket_end, bucket_start, previous, window
from scoring.queries import Histograms, account_exists, account_windows, by_segment, metrics_of, timeseries, whole_base

router = APIRouter(prefix="/v1", tags=["scores"], responses=PROBLEMS)

WINDOWS = "7d, 30d, 90d, 365d (rolling) or month, quarter (to date)"
WindowQuery = Annotated[WindowName, Query(alias="window", description=WINDOWS)]
AccountParam = Annotated[str, Path(min_length=1, max_length=255)]
MAX_POINTS = 1000
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No answer of this account was ever counted."}}


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _with_change(current: Histograms, before: Histograms, prev: Window) -> dict[str, MetricOut]:
    now_metrics, before_metrics = metrics_of(current), metrics_of(before)
    return {
        name: metric_out(m, before_metrics[name], change(m, before_metrics[name]), prev)
        for name, m in now_metrics.items()
    }


@router.get("/accounts/{account_id}/scores", response_model=AccountScores, responses=NOT_FOUND,
            summary="An account's NPS, CSAT and CES with intervals and change")
async def account_scores(
    request: Request,
    account_id: AccountParam,
    window_name: WindowQuery = "30d",
    method: Annotated[Literal["all", "latest_per_respondent"] | None, Query(
        description="all answers in the window, or each respondent's latest (default: SCORING_NPS_METHOD)")] = None,
) -> AccountScores:
    """NPS, CSAT and CES of the account with sample sizes, 95 % intervals and the change against the
    previous equal window (with its interval and significance)."""
    chosen = method or request.app.state.default_method
    current = window(window_name, utcnow().date())
    prev = previous(current)
    async with _engine(request).connect() as conn:
        if not await account_exists(conn, account_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no answers for account {account_id!r}")
        now_h, before_h = await account_windows(conn, account_id, [current, prev], chosen)
    return AccountScores(account_id=account_id, method=chosen, window=window_name, start=current.start,
                         end=current.end, scores=_with_change(now_h, before_h, prev))


@router.get("/accounts/{account_id}/timeseries", response_model=Timeseries, responses=NOT_FOUND,
            summary="An account's score per day, week or month")
async def account_timeseries(
    request: Request,
    account_id: AccountParam,
    metric: Annotated[Literal["nps", "csat", "ces"], Query()] = "nps",
    bucket: Annotated[Literal["day", "week", "month"], Query()] = "week",
    from_: Annotated[date | None, Query(alias="from", description="First day (default: 12 buckets back)")] = None,
    to: Annotated[date | None, Query(description="Last day, inclusive (default: today)")] = None,
) -> Timeseries:
    """One point per bucket (empty buckets included, with n = 0), each with its n and interval."""
    last = to or utcnow().date()
    first = from_ or bucket_start(last - timedelta(days={"day": 29, "week": 7 * 11, "month": 330}[bucket]), bucket)
    if first > last:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="'from' is after 'to'")
    starts = []
    cursor = bucket_start(first, bucket)
    while cursor <= last:
        starts.append(cursor)
        cursor = bucket_end(cursor, bucket)
        if len(starts) > MAX_POINTS:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                detail=f"more than {MAX_POINTS} buckets: narrow 'from'/'to' or use a larger bucket")
    async with _engine(request).connect() as conn:
        if not await account_exists(conn, account_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no answers for account {account_id!r}")
        hists = await timeseries(conn, account_id, metric, bucket, starts[0], bucket_end(starts[-1], bucket))
    points = []
    for start in starts:
        m = compute(metric, hists.get(start, {}))
        points.append(TimeseriesPoint(start=start, end=bucket_end(start, bucket), n=m.n, value=m.value,
                                      ci_low=m.ci_low, ci_high=m.ci_high, small_sample=m.n < SMALL_SAMPLE))
    return Timeseries(account_id=account_id, metric=metric, bucket=bucket, points=points)


@router.get("/segments/{property}/scores", response_model=SegmentScores, summary="Scores per segment value",
            responses={404: {"description": "The property is not segmented (SCORING_SEGMENT_PROPERTIES)."}})
async def segment_scores(
    request: Request,
    prop: Annotated[str, Path(alias="property", min_length=1, max_length=100)],
    window_name: WindowQuery = "90d",
) -> SegmentScores:
    """One row per value of the property, across every account, with the change per value."""
    segmented: tuple[str, ...] = request.app.state.segments
    if prop not in segmented:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"property {prop!r} is not segmented; segmented: {', '.join(segmented) or 'none'}")
    current = window(window_name, utcnow().date())
    prev = previous(current)
    async with _engine(request).connect() as conn:
        values = await by_segment(conn, prop, [current, prev])
    rows = [SegmentRow(value=v, scores=_with_change(h[0], h[1], prev)) for v, h in sorted(values.items())
            if any(h[0].values())]
    return SegmentScores(property=prop, window=window_name, start=current.start, end=current.end, rows=rows)


@router.get("/scores", response_model=BaseScores, summary="Scores of the whole customer base")
async def base_scores(
    request: Request,
    window_name: WindowQuery = "30d",
) -> BaseScores:
    """The whole customer base: every answer of every account in the window."""
    current = window(window_name, utcnow().date())
    prev = previous(current)
    async with _engine(request).connect() as conn:
        (now_h, before_h), accounts = await whole_base(conn, [current, prev])
    return BaseScores(window=window_name, start=current.start, end=current.end, accounts=accounts,
                      scores=_with_change(now_h, before_h, prev))
