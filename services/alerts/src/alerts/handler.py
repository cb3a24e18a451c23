"""Consumer handler: one transaction per batch, via the store."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.store import AlertInput, AlertStore
from pulse_shared.consumer import Record
from pulse_shared.tracing import traced

log = logging.getLogger(__name__)


class AlertsHandler:
    """Records alerts and owners; the store writes the offset in the same transaction."""

    def __init__(self, engine: AsyncEngine, store: AlertStore) -> None:
        self._engine = engine
        self._store = store

    async def handle(self, tp: TopicPartition, records: Sequence[Record[AlertInput]], next_offset: int) -> None:
        """Apply the batch and its offset atomically."""
        parent = records[-1].traceparent if records else None
        with traced("alerts.record_batch", parent, partition=tp.partition, records=len(records)):
            async with self._engine.begin() as conn:
                written = await self._store.apply(conn, tp, records, next_offset)
        if written:
            log.info("alerts recorded", extra={"alerts": written, "next_offset": next_offset})
