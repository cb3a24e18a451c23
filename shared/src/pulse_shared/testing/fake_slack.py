"""A local stand-in for the Slack Web API that checks the documented request shapes.

Implements ``chat.postMessage``, ``chat.update`` and ``users.lookupByEmail``. Requests that break the
contract (no bearer token, no channel, more than 50 blocks, a section over 3,000 characters...) are
answered the way Slack answers them and recorded in :attr:`FakeSlack.violations`, so a test can assert
there were none. Errors can be scripted per channel: ``ratelimited`` (HTTP 429 with Retry-After),
``server_error`` (HTTP 500) or any Slack error code (HTTP 200 ``{"ok": false}``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pulse_shared.testing.server import ThreadedServer


@dataclass
class SlackCall:
    """One request the fake received."""

    method: str
    body: dict[str, Any]
    at: float


@dataclass
class FakeSlack:
    """State and script of the fake Slack API."""

    token: str = "xoxb-test-token"
    users_by_email: dict[str, str] = field(default_factory=dict)
    calls: list[SlackCall] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _script: dict[str, deque[tuple[str, int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0
    server: ThreadedServer | None = None

    @property
    def url(self) -> str:
        """The base URL to use as ``SLACK_API_BASE_URL``."""
        assert self.server is not None
        return self.server.url

    def fail_next(self, channel: str, error: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` posts to ``channel`` with ``error``."""
        with self._lock:
            queue = self._script.setdefault(channel, deque())
            for _ in range(times):
                queue.append((error, retry_after))

    def posts(self) -> list[SlackCall]:
        """Successful ``chat.postMessage`` calls."""
        return [c for c in self.calls if c.method == "chat.postMessage" and c.body.get("_ok")]

    def app(self) -> FastAPI:
        """The ASGI app of the fake."""
        app = FastAPI()

        @app.post("/chat.postMessage")
        async def post_message(request: Request) -> JSONResponse:
            return await self._message(request, "chat.postMessage")

        @app.post("/chat.update")
        async def update(request: Request) -> JSONResponse:
            return await self._message(request, "chat.update")

        @app.get("/users.lookupByEmail")
        async def lookup(request: Request) -> JSONResponse:
            if not self._authorized(request):
                return JSONResponse({"ok": False, "error": "not_authed"})
            email = request.query_params.get("email", "")
            user = self.users_by_email.get(email)
            if user is None:
                return JSONResponse({"ok": False, "error": "users_not_found"})
            return JSONResponse({"ok": True, "user": {"id": user, "profile": {"email": email}}})

        return app

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def _message(self, request: Request, method: str) -> JSONResponse:
        if not self._authorized(request):
            self.violations.append(f"{method}: missing or wrong bearer token")
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.violations.append(f"{method}: body is not JSON")
            return JSONResponse({"ok": False, "error": "invalid_arguments"})
        body = await request.json()
        call = SlackCall(method, body, time.monotonic())
        with self._lock:
            self.calls.append(call)
        problem = _check_message(body, update=method == "chat.update")
        if problem is not None:
            self.violations.append(f"{method}: {problem[1]}")
            return JSONResponse({"ok": False, "error": problem[0]})
        channel = str(body["channel"])
        with self._lock:
            scripted = self._script.get(channel)
            error = scripted.popleft() if scripted else None
        if error is not None:
            code, retry_after = error
            if code == "ratelimited":
                return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429,
                                    headers={"Retry-After": str(retry_after)})
            if code == "server_error":
                return JSONResponse({"ok": False, "error": "internal_error"}, status_code=500)
            return JSONResponse({"ok": False, "error": code})
        with self._lock:
            self._ts += 1
            ts = body.get("ts") or f"{int(time.time())}.{self._ts:06d}"
        body["_ok"] = True
        return JSONResponse({"ok": True, "channel": channel, "ts": ts,
                             "message": {"text": body.get("text"), "ts": ts}})

    def start(self) -> FakeSlack:
        """Start serving on a free port."""
        self.server = ThreadedServer(self.app()).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()


def _check_message(body: Any, *, update: bool) -> tuple[str, str] | None:
    if not isinstance(body, dict):
        return "invalid_arguments", "body is not an object"
    if not isinstance(body.get("channel"), str) or not body["channel"]:
        return "channel_not_found", "no channel"
    if update and not body.get("ts"):
        return "message_not_found", "chat.update without ts"
    text, blocks = body.get("text"), body.get("blocks")
    if not text and not blocks:
        return "no_text", "neither text nor blocks"
    if text is not None and (not isinstance(text, str) or len(text) > 40_000):
        return "msg_too_long", "text is not a string or too long"
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks", "blocks is not a list of at most 50"
        for block in blocks:
            if not isinstance(block, dict) or "type" not in block:
                return "invalid_blocks", "a block without a type"
            section = block.get("text")
            if isinstance(section, dict) and len(str(section.get("text", ""))) > 3000:
                return "invalid_blocks", "a section text over 3,000 characters"
    return None
