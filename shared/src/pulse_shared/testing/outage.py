"""A vendor's bad minute, for the fakes of external APIs: every call answered with a 5xx for a while, then
every call carried out but answered late (later than a client's timeout), then back to normal.

Installed as middleware on a fake's app, so it applies to every endpoint alike. Times are on the monotonic
clock; :meth:`Outage.begin` sets both phases from now.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from starlette.responses import Response


@dataclass
class Outage:
    """5xx answers until ``failing_until``; then answers held back ``late_seconds`` until ``late_until``."""

    failing_until: float = 0.0
    late_until: float = 0.0
    late_seconds: float = 0.0
    #: Calls answered with a 5xx, and calls answered late (after they were carried out).
    failed: int = 0
    late: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, *, failing_for: float, then_late_for: float = 0.0, late_seconds: float = 0.0) -> None:
        """Fail every call for ``failing_for`` seconds from now, then answer each ``late_seconds`` late for
        ``then_late_for`` seconds more."""
        now = time.monotonic()
        with self._lock:
            self.failing_until = now + failing_for
            self.late_until = now + failing_for + then_late_for
            self.late_seconds = late_seconds

    def end(self) -> None:
        """Back to normal at once."""
        with self._lock:
            self.failing_until = self.late_until = 0.0

    @property
    def active(self) -> bool:
        """Whether calls made now fail or are answered late."""
        return time.monotonic() < max(self.failing_until, self.late_until)

    def install(self, app: FastAPI, failure: Callable[[], Response]) -> None:
        """Apply the outage to every call ``app`` serves; ``failure`` builds the vendor's 5xx answer."""

        @app.middleware("http")
        async def weather(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            now = time.monotonic()
            if now < self.failing_until:
                with self._lock:
                    self.failed += 1
                return failure()
            response = await call_next(request)
            if now < self.late_until:
                with self._lock:
                    self.late += 1
                await asyncio.sleep(self.late_seconds)
            return response
