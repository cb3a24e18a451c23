"""Window arithmetic on the answers' own days (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

ROLLING = re.compile(r"^(7|30|90|365)d$")
#: Every window the API accepts (rolling days, or the calendar month / quarter to date), as a parameter type: a
#: wrong one is refused with the list of valid ones.
WindowName = Literal["7d", "30d", "90d", "365d", "month", "quarter"]
#: Windows carried in every score event and written to the CRMs.
PUBLISHED_WINDOWS = ("30d", "90d")


@dataclass(frozen=True)
class Window:
    """A half-open range of days [start, end)."""

    name: str
    start: date
    end: date


def rolling(name: str, today: date) -> Window:
    """The rolling window ``name`` (``30d``...) ending with ``today`` inclusive."""
    match = ROLLING.match(name)
    if not match:
        raise ValueError(f"unknown window {name!r}; use 7d, 30d, 90d or 365d")
    days = int(match.group(1))
    return Window(name, today - timedelta(days=days - 1), today + timedelta(days=1))


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def window(name: str, today: date) -> Window:
    """Any named window: ``7d``/``30d``/``90d``/``365d`` (rolling, today included), ``month`` or
    ``quarter`` (the calendar period to date)."""
    if name == "month":
        return Window(name, _month_start(today), today + timedelta(days=1))
    if name == "quarter":
        start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        return Window(name, start, today + timedelta(days=1))
    return rolling(name, today)


def previous(current: Window) -> Window:
    """The window a change is measured against: the equal span just before (for a calendar period to date,
    the whole previous period)."""
    if current.name == "month":
        return Window(current.name, _add_months(current.start, -1), current.start)
    if current.name == "quarter":
        return Window(current.name, _add_months(current.start, -3), current.start)
    span = current.end - current.start
    return Window(current.name, current.start - span, current.start)


BUCKETS = ("day", "week", "month")


def bucket_start(day: date, bucket: str) -> date:
    """The first day of the time-series bucket holding ``day`` (weeks start on Monday)."""
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return _month_start(day)
    raise ValueError(f"unknown bucket {bucket!r}; use day, week or month")


def bucket_end(start: date, bucket: str) -> date:
    """The day after the bucket that starts on ``start``."""
    if bucket == "day":
        return start + timedelta(days=1)
    if bucket == "week":
        return start + timedelta(days=7)
    return _add_months(start, 1)
