"""Polling a condition with a deadline: how tests wait (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

POLL_SECONDS = 0.05


async def eventually(check: Callable[[], object | Awaitable[object]], *, timeout: float = 30.0,
                     what: str = "the condition") -> None:
    """Return once ``check()`` (sync or async) is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)
