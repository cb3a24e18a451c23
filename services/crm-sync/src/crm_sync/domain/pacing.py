"""How fast a connector may call its CRM: a rolling-window budget, a circuit for outages, the daily reset.

Pure: every function takes the time as an argument (seconds on one clock), so the rules are tested without
waiting. HubSpot counts requests over a rolling ten seconds (``TEN_SECONDLY_ROLLING``); a token bucket of the
same size would let twice the limit through a window (a full bucket, then its refill), so the budget keeps
the times of the calls it allowed and admits a call only while fewer than ``limit`` fall in the last
``window`` seconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass
class RollingBudget:
    """At most ``limit`` calls in any ``window`` seconds, as the CRM counts them.

    A call counts for ``window`` plus a margin: calls sent exactly a window apart can arrive closer together
    (one request waited longer on the network than the next), and the CRM counts arrivals.
    """

    limit: int
    window: float
    margin: float = -1.0  # default: 2 % of the window, at least 50 ms
    _calls: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.margin < 0:
            self.margin = max(0.05, 0.02 * self.window)

    @property
    def span(self) -> float:
        """How long a call counts against the budget."""
        return self.window + self.margin

    def wait(self, now: float) -> float:
        """Seconds until a call is allowed (0 when it is allowed now)."""
        while self._calls and self._calls[0] <= now - self.span:
            self._calls.popleft()
        if len(self._calls) < self.limit:
            return 0.0
        return self._calls[0] + self.span - now

    def take(self, now: float) -> None:
        """Count a call made at ``now`` (after :meth:`wait` said 0)."""
        self._calls.append(now)

    def spend_all(self, now: float) -> None:
        """Count the whole window as spent at ``now``: after a 429 (someone else shares the portal's limit) or
        when taking over from a writer whose calls this process did not see."""
        self._calls = deque([now] * self.limit)

    def used(self, now: float) -> int:
        """Calls counted in the window ending at ``now``."""
        self.wait(now)
        return len(self._calls)


@dataclass
class Circuit:
    """Consecutive failures of a connector (5xx, timeouts) open its circuit for a bounded, doubling time."""

    base: float = 2.0
    ceiling: float = 300.0
    failures: int = 0
    open_until: float = 0.0

    def allows(self, now: float) -> bool:
        """Whether a call may be made (closed, or half-open once the pause is over)."""
        return now >= self.open_until

    def failed(self, now: float) -> float:
        """Record a failure; return how long the circuit stays open."""
        self.failures += 1
        pause = min(self.ceiling, self.base * float(2 ** (self.failures - 1)))
        self.open_until = now + pause
        return pause

    def succeeded(self) -> None:
        """Close the circuit."""
        self.failures = 0
        self.open_until = 0.0


def next_daily_reset(now: datetime, timezone: str) -> datetime:
    """When a daily API limit resets: the next midnight in the portal's time zone (plus a minute of margin)."""
    local = now.astimezone(ZoneInfo(timezone))
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=1, second=0, microsecond=0)
    return midnight.astimezone(now.tzinfo)
