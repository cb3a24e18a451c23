"""Liveness and readiness.

``/livez`` answers 200 while the process is healthy (its event loop answers and no worker has died).
``/readyz`` runs every registered check (broker, database...) with a timeout and answers 503 while any
fails or while the service drains on SIGTERM, so a load balancer stops sending work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Check = Callable[[], Awaitable[None]]


@dataclass
class Health:
    """Registry of readiness checks and the liveness / draining state of one process."""

    check_timeout_seconds: float = 2.0
    checks: dict[str, Check] = field(default_factory=dict)
    draining: bool = False
    dead_reason: str | None = None
    started: bool = False

    def add_check(self, name: str, check: Check) -> None:
        """Register a readiness check: a coroutine that raises when the dependency is unusable."""
        self.checks[name] = check

    def mark_dead(self, reason: str) -> None:
        """Report the process as no longer live (a worker died); the orchestrator will restart it."""
        self.dead_reason = reason

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Run the checks concurrently; return whether all passed and a status per check."""
        if self.draining:
            return False, {"service": "draining"}
        if not self.started:
            return False, {"service": "starting"}
        names = list(self.checks)
        results = await asyncio.gather(
            *(asyncio.wait_for(self.checks[n](), self.check_timeout_seconds) for n in names),
            return_exceptions=True,
        )
        status: dict[str, str] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                status[name] = f"failing: {type(result).__name__}: {result}"[:300]
            else:
                status[name] = "ok"
        return all(s == "ok" for s in status.values()), status
