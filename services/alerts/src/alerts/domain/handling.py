"""What the team did with an alert in Slack (acknowledge, assign, snooze), and Slack's request signatures.

Pure: the new handling state is a function of (state, action, who, now), and a signature check is a function
of (secret, headers, raw body, now). The interactions endpoint does the I/O around them.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

Action = Literal["ack", "assign", "snooze"]
#: Slack action ids of the buttons → the action.
ACTION_IDS: dict[str, Action] = {"pulse_ack": "ack", "pulse_assign": "assign", "pulse_snooze": "snooze"}
SNOOZE = timedelta(hours=24)
#: Slack refuses to sign for longer: a request whose timestamp is further off is a replay (or a broken clock).
MAX_SKEW_SECONDS = 300


class Handling(BaseModel):
    """Who acknowledged, who owns the follow-up, and until when the alert is snoozed."""

    model_config = ConfigDict(frozen=True)

    ack_by: str | None = None
    ack_name: str | None = None
    ack_at: datetime | None = None
    assignee: str | None = None
    assignee_name: str | None = None
    assigned_at: datetime | None = None
    snoozed_until: datetime | None = None
    snoozed_by: str | None = None


def apply(state: Handling, action: Action, user_id: str, user_name: str | None, now: datetime) -> Handling | None:
    """The state after ``user_id`` pressed ``action`` at ``now``; None when it changes nothing (an alert
    already acknowledged, already assigned to that person)."""
    if action == "ack":
        if state.ack_at is not None:
            return None
        return state.model_copy(update={"ack_by": user_id, "ack_name": user_name, "ack_at": now})
    if action == "assign":
        if state.assignee == user_id:
            return None
        return state.model_copy(update={"assignee": user_id, "assignee_name": user_name, "assigned_at": now})
    return state.model_copy(update={"snoozed_until": now + SNOOZE, "snoozed_by": user_id})


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's ``X-Slack-Signature`` for a request: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def check_signature(secret: str, timestamp: str | None, given: str | None, body: bytes, now: float) -> str | None:
    """Why a request is refused (None: it is Slack's): signed with ``secret`` over the raw body, at most five
    minutes from ``now``, compared in constant time."""
    if not timestamp or not given:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    try:
        at = int(timestamp)
    except ValueError:
        return "X-Slack-Request-Timestamp is not a number"
    if abs(now - at) > MAX_SKEW_SECONDS:
        return "the request is more than 5 minutes old (or from the future)"
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode()):
        return "the signature does not match"
    return None
