"""Which answers page the account's owner."""

from __future__ import annotations

from pulse_shared.events import ResponseSubmitted, ResponseUpdated

DETRACTOR_RULE = "detractor"
ALERTING_SENTIMENTS = frozenset({"detractor", "dissatisfied"})


def triggered_rules(answer: ResponseSubmitted | ResponseUpdated) -> list[str]:
    """The alert rules an answer triggers: NPS detractors and dissatisfied CSAT/CES answers."""
    return [DETRACTOR_RULE] if answer.sentiment in ALERTING_SENTIMENTS else []
