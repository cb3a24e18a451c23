"""Slack Web API client: posting, editing, finding a user and their DM, reading a conversation back.

Results are classified, not raised: permanent errors (channel_not_found, invalid_auth...) must not be
retried; rate limits carry their Retry-After; 5xx and timeouts are transient.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pulse_shared.metrics import EXTERNAL_CALLS, EXTERNAL_LATENCY

PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed", "account_inactive",
    "invalid_blocks", "msg_too_long", "no_text", "token_revoked", "missing_scope", "restricted_action",
    "invalid_arguments", "message_not_found", "cant_update_message", "users_not_found", "user_not_found",
    "invalid_metadata_format", "invalid_metadata_schema", "metadata_too_large", "user_disabled",
    "cannot_dm_bot", "user_is_bot", "ekm_access_denied", "team_access_not_granted", "no_permission",
})

#: The metadata ``event_type`` of Pulse's alert messages (what the read-back looks for).
ALERT_EVENT_TYPE = "pulse_alert"


@dataclass(frozen=True)
class SlackResult:
    """Outcome of one call."""

    ok: bool
    error: str | None = None
    ts: str | None = None
    channel: str | None = None
    retry_after: float | None = None
    data: dict[str, Any] | None = None
    #: The call may have taken effect although no answer says so (a timeout, a 5xx, a dropped connection).
    uncertain: bool = False

    @property
    def permanent(self) -> bool:
        """A failure that retrying cannot fix."""
        return not self.ok and self.retry_after is None and (self.error or "") in PERMANENT_ERRORS


def alert_metadata(alert_id: str) -> dict[str, Any]:
    """The message metadata that tags a post with its alert, so it can be found again."""
    return {"event_type": ALERT_EVENT_TYPE, "event_payload": {"alert_id": alert_id}}


def find_alert(messages: list[Mapping[str, Any]], alert_id: str) -> str | None:
    """The ``ts`` of the message in ``messages`` (a conversations.history page) tagged with ``alert_id``."""
    for message in messages:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == ALERT_EVENT_TYPE and payload.get("alert_id") == alert_id:
            ts = message.get("ts")
            return str(ts) if ts else None
    return None


class SlackClient:
    """A thin, instrumented Slack Web API client."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            # The process id tells which replica made a call (Slack's logs, the test fake's kill switch).
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"pulse-alerts/0.1 pid/{os.getpid()}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def post_message(self, channel: str, text: str, blocks: list[dict[str, Any]], *,
                           metadata: dict[str, Any] | None = None) -> SlackResult:
        """Post a message to a conversation (a channel or DM id)."""
        body: dict[str, Any] = {"channel": channel, "text": text, "blocks": blocks, "unfurl_links": False,
                                "unfurl_media": False}
        if metadata is not None:
            body["metadata"] = metadata
        return await self._call("POST", "chat.postMessage", json=body)

    async def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]], *,
                             metadata: dict[str, Any] | None = None) -> SlackResult:
        """Edit a message this app posted."""
        body: dict[str, Any] = {"channel": channel, "ts": ts, "text": text, "blocks": blocks}
        if metadata is not None:
            body["metadata"] = metadata
        return await self._call("POST", "chat.update", json=body)

    async def lookup_user_id(self, email: str) -> SlackResult:
        """Find a workspace member by email; ``data['user']['id']`` on success."""
        return await self._call("GET", "users.lookupByEmail", params={"email": email})

    async def open_dm(self, user_id: str) -> SlackResult:
        """Open (or find) the DM with a user; ``channel`` is its conversation id (``D...``)."""
        result = await self._call("POST", "conversations.open", json={"users": user_id})
        if result.ok:
            channel = ((result.data or {}).get("channel") or {}).get("id")
            return SlackResult(ok=True, channel=str(channel) if channel else None, data=result.data)
        return result

    async def history(self, channel: str, *, oldest: float, cursor: str | None = None,
                      limit: int = 200) -> SlackResult:
        """One page of a conversation's messages newer than ``oldest``, with their metadata."""
        params: dict[str, Any] = {"channel": channel, "oldest": f"{oldest:.6f}", "include_all_metadata": "true",
                                  "limit": limit}
        if cursor:
            params["cursor"] = cursor
        return await self._call("GET", "conversations.history", params=params)

    async def _call(self, method: str, api: str, **kwargs: Any) -> SlackResult:
        started = time.perf_counter()
        try:
            response = await self._client.request(method, api, **kwargs)
        except httpx.HTTPError as exc:
            EXTERNAL_CALLS.labels("slack", api, "transport_error").inc()
            # A request that was (or may have been) sent and got no answer may have taken effect.
            sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
            return SlackResult(ok=False, error=f"transport: {type(exc).__name__}", uncertain=sent)
        finally:
            EXTERNAL_LATENCY.labels("slack", api).observe(time.perf_counter() - started)
        if response.status_code == 429:
            EXTERNAL_CALLS.labels("slack", api, "rate_limited").inc()
            return SlackResult(ok=False, error="ratelimited", retry_after=_retry_after(response))
        if response.status_code >= 500:
            EXTERNAL_CALLS.labels("slack", api, "server_error").inc()
            return SlackResult(ok=False, error=f"http_{response.status_code}", uncertain=True)
        try:
            body = response.json()
        except ValueError:
            EXTERNAL_CALLS.labels("slack", api, "bad_response").inc()
            return SlackResult(ok=False, error=f"http_{response.status_code}_not_json", uncertain=True)
        if not body.get("ok"):
            EXTERNAL_CALLS.labels("slack", api, "error").inc()
            error = str(body.get("error", "unknown_error"))
            if error in {"ratelimited", "rate_limited"}:
                return SlackResult(ok=False, error="ratelimited", retry_after=_retry_after(response), data=body)
            return SlackResult(ok=False, error=error, data=body)
        EXTERNAL_CALLS.labels("slack", api, "ok").inc()
        return SlackResult(ok=True, ts=body.get("ts"), channel=body.get("channel") if isinstance(
            body.get("channel"), str) else None, data=body)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0
