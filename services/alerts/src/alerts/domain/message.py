"""The Slack message of an alert (Block Kit), with survey text escaped so it cannot ping anyone."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

MAX_SECTION = 3000
SCALE_LABEL = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}


class AlertFacts(BaseModel):
    """What an alert says about the answer (stored with the alert)."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    response_id: str
    survey_type: str
    score: int
    scale_min: int
    scale_max: int
    sentiment: str
    comment: str | None = None
    respondent_id: str | None = None
    respondent_email: str | None = None
    source: str = "api"


def escape(text: str) -> str:
    """Escape Slack's control characters (``&``, ``<``, ``>``) in user-supplied text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(facts: AlertFacts, *, owner_mention: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The notification text and the blocks of an alert."""
    label = SCALE_LABEL.get(facts.survey_type, facts.survey_type.upper())
    account = escape(facts.account_id)
    headline = f"{facts.sentiment.capitalize()}: {account} gave {label} {facts.score}/{facts.scale_max}"
    who = escape(facts.respondent_email or facts.respondent_id or "an anonymous respondent")
    comment = escape(facts.comment) if facts.comment else "_No comment yet._"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(headline, 150), "emoji": False}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Account*\n{account}"},
                {"type": "mrkdwn", "text": f"*Score*\n{label} {facts.score} ({facts.sentiment})"},
                {"type": "mrkdwn", "text": f"*Respondent*\n{_clip(who, 500)}"},
                {"type": "mrkdwn", "text": f"*Source*\n{escape(facts.source)}"},
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"> {comment}", MAX_SECTION)}},
    ]
    if owner_mention:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Owner: {owner_mention}"}]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"Response `{_clip(escape(facts.response_id), 200)}` · Pulse"}]})
    return headline, blocks
