"""Response models of the scoring API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from scoring.domain.metrics import Change, Metric
from scoring.domain.windows import Window

SMALL_SAMPLE = 10
INTERVALS = ("95 % interval. NPS: the adjusted-Wald interval (Rocks 2016, The American Statistician; recommended "
             "by Sauro & Lewis): 3/4 of a promoter, 3/4 of a detractor and 3/2 of a passive added, n + 3. CSAT: "
             "the Wilson score interval. CES: mean ± 1.96 s/√n, clamped to the scale (none below 2 answers).")


class Problem(BaseModel):
    """Why a request was refused: a message, or the list of invalid parameters."""

    detail: Any


PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Not found (the message says what)."},
    422: {"model": Problem, "description": "A parameter is invalid (the message names it)."},
}


class ChangeOut(BaseModel):
    """Change against the previous equal window."""

    previous_start: date
    previous_end: date = Field(description="Exclusive.")
    previous_n: int
    previous_value: float | None
    delta: float | None = Field(description="Current minus previous, in the metric's unit.")
    ci_low: float | None
    ci_high: float | None
    significant: bool = Field(description="Whether the 95 % interval of the change excludes zero.")


class MetricOut(BaseModel):
    """One metric over a window, with its sample size, 95 % interval and change."""

    metric: str
    n: int
    value: float | None = Field(description="NPS in points, CSAT in % satisfied, CES as the mean score.")
    ci_low: float | None = Field(description=INTERVALS)
    ci_high: float | None = Field(description=INTERVALS)
    counts: dict[str, int]
    small_sample: bool = Field(description=f"Fewer than {SMALL_SAMPLE} answers: read the interval, not the value.")
    change: ChangeOut | None = None


def metric_out(metric: Metric, previous: Metric | None = None, change: Change | None = None,
               previous_window: Window | None = None) -> MetricOut:
    """The API form of a metric (and of its change, when given)."""
    change_out = None
    if previous is not None and change is not None and previous_window is not None:
        change_out = ChangeOut(
            previous_start=previous_window.start, previous_end=previous_window.end, previous_n=previous.n,
            previous_value=previous.value, delta=change.delta, ci_low=change.ci_low, ci_high=change.ci_high,
            significant=change.significant,
        )
    return MetricOut(
        metric=metric.metric, n=metric.n, value=metric.value, ci_low=metric.ci_low, ci_high=metric.ci_high,
        counts=metric.counts, small_sample=metric.n < SMALL_SAMPLE, change=change_out,
    )


class WindowScores(BaseModel):
    """NPS, CSAT and CES over one window."""

    window: str
    start: date
    end: date = Field(description="Exclusive.")
    scores: dict[str, MetricOut]


class AccountScores(WindowScores):
    """An account's scores."""

    account_id: str
    method: str


class TimeseriesPoint(BaseModel):
    """One bucket of a time series."""

    start: date
    end: date = Field(description="Exclusive.")
    n: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    small_sample: bool


class Timeseries(BaseModel):
    """A metric over time for one account."""

    account_id: str
    metric: str
    bucket: str
    points: list[TimeseriesPoint]


class SegmentRow(BaseModel):
    """The scores of one value of a segment property."""

    value: str
    scores: dict[str, MetricOut]


class SegmentScores(BaseModel):
    """One row per value of a segment property, across every account."""

    property: str
    window: str
    start: date
    end: date
    rows: list[SegmentRow]


class BaseScores(WindowScores):
    """The whole customer base."""

    accounts: int = Field(description="Accounts with at least one answer in the window.")


class ResponseOut(BaseModel):
    """One stored answer."""

    response_id: str
    account_id: str
    survey_type: str
    score: int
    scale_min: int
    scale_max: int
    category: str
    comment: str | None
    respondent_id: str | None
    properties: dict[str, str | int | float | bool]
    submitted_at: datetime
    source: str
    erased: bool


class ResponsePage(BaseModel):
    """A page of answers, newest first."""

    items: list[ResponseOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
