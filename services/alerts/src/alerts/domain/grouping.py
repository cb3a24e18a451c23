"""Grouping (as Alertmanager's ``group_wait`` and ``group_interval``, per account and rule). Pure.

The first alert of an account and rule on a grouping route *leads* a group: it waits ``group_wait`` before it
is posted, so that alerts arriving meanwhile go out with it, in one message listing them. Until
``group_interval`` after that message was posted, further alerts *join* it (the message is edited to list
them); after that, the next alert leads a new group. A group whose leader did not go out (silenced,
suppressed, failed, withdrawn) takes nobody any more: the next alert leads its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

#: A leader not posted yet (waiting, held for its comment, in quiet hours, backing off): its group is open.
WAITING = "pending"
#: A leader whose message is out (in Slack or in the log): open until ``group_interval`` after the post.
OUT = ("sent", "update_pending", "logged")


@dataclass(frozen=True)
class Leader:
    """A group's first alert, as stored."""

    alert_id: str
    status: str
    delivered_at: datetime | None
    group_interval: timedelta


@dataclass(frozen=True)
class Join:
    """The alert goes out in the leader's message (a post not made yet, or an edit)."""

    leader_id: str


@dataclass(frozen=True)
class Lead:
    """The alert starts a group and is due at ``due`` (never before its ``group_wait`` has passed)."""

    due: datetime


def is_open(leader: Leader, now: datetime) -> bool:
    """Whether alerts arriving at ``now`` join this leader's message."""
    if leader.status == WAITING:
        return True
    if leader.status in OUT and leader.delivered_at is not None:
        return now < leader.delivered_at + leader.group_interval
    return False


def place(due: datetime, *, group_wait: timedelta, leaders: Sequence[Leader], now: datetime) -> Join | Lead:
    """Where a new alert (due at ``due`` by its own rules, e.g. a comment hold) goes: into the newest open
    group of its account and rule among ``leaders``, or at the head of a new one."""
    for leader in leaders:
        if is_open(leader, now):
            return Join(leader.alert_id)
    return Lead(max(due, now + group_wait))
