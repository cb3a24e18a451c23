"""One service process: an HTTP server and supervised background workers, drained on SIGTERM.

uvicorn owns the signals: on SIGTERM it stops accepting connections, lets in-flight requests finish, then
runs the app's lifespan shutdown, where the workers are told to stop (consumers finish their batch,
commit, leave the group) and waited for up to the grace period. A worker that dies marks the process dead
and makes it exit non-zero, so the orchestrator restarts it rather than leaving a half-working process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from pulse_shared.health import Health

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Worker:
    """A named background loop that runs until ``stop`` is set, then returns after draining its work."""

    name: str
    run: Callable[[asyncio.Event], Awaitable[None]]


Resources = Callable[[asyncio.Event], AbstractAsyncContextManager[Sequence[Worker]]]


@dataclass
class Runtime:
    """Lifecycle state of one process: health, the stop signal, the exit code and the server."""

    service: str
    grace_seconds: float
    health: Health = field(default_factory=Health)
    exit_code: int = 0
    server: uvicorn.Server | None = None

    def request_exit(self, code: int) -> None:
        """Ask the server to shut down (drain) and the process to exit with ``code``."""
        self.exit_code = max(self.exit_code, code)
        if self.server is not None:
            self.server.should_exit = True

    def lifespan(self, resources: Resources) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
        """A FastAPI lifespan that opens ``resources``, runs their workers and drains them on shutdown."""

        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            stop = asyncio.Event()
            async with resources(stop) as workers:
                tasks = [asyncio.create_task(self._supervise(w, stop), name=w.name) for w in workers]
                self.health.started = True
                log.info("service started", extra={"workers": [w.name for w in workers]})
                try:
                    yield
                finally:
                    self.health.draining = True
                    stop.set()
                    await self._drain(tasks)
            log.info("service stopped", extra={"exit_code": self.exit_code})

        return lifespan

    async def _supervise(self, worker: Worker, stop: asyncio.Event) -> None:
        try:
            await worker.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("worker died", extra={"worker": worker.name})
            self.health.mark_dead(f"worker {worker.name} died: {type(exc).__name__}: {exc}"[:300])
            self.request_exit(1)
            return
        if not stop.is_set():
            log.error("worker returned before shutdown", extra={"worker": worker.name})
            self.health.mark_dead(f"worker {worker.name} stopped unexpectedly")
            self.request_exit(1)

    async def _drain(self, tasks: list[asyncio.Task[None]]) -> None:
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self.grace_seconds)
        for task in pending:
            log.error("worker did not drain within the grace period", extra={"worker": task.get_name()})
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            self.exit_code = max(self.exit_code, 1)


def _after_drain(signum: int, _frame: object) -> None:
    log.info("signal received after drain", extra={"signal": signal.Signals(signum).name})


def tune_gc() -> None:
    """Move what start-up allocated out of the collector's sight and collect young objects less often.

    The services allocate many short-lived objects per batch or request; with the default thresholds the
    cyclic collector ran every 700 allocations and, now and then, walked every long-lived object (a tenth
    of the scoring consumer's time in its benchmark). Reference counting still frees nearly everything.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def serve(app: FastAPI, runtime: Runtime, *, host: str, port: int) -> int:
    """Run the service until SIGTERM/SIGINT (or a worker's death); return the process exit code."""
    tune_gc()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(runtime.grace_seconds / 2)),
        server_header=False,
    )
    server = uvicorn.Server(config)
    runtime.server = server
    # uvicorn captures SIGTERM/SIGINT while serving, drains, then re-raises them against the handlers that
    # were installed before; benign handlers here let a completed drain end with our exit code, not -15.
    previous = {sig: signal.signal(sig, _after_drain) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        asyncio.run(server.serve())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        log.error("service failed to start")
        return max(runtime.exit_code, 3)
    return runtime.exit_code
