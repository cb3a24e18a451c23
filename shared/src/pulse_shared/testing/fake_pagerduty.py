"""A local stand-in for PagerDuty's Events API v2 (``POST /v2/enqueue``) that checks the documented body.

``trigger`` needs ``routing_key`` (32 characters), ``dedup_key`` (at most 255), and ``payload`` with
``summary`` (at most 1024 characters), ``source`` and ``severity`` (critical, error, warning, info); ``resolve``
and ``acknowledge`` need the ``dedup_key``. Accepted events answer 202 and open or close the incident of their
dedup key (a repeated trigger for an open incident adds nothing, as PagerDuty deduplicates); anything else
answers 400 and is recorded in :attr:`FakePagerDuty.violations`. ``fail_next`` scripts 429 or 500.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pulse_shared.testing.server import ThreadedServer

SEVERITIES = {"critical", "error", "warning", "info"}


@dataclass
class FakePagerDuty:
    """State and script of the fake Events API."""

    routing_key: str = "R0UT1NGKEY0000000000000000000001"
    events: list[dict[str, Any]] = field(default_factory=list)
    #: dedup_key -> "triggered" | "resolved"
    incidents: dict[str, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    _script: deque[int] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedServer | None = None

    @property
    def url(self) -> str:
        """The enqueue URL (``PAGERDUTY_EVENTS_URL``)."""
        assert self.server is not None
        return f"{self.server.url}/v2/enqueue"

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` events with ``status`` (429 or 500)."""
        self._script.extend([status] * times)

    def app(self) -> FastAPI:
        """The ASGI app of the fake."""
        app = FastAPI()

        @app.post("/v2/enqueue")
        async def enqueue(request: Request) -> JSONResponse:
            body = await request.json()
            with self._lock:
                scripted = self._script.popleft() if self._script else None
            if scripted is not None:
                return JSONResponse({"status": "throttled" if scripted == 429 else "error"}, status_code=scripted)
            problem = self._problem(body)
            if problem is not None:
                self.violations.append(problem)
                return JSONResponse({"status": "invalid event", "message": "Event object is invalid",
                                     "errors": [problem]}, status_code=400)
            with self._lock:
                self.events.append(body)
                key = body["dedup_key"]
                self.incidents[key] = "resolved" if body["event_action"] == "resolve" else "triggered"
            return JSONResponse({"status": "success", "message": "Event processed", "dedup_key": key},
                                status_code=202)

        return app

    def _problem(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "body is not an object"
        if body.get("routing_key") != self.routing_key:
            return "routing_key is missing or wrong"
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            return f"event_action {action!r}"
        key = body.get("dedup_key")
        if not isinstance(key, str) or not key or len(key) > 255:
            return "dedup_key must be 1 to 255 characters"
        if action == "trigger":
            payload = body.get("payload")
            if not isinstance(payload, dict):
                return "a trigger needs a payload"
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                return "payload.summary must be 1 to 1024 characters"
            if not payload.get("source"):
                return "payload.source is required"
            if payload.get("severity") not in SEVERITIES:
                return f"payload.severity {payload.get('severity')!r}"
        return None

    def start(self) -> FakePagerDuty:
        """Start serving on a free port."""
        self.server = ThreadedServer(self.app()).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()
