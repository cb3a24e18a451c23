"""Abuse protection: body limits on the streamed bytes, rate limits, exact origin checks."""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pulse_shared.http import route_path


class BodyLimitMiddleware:
    """Refuses bodies over a per-path limit with 413, counting the bytes as they arrive.

    A declared Content-Length over the limit is refused before reading; a chunked body (no length) is
    read up to the limit and refused as soon as it passes it. At most ``limit`` bytes per request are ever
    held in memory, whatever the sender claims or sends.
    """

    def __init__(self, app: ASGIApp, *, limits: dict[str, int], default: int) -> None:
        """``limits`` by path; a path ending in ``/`` is a prefix (``/v1/webhooks/`` covers every source)."""
        self.app = app
        self.limits = {path: limit for path, limit in limits.items() if not path.endswith("/")}
        self.prefixes = sorted(((path, limit) for path, limit in limits.items() if path.endswith("/")),
                               key=lambda item: -len(item[0]))
        self.default = default

    def _limit(self, path: str) -> int:
        exact = self.limits.get(path)
        if exact is not None:
            return exact
        return next((limit for prefix, limit in self.prefixes if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self._limit(route_path(scope))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _problem(send, 400, "Content-Length is not a number")
                    return
                if declared > limit:
                    await _problem(send, 413, f"body of {declared} bytes is over the limit of {limit} bytes")
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await _problem(send, 413, f"body is over the limit of {limit} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        payload = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": payload, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _problem(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per name (a write key, a client IP), refilled continuously; bounded memory."""

    def __init__(self, *, max_names: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._max = max_names
        self._clock = clock

    def take(self, name: str, per_minute: int, *, now: float | None = None) -> float:
        """Take one token; return 0 when allowed, else the seconds until a token is available."""
        moment = self._clock() if now is None else now
        rate = per_minute / 60.0
        burst = max(1.0, per_minute / 6.0)  # ten seconds' worth
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = _Bucket(burst, moment)
            self._buckets[name] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(name)
            bucket.tokens = min(burst, bucket.tokens + (moment - bucket.updated) * rate)
            bucket.updated = moment
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate


def retry_after(seconds: float) -> str:
    """A Retry-After header value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Exact match against the key's list; ``null`` (sandboxed frames, files) is never allowed."""
    if origin is None:
        return True  # not a browser: server-to-server calls carry no Origin
    return origin != "null" and origin in allowed
