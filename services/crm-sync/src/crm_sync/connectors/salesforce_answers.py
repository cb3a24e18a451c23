"""Salesforce's answers, read as decisions (pure, tested with the documented bodies).

Call level (an error body is a JSON array ``[{"message", "errorCode", "fields"}]``):
- 401 ``INVALID_SESSION_ID``: the token expired; the connector fetches a new one once and repeats the call;
- 403 ``REQUEST_LIMIT_EXCEEDED``: the org's API allowance is spent → a stored pause (every replica, restarts);
- other 401/403 → the credentials are refused (pause); 5xx → outage (the circuit opens);
- 300 → several records match the external id: nothing was written, and retrying cannot help.

Record level (sObject Collections, one result per record in request order, ``errors[].statusCode``):
lock and timeout codes are retried; a deleted record makes the account unmatched; ``DUPLICATE_EXTERNAL_ID``
is an ambiguous match; every other code is a dead letter with Salesforce's message.
"""

from __future__ import annotations

from typing import Any

from crm_sync.connectors.base import Failure, Pause, WriteOutcome

REQUEST_LIMIT_PAUSE = 3600.0
AUTH_PAUSE = 60.0
OUTAGE_PAUSE = 2.0
RETRYABLE = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION",
                       "API_TEMPORARILY_UNAVAILABLE"})
GONE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID"})


def first_error(payload: Any) -> tuple[str, str]:
    """(errorCode, message) of an error body (a list of errors, or one object)."""
    error = payload[0] if isinstance(payload, list) and payload else payload
    if not isinstance(error, dict):
        return "", ""
    code = str(error.get("errorCode") or error.get("statusCode") or error.get("error") or "")
    return code, str(error.get("message") or error.get("error_description") or "")[:400]


def session_expired(status: int, payload: Any) -> bool:
    """Whether the answer says the access token is no longer valid."""
    return status == 401 and first_error(payload)[0] in ("INVALID_SESSION_ID", "")


def pause_for(status: int, payload: Any, *, limit_pause: float = REQUEST_LIMIT_PAUSE) -> Pause | None:
    """The whole-connector pause an answer calls for, if any."""
    code, message = first_error(payload)
    if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        return Pause("request_limit", limit_pause, f"Salesforce API limit: {message}")
    if status in (401, 403):
        return Pause("auth", AUTH_PAUSE, f"Salesforce refused the credentials ({status} {code}): {message}")
    if status >= 500:
        return Pause("outage", OUTAGE_PAUSE, f"Salesforce {status} {code}: {message}")
    return None


def call_outcome(status: int, payload: Any, ids: list[str]) -> WriteOutcome | None:
    """The outcome of a call that failed as a whole (None: the call succeeded, read its results)."""
    if 200 <= status < 300:
        return None
    pause = pause_for(status, payload)
    code, message = first_error(payload)
    if pause is not None:
        return WriteOutcome(retry=dict.fromkeys(ids, pause.message), pause=pause)
    if status == 300:
        return WriteOutcome(failed=dict.fromkeys(ids, Failure(
            "ambiguous_match", f"several Salesforce records match the external id (300): {message}")))
    return WriteOutcome(retry=dict.fromkeys(ids, f"Salesforce {status} {code}: {message}"))


def record_outcomes(results: Any, ids: list[str]) -> WriteOutcome:
    """Per-record results of sObject Collections (in request order) for the accounts ``ids``."""
    outcome = WriteOutcome()
    if not isinstance(results, list) or len(results) != len(ids):
        outcome.retry = dict.fromkeys(ids, "Salesforce answered a result list that does not match the request")
        return outcome
    for account_id, result in zip(ids, results, strict=True):
        if isinstance(result, dict) and result.get("success") is True:
            outcome.written.add(account_id)
            if result.get("created") is True:
                outcome.created.add(account_id)
            continue
        errors = result.get("errors") if isinstance(result, dict) else None
        code, message = first_error(errors or [{}])
        fields = (errors[0].get("fields") if errors and isinstance(errors[0], dict) else None) or []
        text = f"{code}: {message}" + (f" (fields {', '.join(map(str, fields))})" if fields else "")
        if code in RETRYABLE:
            outcome.retry[account_id] = text
        elif code in GONE:
            outcome.unmatched[account_id] = f"the Salesforce Account is gone ({text})"
        elif code == "DUPLICATE_EXTERNAL_ID":
            outcome.failed[account_id] = Failure("ambiguous_match", text)
        else:
            outcome.failed[account_id] = Failure("invalid_value", text or "refused without a reason")
    return outcome
