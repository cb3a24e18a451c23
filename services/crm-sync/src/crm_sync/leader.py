"""The writer loop of one connector: take the writer lock when it is free, then run a cycle every interval."""

from __future__ import annotations

import asyncio
import logging
import time

from crm_sync.dispatcher import ConnectorWriter
from crm_sync.writer_lock import WriterLock
from pulse_shared.db import is_transient
from pulse_shared.loops import sleep_or_stop

log = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 2.0


async def run_writer(stop: asyncio.Event, writer: ConnectorWriter, lock: WriterLock) -> None:
    """Until ``stop``: be the connector's writer whenever no other replica is; give the lock up on the way out."""
    leading = False
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                if not await lock.held():
                    if leading:
                        writer.stopped_writing()
                        leading = False
                    if not await lock.acquire():
                        await sleep_or_stop(stop, LOCK_RETRY_SECONDS)
                        continue
                    await writer.became_writer()
                    leading = True
                await writer.cycle()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("CRM writer cycle failed; retrying", extra={"connector": writer.connector.name,
                                                                       "error": repr(exc)[:300]})
            # A steady cadence: the interval is from one flush's start to the next.
            await sleep_or_stop(stop, max(0.0, writer.options.flush_interval - (time.monotonic() - started)))
    finally:
        await lock.release()
        writer.stopped_writing()
