"""Delivery decisions, pure functions of (row state, Slack's answer, now): what to do next with an alert.

The dispatcher does the I/O; these say whether a row must first be read back (a post in doubt), posted, or
edited, and what a Slack answer means for it: delivered, wait for the channel's pace, retry (in doubt or
not), or failed for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from alerts.slack import SlackResult

Action = Literal["log", "read_back", "post", "update", "withdraw"]


@dataclass(frozen=True)
class RowState:
    """What the decision needs of an alert row."""

    status: str
    attempt_at: datetime | None
    slack_ts: str | None
    withdrawn: bool = False


def next_action(row: RowState, *, slack_configured: bool) -> Action:
    """What the dispatcher does with a claimed row."""
    if not slack_configured:
        return "log"
    if row.status == "update_pending" and row.slack_ts:
        return "update"
    if row.attempt_at is not None and row.slack_ts is None:
        return "read_back"  # a post was (maybe) made and its answer never recorded
    if row.withdrawn:
        return "withdraw"
    return "post"


@dataclass(frozen=True)
class Delivered:
    """Slack holds the message: record ``ts`` in ``channel``."""

    ts: str
    channel: str


@dataclass(frozen=True)
class Paced:
    """Slack said 429: nothing was posted; the channel pauses until ``until`` for every replica."""

    until: datetime


@dataclass(frozen=True)
class Retry:
    """A transient failure: try again at ``at``; ``in_doubt`` when the call may have taken effect."""

    at: datetime
    error: str
    in_doubt: bool


@dataclass(frozen=True)
class Failed:
    """Give up: ``outcome`` is ``failed`` (Slack refused for good) or ``gave_up`` (retries exhausted)."""

    error: str
    outcome: str


Outcome = Delivered | Paced | Retry | Failed


def backoff(attempts: int, *, base_seconds: float, cap_seconds: float = 300.0) -> timedelta:
    """Exponential backoff after ``attempts`` failures (base, 2 base, 4 base... capped)."""
    return timedelta(seconds=min(cap_seconds, base_seconds * 2.0 ** max(0, attempts)))


def after_call(result: SlackResult, *, channel: str, attempts: int, max_attempts: int, now: datetime,
               base_seconds: float) -> Outcome:
    """What a chat.postMessage or chat.update answer means (``attempts``: failures counted so far)."""
    if result.ok:
        return Delivered(result.ts or "", result.channel or channel)
    if result.retry_after is not None:
        return Paced(now + timedelta(seconds=result.retry_after))
    error = result.error or "unknown_error"
    if result.permanent:
        return Failed(error, "failed")
    if attempts + 1 >= max_attempts and not result.uncertain:
        return Failed(error, "gave_up")
    # An uncertain failure is never given up blind: the retry reads back first and gives up only then.
    return Retry(now + backoff(attempts, base_seconds=base_seconds), error, in_doubt=result.uncertain)


def give_up_after_read_back(attempts: int, max_attempts: int) -> bool:
    """A read-back found no message: post again, unless the attempts are exhausted."""
    return attempts >= max_attempts


def read_back_window(attempt_at: datetime, *, margin_seconds: float) -> float:
    """The ``oldest`` bound (Unix seconds) for reading a post made at ``attempt_at`` back (clocks differ)."""
    return (attempt_at - timedelta(seconds=margin_seconds)).timestamp()
