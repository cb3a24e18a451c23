"""Window arithmetic on the answers' own days (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

ROLLING = re.compile(r"^(7|30|90|365)d$")
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
