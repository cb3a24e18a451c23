"""Background loops for outbox dispatchers and other periodic work."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from pulse_shared.db import is_transient

log = logging.getLogger(__name__)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; return True early if ``stop`` was set."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def run_until_stopped(
    stop: asyncio.Event,
    step: Callable[[], Awaitable[bool]],
    *,
    name: str,
    idle_seconds: float = 0.2,
    max_backoff_seconds: float = 10.0,
) -> None:
    """Call ``step`` until ``stop``: again at once while it reports work done, after ``idle_seconds``
    when it reports none. Transient failures back off exponentially; any other failure propagates (a bug
    should crash the process, not spin)."""
    failures = 0
    while not stop.is_set():
        try:
            busy = await step()
        except Exception as exc:
            if not is_transient(exc):
                raise
            failures += 1
            delay = min(max_backoff_seconds, 0.2 * 2**failures) * (0.5 + random.random() / 2)
            log.warning("transient failure in loop", extra={"loop": name, "error": repr(exc)[:300],
                                                             "retry_in_s": round(delay, 2)})
            await sleep_or_stop(stop, delay)
            continue
        failures = 0
        if not busy:
            await sleep_or_stop(stop, idle_seconds)
