"""A local stand-in for the Slack Web API that checks the documented request shapes.

Implements ``chat.postMessage``, ``chat.update``, ``users.lookupByEmail``, ``conversations.open`` and
``conversations.history`` (the read-back that resolves a post left in doubt). Messages are kept per
conversation with their metadata, so ``conversations.history`` answers with what was really posted.

Conversations are addressed as Slack does: by channel id (``C...``/``G...``), by a DM's id (``D...``, from
``conversations.open``), or by a user id (``U...``/``W...``, which posts into that user's DM and answers with
the DM's id). A channel *name* (``#cs``) is accepted by ``chat.postMessage`` only when registered with
:meth:`FakeSlack.add_channel_name` (and answered with the channel's id, as Slack does); the history API takes
ids only.

Requests that break the contract (no bearer token, no channel, more than 50 blocks, a section over 3,000
characters, metadata without ``event_type``...) are answered the way Slack answers them and recorded in
:attr:`FakeSlack.violations`, so a test can assert there were none. Errors can be scripted per channel for
posts (``ratelimited`` = HTTP 429 with Retry-After, ``server_error`` = HTTP 500, ``timeout`` = no answer
within the client's patience, ``lost_answer`` = the post is stored but its answer comes too late, or any
Slack error code) and per method for the other calls.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pulse_shared.testing.outage import Outage
from pulse_shared.testing.server import ThreadedServer

CONVERSATION_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


@dataclass
class SlackCall:
    """One request the fake received."""

    method: str
    body: dict[str, Any]
    at: float
    wall: float = 0.0
    user_agent: str = ""


@dataclass
class StoredMessage:
    """A message as the fake keeps it in a conversation."""

    ts: str
    text: str | None
    blocks: list[Any] | None
    metadata: dict[str, Any] | None
    edits: int = 0


@dataclass
class FakeSlack:
    """State and script of the fake Slack API."""

    token: str = "xoxb-test-token"
    users_by_email: dict[str, str] = field(default_factory=dict)
    calls: list[SlackCall] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    #: Conversation id -> messages in posting order.
    conversations: dict[str, list[StoredMessage]] = field(default_factory=dict)
    #: How long a scripted ``timeout`` leaves the request unanswered (longer than the client's timeout).
    hang_seconds: float = 3.0
    #: Called (from the server's thread) with each accepted post, after it is stored and before the answer.
    on_post: Callable[[SlackCall], None] | None = None
    #: A bad minute of Slack's (HTTP 500 ``internal_error``, then late answers) on every method.
    outage: Outage = field(default_factory=Outage)
    _script: dict[str, deque[tuple[str, float]]] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0
    server: ThreadedServer | None = None

    @property
    def url(self) -> str:
        """The base URL to use as ``SLACK_API_BASE_URL``."""
        assert self.server is not None
        return self.server.url

    def fail_next(self, target: str, error: str, *, times: int = 1, retry_after: float = 1) -> None:
        """Answer the next ``times`` posts to ``target`` (a conversation id, a user id or a method name such as
        ``users.lookupByEmail``) with ``error``."""
        with self._lock:
            queue = self._script.setdefault(target, deque())
            for _ in range(times):
                queue.append((error, retry_after))

    def add_channel_name(self, name: str, channel_id: str) -> None:
        """Let posts address ``channel_id`` by ``name`` (``#cs``)."""
        self._names[name] = channel_id

    @staticmethod
    def dm_id(user_id: str) -> str:
        """The id of the DM conversation with ``user_id`` (stable, as Slack's are)."""
        return "D" + user_id[1:]

    def posts(self) -> list[SlackCall]:
        """Successful ``chat.postMessage`` calls."""
        return [c for c in self.calls if c.method == "chat.postMessage" and c.body.get("_ok")]

    def updates(self) -> list[SlackCall]:
        """Successful ``chat.update`` calls."""
        return [c for c in self.calls if c.method == "chat.update" and c.body.get("_ok")]

    def messages(self, conversation: str) -> list[StoredMessage]:
        """The messages in one conversation (a channel or DM id)."""
        with self._lock:
            return list(self.conversations.get(conversation, []))

    def all_messages(self) -> list[tuple[str, StoredMessage]]:
        """Every stored message with its conversation."""
        with self._lock:
            return [(conversation, m) for conversation, ms in self.conversations.items() for m in ms]

    def messages_for_alert(self, alert_id: str) -> list[tuple[str, StoredMessage]]:
        """Every stored message, in any conversation, whose metadata names ``alert_id``."""
        with self._lock:
            return [
                (conversation, m) for conversation, ms in self.conversations.items() for m in ms
                if (m.metadata or {}).get("event_payload", {}).get("alert_id") == alert_id
            ]

    def app(self) -> FastAPI:
        """The ASGI app of the fake."""
        app = FastAPI()
        self.outage.install(app, lambda: JSONResponse({"ok": False, "error": "internal_error"}, status_code=500))

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
            self._record("users.lookupByEmail", dict(request.query_params), request)
            scripted = await self._scripted("users.lookupByEmail")
            if scripted is not None:
                return scripted
            email = request.query_params.get("email", "")
            user = self.users_by_email.get(email)
            if user is None:
                return JSONResponse({"ok": False, "error": "users_not_found"})
            return JSONResponse({"ok": True, "user": {"id": user, "profile": {"email": email}}})

        @app.post("/conversations.open")
        async def open_conversation(request: Request) -> JSONResponse:
            if not self._authorized(request):
                return JSONResponse({"ok": False, "error": "not_authed"})
            body = await _body(request)
            self._record("conversations.open", body, request)
            scripted = await self._scripted("conversations.open")
            if scripted is not None:
                return scripted
            users = str(body.get("users", ""))
            if not USER_ID.match(users):
                self.violations.append(f"conversations.open: users is not one user id: {users!r}")
                return JSONResponse({"ok": False, "error": "user_not_found"})
            return JSONResponse({"ok": True, "channel": {"id": self.dm_id(users)}})

        @app.get("/conversations.history")
        async def history(request: Request) -> JSONResponse:
            if not self._authorized(request):
                return JSONResponse({"ok": False, "error": "not_authed"})
            params = dict(request.query_params)
            self._record("conversations.history", params, request)
            scripted = await self._scripted("conversations.history")
            if scripted is not None:
                return scripted
            return self._history(params)

        return app

    def _history(self, params: dict[str, str]) -> JSONResponse:
        channel = params.get("channel", "")
        if not CONVERSATION_ID.match(channel):
            self.violations.append(f"conversations.history: channel is not a conversation id: {channel!r}")
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        oldest = float(params.get("oldest", "0") or 0)
        limit = max(1, min(999, int(params.get("limit", "100") or 100)))
        with_metadata = params.get("include_all_metadata") in {"true", "1"}
        with self._lock:
            newest_first = [m for m in reversed(self.conversations.get(channel, [])) if float(m.ts) > oldest]
        start = int(params.get("cursor") or 0)
        page = newest_first[start:start + limit]
        more = start + limit < len(newest_first)
        messages = []
        for m in page:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            if with_metadata and m.metadata is not None:
                item["metadata"] = m.metadata
            messages.append(item)
        return JSONResponse({"ok": True, "messages": messages, "has_more": more,
                             "response_metadata": {"next_cursor": str(start + limit) if more else ""}})

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def _record(self, method: str, body: dict[str, Any], request: Request) -> SlackCall:
        call = SlackCall(method, body, time.monotonic(), time.time(), request.headers.get("user-agent", ""))
        with self._lock:
            self.calls.append(call)
        return call

    async def _scripted(self, target: str) -> JSONResponse | None:
        with self._lock:
            queue = self._script.get(target)
            scripted = queue.popleft() if queue else None
        if scripted is None:
            return None
        code, retry_after = scripted
        if code == "ratelimited":
            return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429,
                                headers={"Retry-After": str(int(retry_after))})
        if code == "server_error":
            return JSONResponse({"ok": False, "error": "internal_error"}, status_code=500)
        if code == "timeout":
            await asyncio.sleep(self.hang_seconds)
            return JSONResponse({"ok": False, "error": "timeout"}, status_code=504)
        return JSONResponse({"ok": False, "error": code})

    def _conversation(self, channel: str) -> str | None:
        if CONVERSATION_ID.match(channel):
            return channel
        if USER_ID.match(channel):
            return self.dm_id(channel)
        return self._names.get(channel)

    async def _message(self, request: Request, method: str) -> JSONResponse:
        if not self._authorized(request):
            self.violations.append(f"{method}: missing or wrong bearer token")
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.violations.append(f"{method}: body is not JSON")
            return JSONResponse({"ok": False, "error": "invalid_arguments"})
        body = await request.json()
        call = self._record(method, body, request)
        problem = _check_message(body, update=method == "chat.update")
        if problem is not None:
            self.violations.append(f"{method}: {problem[1]}")
            return JSONResponse({"ok": False, "error": problem[0]})
        channel = str(body["channel"])
        conversation = self._conversation(channel)
        with self._lock:
            queue = self._script.get(channel) or (self._script.get(conversation) if conversation else None)
            lost = queue is not None and bool(queue) and queue[0][0] == "lost_answer" and method == "chat.postMessage"
            if lost and queue is not None:
                queue.popleft()
        if not lost:
            scripted = await self._scripted(channel) or (
                await self._scripted(conversation) if conversation else None)
            if scripted is not None:
                return scripted
        if conversation is None:
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        if method == "chat.update":
            return self._update(body, call, conversation)
        with self._lock:
            self._ts += 1
            ts = f"{int(time.time())}.{self._ts:06d}"
            self.conversations.setdefault(conversation, []).append(
                StoredMessage(ts, body.get("text"), body.get("blocks"), body.get("metadata")))
        body["_ok"] = True
        body["_ts"] = ts
        body["_conversation"] = conversation
        if self.on_post is not None:
            self.on_post(call)
        if lost:  # stored in Slack, but the client stops waiting before the answer comes
            await asyncio.sleep(self.hang_seconds)
            return JSONResponse({"ok": False, "error": "timeout"}, status_code=504)
        return JSONResponse({"ok": True, "channel": conversation, "ts": ts,
                             "message": {"text": body.get("text"), "ts": ts}})

    def _update(self, body: dict[str, Any], call: SlackCall, conversation: str) -> JSONResponse:
        if not CONVERSATION_ID.match(str(body["channel"])):
            self.violations.append("chat.update: channel is not a conversation id")
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        with self._lock:
            found = next((m for m in self.conversations.get(conversation, []) if m.ts == body["ts"]), None)
            if found is None:
                return JSONResponse({"ok": False, "error": "message_not_found"})
            found.text, found.blocks, found.edits = body.get("text"), body.get("blocks"), found.edits + 1
            if "metadata" in body:
                found.metadata = body["metadata"]
        body["_ok"] = True
        return JSONResponse({"ok": True, "channel": conversation, "ts": body["ts"], "text": body.get("text")})

    def start(self) -> FakeSlack:
        """Start serving on a free port."""
        self.server = ThreadedServer(self.app()).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()


async def _body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        data = await request.json()
        return data if isinstance(data, dict) else {}
    return dict(await request.form())


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
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str)
        or not isinstance(metadata.get("event_payload"), dict)
    ):
        return "invalid_metadata_format", "metadata needs event_type (string) and event_payload (object)"
    return None
