"""Wakes the dispatcher when alert rows commit: at once in this process, by LISTEN/NOTIFY across replicas.

The consumer's transaction sends ``NOTIFY pulse_alerts_due`` (delivered on commit to every listening
connection, this replica's included); the composition root also sets the local event right after a batch
that wrote alerts commits. The dispatcher sleeps until whichever comes first: a wake-up or the next row
that becomes due by time (a comment hold ending, a backoff, a channel's pace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from pulse_shared.db import is_transient, plain_database_url
from pulse_shared.loops import sleep_or_stop

log = logging.getLogger(__name__)


class Wakeup:
    """An asyncio event fed by local signals and by PostgreSQL notifications."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake the dispatcher (safe to call often)."""
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a wake-up; return whether one came."""
        if not self._event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout=max(0.0, timeout))
        woke = self._event.is_set()
        self._event.clear()
        return woke

    async def listen(self, stop: asyncio.Event, database_url: str, channel: str) -> None:
        """Hold a LISTEN connection until ``stop``, reconnecting after failures (waking once on each
        reconnect, since notifications sent while disconnected are lost)."""
        failures = 0
        while not stop.is_set():
            conn: Any = None
            try:
                conn = await asyncpg.connect(plain_database_url(database_url), timeout=10)
                await conn.add_listener(channel, lambda *_args: self.notify())
                failures = 0
                self.notify()
                while not stop.is_set() and not conn.is_closed():
                    if await sleep_or_stop(stop, 5.0):
                        break
                    await conn.execute("SELECT 1")  # notices a dead connection
            except Exception as exc:
                if not is_transient(exc):  # a lost connection (a database restart) is "connection is closed"
                    raise
                failures += 1
                log.warning("LISTEN connection lost; reconnecting", extra={"error": repr(exc)[:200]})
                await sleep_or_stop(stop, min(10.0, 0.5 * 2**failures))
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
