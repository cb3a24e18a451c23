"""Slack Web API client: ``chat.postMessage``, ``chat.update``, ``users.lookupByEmail``.

Results are classified, not raised: permanent errors (channel_not_found, invalid_auth...) must not be
retried; rate limits carry their Retry-After; 5xx and timeouts are transient.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from pulse_shared.metrics import EXTERNAL_CALLS, EXTERNAL_LATENCY

PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed", "account_inactive",
    "invalid_blocks", "msg_too_long", "no_text", "token_revoked", "missing_scope", "restricted_action",
    "invalid_arguments", "message_not_found", "cant_update_message", "users_not_found",
})


@dataclass(frozen=True)
class SlackResult:
    """Outcome of one call."""

    ok: bool
    error: str | None = None
    ts: str | None = None
    channel: str | None = None
    retry_after: float | None = None
    data: dict[str, Any] | None = None

    @property
    def permanent(self) -> bool:
        """A failure that retrying cannot fix."""
        return not self.ok and self.retry_after is None and (self.error or "") in PERMANENT_ERRORS


class SlackClient:
    """A thin, instrumented Slack Web API client."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def post_message(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> SlackResult:
        """Post a message to a channel or a user id (a DM)."""
        return await self._call("POST", "chat.postMessage", json={"channel": channel, "text": text,
                                                                   "blocks": blocks, "unfurl_links": False})

    async def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> SlackResult:
        """Edit a message this app posted."""
        return await self._call("POST", "chat.update", json={"channel": channel, "ts": ts, "text": text,
                                                              "blocks": blocks})

    async def lookup_user_id(self, email: str) -> SlackResult:
        """Find a workspace member by email; ``data['user']['id']`` on success."""
        return await self._call("GET", "users.lookupByEmail", params={"email": email})

    async def _call(self, method: str, api: str, **kwargs: Any) -> SlackResult:
        started = time.perf_counter()
        try:
            response = await self._client.request(method, api, **kwargs)
        except httpx.HTTPError as exc:
            EXTERNAL_CALLS.labels("slack", api, "transport_error").inc()
            return SlackResult(ok=False, error=f"transport: {type(exc).__name__}")
        finally:
            EXTERNAL_LATENCY.labels("slack", api).observe(time.perf_counter() - started)
        if response.status_code == 429:
            EXTERNAL_CALLS.labels("slack", api, "rate_limited").inc()
            return SlackResult(ok=False, error="ratelimited", retry_after=_retry_after(response))
        if response.status_code >= 500:
            EXTERNAL_CALLS.labels("slack", api, "server_error").inc()
            return SlackResult(ok=False, error=f"http_{response.status_code}")
        try:
            body = response.json()
        except ValueError:
            EXTERNAL_CALLS.labels("slack", api, "bad_response").inc()
            return SlackResult(ok=False, error=f"http_{response.status_code}_not_json")
        if not body.get("ok"):
            EXTERNAL_CALLS.labels("slack", api, "error").inc()
            return SlackResult(ok=False, error=str(body.get("error", "unknown_error")), data=body)
        EXTERNAL_CALLS.labels("slack", api, "ok").inc()
        return SlackResult(ok=True, ts=body.get("ts"), channel=body.get("channel"), data=body)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0
