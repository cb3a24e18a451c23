"""A signed webhook for every other system (Gainsight, ChurnZero, Vitally, a warehouse loader...).

Each changed account's full current scores go as one JSON message (``pulse.account_scores.v1``, schema in
``docs/crm-webhook.md``), signed with Standard Webhooks: ``webhook-id`` is stable per (account, version), so a
retried message keeps its id and the receiver can drop repeats; ``webhook-timestamp`` is the send time;
``webhook-signature`` is ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` with the key the
base64-decoded secret (``whsec_...``). A flush sends its messages a few at a time. 2xx → written; 429 → one
window's back-off; 5xx and timeouts → the circuit opens and the messages are sent again; any other 4xx → a
dead letter with the receiver's answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from crm_sync.connectors.base import Failure, Gate, Owner, Pause, PendingWrite, Schema, WriteOutcome
from crm_sync.connectors.calls import OUTAGE_PAUSE, instrumented, no_gate, transport_failure
from crm_sync.domain.properties import METRICS, PARTS, WINDOWS, property_name, property_types, typed_value

MESSAGE_TYPE = "pulse.account_scores.v1"
RATE_LIMIT_PAUSE = 10.0
#: The part of a property name → its key in the message.
PART_KEYS = {"": "value", "_n": "n", "_ci_low": "ci_low", "_ci_high": "ci_high", "_change": "change",
             "_change_significant": "change_significant"}


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64); raises ValueError when it is not one."""
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError as exc:
        raise ValueError("CRM_WEBHOOK_SECRET must be whsec_ followed by base64 (as Standard Webhooks secrets are)") \
            from exc
    if len(key) < 16:
        raise ValueError("CRM_WEBHOOK_SECRET is too short: use at least 16 random bytes (24 base64 characters)")
    return key


def message_id(account_id: str, version: int) -> str:
    """``webhook-id``: the same for every delivery attempt of one (account, version)."""
    return "msg_" + hashlib.blake2b(f"{account_id}\x00{version}".encode(), digest_size=16).hexdigest()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def payload(account_id: str, version: int, properties: dict[str, str], *, sent_at: datetime) -> dict[str, Any]:
    """The message for one account, from the flat properties Pulse keeps (typed, grouped by metric/window)."""
    types = property_types()

    def typed(name: str) -> Any:
        value = properties.get(name)
        return None if value is None else typed_value(types.get(name, "string"), value)

    scores: dict[str, dict[str, dict[str, Any]]] = {}
    for metric in METRICS:
        for window in WINDOWS:
            if property_name(metric, window, "_n") not in properties:
                continue
            scores.setdefault(metric, {})[window] = {
                PART_KEYS[part]: typed(property_name(metric, window, part)) for part in PARTS}
    last = None
    if properties.get("pulse_last_response_at"):
        last = {"at": typed("pulse_last_response_at"), "score": typed("pulse_last_score"),
                "survey_type": typed("pulse_last_survey")}
        if "pulse_last_comment" in properties:
            last["comment"] = typed("pulse_last_comment")
    return {"type": MESSAGE_TYPE, "account_id": account_id, "version": version,
            "sent_at": sent_at.isoformat(timespec="milliseconds"), "scores": scores,
            "open_detractor": typed("pulse_open_detractor"), "scores_updated_at": typed("pulse_scores_updated_at"),
            "last_response": last}


class WebhookConnector:
    """Posts each changed account's scores to one URL, signed."""

    name = "webhook"
    max_batch = 100
    #: The dispatcher sends the account's full current values (not only what changed): receivers keep state.
    full_state = True

    def __init__(self, url: str, secret: str, *, timeout: float = 20.0, concurrency: int = 8,
                 gate: Gate | None = None) -> None:
        self._url = url
        self._key = signing_key(secret)
        self._client = httpx.AsyncClient(timeout=timeout)
        self._concurrency = concurrency
        self.gate: Gate = gate or no_gate

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def prepare(self) -> Schema:
        """Nothing to set up: the receiver takes the documented message."""
        return Schema()

    async def owners(self, account_ids: list[str]) -> tuple[dict[str, Owner | None], Pause | None]:
        """A webhook receiver reports no owners."""
        return {}, None

    async def write(self, writes: list[PendingWrite]) -> WriteOutcome:
        """Deliver one message per account, a few at a time; stop sending once the receiver asks for a pause."""
        outcome = WriteOutcome()
        queue = list(writes[: self.max_batch])
        lock = asyncio.Lock()

        async def worker() -> None:
            while queue:
                w = queue.pop(0)
                if outcome.pause is not None:
                    outcome.retry[w.account_id] = outcome.pause.message
                    continue
                result = await self._deliver(w)
                async with lock:
                    outcome.merge(result)

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(queue)) or 1)))
        return outcome

    async def _deliver(self, w: PendingWrite) -> WriteOutcome:
        body = json.dumps(payload(w.account_id, w.version, w.properties, sent_at=datetime.now(UTC)),
                          separators=(",", ":")).encode()
        msg_id = message_id(w.account_id, w.version)
        timestamp = int(time.time())
        headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(self._key, msg_id, timestamp, body)}
        await self.gate()
        try:
            response = await instrumented(self._client, "webhook", "deliver", "POST", self._url, content=body,
                                          headers=headers)
        except httpx.HTTPError as exc:
            return transport_failure("webhook", [w.account_id], exc)
        status = response.status_code
        if 200 <= status < 300:
            return WriteOutcome(written={w.account_id})
        text = f"webhook answered {status}: {response.text[:300]}"
        if status == 429:
            return WriteOutcome(retry={w.account_id: text}, pause=Pause("rate_limit", RATE_LIMIT_PAUSE, text))
        if status >= 500 or status == 408:
            return WriteOutcome(retry={w.account_id: text}, pause=Pause("outage", OUTAGE_PAUSE, text))
        return WriteOutcome(failed={w.account_id: Failure("rejected", text)})
