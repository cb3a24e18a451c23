"""Against alert fatigue: silences, quiet hours and cooldowns, as one pure decision of (alert, state, now).

Before an alert is posted the dispatcher asks :func:`decide`:
- a **silence** matching it (account, rule, labels; between its start and end) → stored as *silenced*, visible
  in the history, never posted;
- its route's **quiet hours** (a daily window in a time zone, across midnight if it ends before it starts) →
  it waits and goes out when they end;
- its route's **cooldown** per (account, rule): another alert of the same rule for the same account was posted
  less than ``cooldown`` ago → stored as *suppressed*, visible, not posted;
- else → post.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from alerts.domain.rules import labels_match


@dataclass(frozen=True)
class Silence:
    """Alerts to keep quiet: every given matcher must match (an empty one matches all)."""

    silence_id: int
    starts_at: datetime
    ends_at: datetime
    account_id: str | None = None
    rule: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def matches(self, account_id: str, rule: str, labels: Mapping[str, str], now: datetime) -> bool:
        """Whether this silence holds the alert at ``now``."""
        return (self.starts_at <= now < self.ends_at
                and (self.account_id is None or self.account_id == account_id)
                and (self.rule is None or self.rule == rule)
                and labels_match(self.labels, labels))


@dataclass(frozen=True)
class QuietHours:
    """A daily window (local ``start`` to ``end`` in ``tz``) when alerts wait."""

    start: time
    end: time
    tz: str = "UTC"

    def ends_after(self, now: datetime) -> datetime | None:
        """When the window holding ``now`` ends (None: ``now`` is outside it)."""
        zone = ZoneInfo(self.tz)
        local = now.astimezone(zone)
        today_start = datetime.combine(local.date(), self.start, zone)
        today_end = datetime.combine(local.date(), self.end, zone)
        if self.start < self.end:  # e.g. 12:00-14:00
            return today_end.astimezone(now.tzinfo) if today_start <= local < today_end else None
        if local >= today_start:  # e.g. 20:00-08:00, evening part: ends tomorrow morning
            return datetime.combine(local.date() + timedelta(days=1), self.end, zone).astimezone(now.tzinfo)
        if local < today_end:  # the morning part
            return today_end.astimezone(now.tzinfo)
        return None


@dataclass(frozen=True)
class Candidate:
    """What the decision needs of an alert about to be posted."""

    account_id: str
    rule: str
    labels: Mapping[str, str]
    quiet_hours: QuietHours | None = None
    cooldown: timedelta | None = None


@dataclass(frozen=True)
class Post:
    """Post it now."""


@dataclass(frozen=True)
class Silenced:
    """A silence holds it: store it as silenced, never post it."""

    silence_id: int


@dataclass(frozen=True)
class Wait:
    """Quiet hours: post it at ``until``."""

    until: datetime


@dataclass(frozen=True)
class Suppressed:
    """The (account, rule) cooldown holds it: the last post was at ``last_posted_at``."""

    last_posted_at: datetime


Decision = Post | Silenced | Wait | Suppressed


def decide(alert: Candidate, *, silences: Sequence[Silence], last_posted_at: datetime | None,
           now: datetime) -> Decision:
    """What to do with ``alert`` at ``now``."""
    for silence in silences:
        if silence.matches(alert.account_id, alert.rule, alert.labels, now):
            return Silenced(silence.silence_id)
    if alert.quiet_hours is not None:
        until = alert.quiet_hours.ends_after(now)
        if until is not None:
            return Wait(until)
    if alert.cooldown is not None and last_posted_at is not None and now < last_posted_at + alert.cooldown:
        return Suppressed(last_posted_at)
    return Post()
