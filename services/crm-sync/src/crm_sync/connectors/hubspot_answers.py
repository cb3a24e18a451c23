"""HubSpot's answers, read as decisions (pure, tested with the documented bodies).

- 200/201: every input done.
- 207: ``errors[]`` name the inputs that failed in ``context.ids``: ``OBJECT_NOT_FOUND`` → the account is
  not in the CRM (unmatched, or linked by the match property); ``VALIDATION_ERROR``/``INVALID_*`` → a dead
  letter with HubSpot's message; anything else → retry. Inputs no error names were applied.
- 400 ``VALIDATION_ERROR`` on the whole batch → the batch is split to find the input HubSpot refuses.
- 429: ``TEN_SECONDLY_ROLLING`` → back off one window; ``DAILY`` → paused until the portal's next day.
- 401/403: the token is wrong or lacks a scope → pause (an operator must act), writes kept.
- 5xx, timeouts → outage (the circuit opens); other statuses → retry with HubSpot's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_sync.connectors.base import Failure, Pause, WriteOutcome

RATE_LIMIT_PAUSE = 10.0
AUTH_PAUSE = 60.0
OUTAGE_PAUSE = 2.0
INVALID = ("VALIDATION_ERROR", "INVALID_")


@dataclass
class BatchAnswer:
    """A batch call's answer, decided: the outcome, the inputs not found, and whether to split the batch."""

    outcome: WriteOutcome = field(default_factory=WriteOutcome)
    not_found: list[str] = field(default_factory=list)
    split: bool = False


def message_of(payload: dict[str, Any], fallback: str) -> str:
    """HubSpot's message (with its correlation id, which HubSpot support asks for)."""
    message = str(payload.get("message") or fallback)[:400]
    correlation = payload.get("correlationId")
    return f"{message} (correlationId {correlation})" if correlation else message


def pause_for(status: int, payload: dict[str, Any]) -> Pause | None:
    """The whole-connector pause an answer calls for, if any."""
    if status == 429:
        if payload.get("policyName") == "DAILY":
            return Pause("daily_limit", 0.0, message_of(payload, "HubSpot daily limit"))
        return Pause("rate_limit", RATE_LIMIT_PAUSE, message_of(payload, "HubSpot rate limit"))
    if status in (401, 403):
        return Pause("auth", AUTH_PAUSE, f"HubSpot refused the token ({status}): {message_of(payload, '')}")
    if status >= 500:
        return Pause("outage", OUTAGE_PAUSE, f"HubSpot {status}: {message_of(payload, '')}")
    return None


def batch_answer(status: int, payload: dict[str, Any], ids: list[str]) -> BatchAnswer:
    """Decide what a batch update's answer means for each of ``ids`` (the inputs, in the request's order)."""
    answer = BatchAnswer()
    if status in (200, 201):
        answer.outcome.written = set(ids)
        return answer
    pause = pause_for(status, payload)
    if pause is not None:
        answer.outcome.retry = dict.fromkeys(ids, pause.message)
        answer.outcome.pause = pause
        return answer
    if status == 207:
        named: set[str] = set()
        wanted = set(ids)
        for error in payload.get("errors") or []:
            if not isinstance(error, dict):
                continue
            category = str(error.get("category", ""))
            context = error.get("context") if isinstance(error.get("context"), dict) else {}
            failed = [str(i) for i in (context or {}).get("ids") or [] if str(i) in wanted]
            message = message_of(error, category or "item error")
            for account_id in failed:
                named.add(account_id)
                if category == "OBJECT_NOT_FOUND":
                    answer.not_found.append(account_id)
                elif category.startswith(INVALID):
                    answer.outcome.failed[account_id] = Failure("invalid_value", message)
                else:
                    answer.outcome.retry[account_id] = message
        answer.outcome.written = wanted - named
        return answer
    if status == 400 and str(payload.get("category", "")).startswith(INVALID):
        if len(ids) > 1:
            answer.split = True
        else:
            answer.outcome.failed = {ids[0]: Failure("invalid_value", message_of(payload, "invalid value"))}
        return answer
    answer.outcome.retry = dict.fromkeys(ids, f"HubSpot {status}: {message_of(payload, '')}")
    return answer
