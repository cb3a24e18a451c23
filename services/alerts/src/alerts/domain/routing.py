"""The route tree (as in Alertmanager): which receivers an alert goes to. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alerts.config import Match, Route
from alerts.domain.rules import labels_match


@dataclass(frozen=True)
class Receiver:
    """Where an alert goes: the account owner's DM (``fallback`` when there is none) or a channel."""

    kind: str  # "owner" | "channel"
    channel: str | None = None  # the channel, or an owner's fallback channel (None: SLACK_DEFAULT_CHANNEL)

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


def _walk(node: Route, receivers: tuple[str, ...], channel: str | None, rule: str, severity: str,
          labels: Mapping[str, str]) -> list[tuple[tuple[str, ...], str | None]]:
    receivers = node.receivers or receivers
    channel = node.channel or channel
    found: list[tuple[tuple[str, ...], str | None]] = []
    for child in node.routes:
        if _matches(child.match, rule, severity, labels):
            found.extend(_walk(child, receivers, channel, rule, severity, labels))
            if not child.continue_:
                break
    return found or [(receivers, channel)]


def route(root: Route, *, rule: str, severity: str, labels: Mapping[str, str]) -> list[Receiver]:
    """The receivers of an alert: the deepest matching routes' (first match wins unless ``continue``)."""
    out: dict[str, Receiver] = {}
    for receivers, channel in _walk(root, root.receivers or ("owner",), root.channel, rule, severity, labels):
        for name in receivers:
            receiver = (Receiver("owner", channel) if name == "owner"
                        else Receiver("channel", name.partition(":")[2]))
            out.setdefault(receiver.key, receiver)
    return list(out.values())
