"""Consumer handler: one transaction per batch, via the store."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.store import WriteStore
from pulse_shared.consumer import Record
from pulse_shared.events import ScoreUpdated
from pulse_shared.tracing import traced

log = logging.getLogger(__name__)


class CrmSyncHandler:
    """Queues CRM writes; the store writes the offset in the same transaction."""

    def __init__(self, engine: AsyncEngine, store: WriteStore) -> None:
        self._engine = engine
        self._store = store

    async def handle(self, tp: TopicPartition, records: Sequence[Record[ScoreUpdated]], next_offset: int) -> None:
        """Apply the batch and its offset atomically."""
        parent = records[-1].traceparent if records else None
        with traced("crm_sync.queue_batch", parent, partition=tp.partition, records=len(records)):
            async with self._engine.begin() as conn:
                queued = await self._store.apply(conn, tp, records, next_offset)
        if queued:
            log.info("CRM writes queued", extra={"accounts": queued, "next_offset": next_offset})
