"""The route tree (as in Alertmanager): which receivers an alert goes to. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alerts.config import (
    DEFAULT_ESCALATE_AFTER,
    DEFAULT_GROUP_INTERVAL,
    Match,
    QuietHoursConfig,
    Route,
    duration_seconds,
)
from alerts.domain.rules import labels_match


@dataclass(frozen=True)
class Receiver:
    """Where an alert goes: the account owner's DM (``fallback`` when there is none) or a channel."""

    kind: str  # "owner" | "channel"
    channel: str | None = None  # the channel, or an owner's fallback channel (None: SLACK_DEFAULT_CHANNEL)
    #: Where the alert goes if nobody acknowledges it within ``escalate_after`` seconds (None: nowhere).
    escalate_to: str | None = None
    escalate_after: float = 4 * 3600.0
    quiet_hours: QuietHoursConfig | None = None
    cooldown: float | None = None
    #: Grouping per (account, rule): None when the route does not group.
    group_wait: float | None = None
    group_interval: float | None = None

    @property
    def key(self) -> str:
        """Stable name of the receiver, part of the alert's idempotency key."""
        return "owner" if self.kind == "owner" else f"channel:{self.channel}"


def _matches(match: Match, rule: str, severity: str, labels: Mapping[str, str]) -> bool:
    if match.rule is not None and match.rule != rule:
        return False
    if match.severity is not None and match.severity != severity:
        return False
    return labels_match(match.labels, labels)


@dataclass(frozen=True)
class _Inherited:
    receivers: tuple[str, ...]
    channel: str | None
    escalate_to: str | None
    escalate_after: str | None
    quiet_hours: QuietHoursConfig | None = None
    cooldown: str | None = None
    group_wait: str | None = None
    group_interval: str | None = None


def _walk(node: Route, inherited: _Inherited, rule: str, severity: str,
          labels: Mapping[str, str]) -> list[_Inherited]:
    here = _Inherited(node.receivers or inherited.receivers, node.channel or inherited.channel,
                      node.escalate_to or inherited.escalate_to, node.escalate_after or inherited.escalate_after,
                      node.quiet_hours or inherited.quiet_hours, node.cooldown or inherited.cooldown,
                      node.group_wait or inherited.group_wait, node.group_interval or inherited.group_interval)
    found: list[_Inherited] = []
    for child in node.routes:
        if _matches(child.match, rule, severity, labels):
            found.extend(_walk(child, here, rule, severity, labels))
            if not child.continue_:
                break
    return found or [here]


def route(root: Route, *, rule: str, severity: str, labels: Mapping[str, str]) -> list[Receiver]:
    """The receivers of an alert: the deepest matching routes' (first match wins unless ``continue``), each
    with the escalation its route says (channel, receivers, escalation: inherited down the tree)."""
    out: dict[str, Receiver] = {}
    start = _Inherited(root.receivers or ("owner",), root.channel, root.escalate_to, root.escalate_after,
                       root.quiet_hours, root.cooldown, root.group_wait, root.group_interval)
    for node in _walk(root, start, rule, severity, labels):
        after = duration_seconds(node.escalate_after or DEFAULT_ESCALATE_AFTER)
        cooldown = duration_seconds(node.cooldown) if node.cooldown else None
        wait = duration_seconds(node.group_wait) if node.group_wait else None
        interval = duration_seconds(node.group_interval or DEFAULT_GROUP_INTERVAL) if wait else None
        for name in node.receivers:
            kind, channel = ("owner", node.channel) if name == "owner" else ("channel", name.partition(":")[2])
            receiver = Receiver(kind, channel, node.escalate_to, after, node.quiet_hours, cooldown, wait, interval)
            out.setdefault(receiver.key, receiver)
    return list(out.values())
