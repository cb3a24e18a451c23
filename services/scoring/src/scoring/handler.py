"""Consumer handler: one transaction per batch, via the store."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.consumer import Record
from pulse_shared.tracing import traced
from scoring.store import ResponseEvent, ResponseStore

log = logging.getLogger(__name__)


class ScoringHandler:
    """Applies response batches; the store writes the offset in the same transaction."""

    def __init__(self, engine: AsyncEngine, store: ResponseStore) -> None:
        self._engine = engine
        self._store = store

    async def handle(self, tp: TopicPartition, records: Sequence[Record[ResponseEvent]], next_offset: int) -> None:
        """Apply the batch and its offset atomically."""
        parent = records[-1].traceparent if records else None
        with traced("scoring.apply_batch", parent, partition=tp.partition, records=len(records)):
            async with self._engine.begin() as conn:
                outcome = await self._store.apply(conn, tp, records, next_offset)
        if records and log.isEnabledFor(logging.INFO):
            log.info(
                "responses stored and counts updated",
                extra={"applied": outcome.applied, "skipped": outcome.skipped_already_applied,
                       "accounts": sorted(outcome.accounts_changed)[:20], "next_offset": next_offset},
            )
