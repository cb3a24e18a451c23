"""The consumer handler of every stateful service: a batch's effects and its offset in one transaction.

The partition's offset row is locked first and records below the stored offset are skipped, so a member
expelled from the group while still working (a zombie) cannot apply a batch a second time; then the
service's ``apply`` writes its effects on the same connection, and the next offset is stored. Either all
of it commits or none of it does: the effect is exactly-once even after kill -9.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from aiokafka import TopicPartition
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pulse_shared.consumer import Record
from pulse_shared.offsets import lock_offset, store_offset
from pulse_shared.start_offset import fingerprint
from pulse_shared.tracing import traced

log = logging.getLogger(__name__)

E = TypeVar("E")

#: Applies fresh records on the transaction's connection; returns what to log about them, or None.
Apply = Callable[[AsyncConnection, Sequence[Record[E]]], Awaitable[Mapping[str, Any] | None]]


class TransactionalHandler(Generic[E]):
    """A :class:`~pulse_shared.consumer.BatchHandler` that fences, applies and stores the offset at once."""

    def __init__(self, engine: AsyncEngine, offsets: Table, group: str, apply: Apply[E], *, name: str,
                 message: str) -> None:
        self._engine = engine
        self._offsets = offsets
        self._group = group
        self._apply = apply
        self._name = name
        self._message = message

    async def handle(self, tp: TopicPartition, records: Sequence[Record[E]], next_offset: int) -> None:
        """Apply the records not applied yet, and store ``next_offset``, in one transaction."""
        parent = records[-1].traceparent if records else None
        with traced(self._name, parent, partition=tp.partition, records=len(records)):
            async with self._engine.begin() as conn:
                stored = await lock_offset(conn, self._offsets, self._group, tp)
                if stored is not None and next_offset <= stored:
                    return  # another member applied this batch already
                fresh = [r for r in records if stored is None or r.offset >= stored]
                summary = await self._apply(conn, fresh) if fresh else None
                last = records[-1] if records else None
                check = (last.offset, fingerprint(last.timestamp_ms, last.key)) if last is not None else None
                await store_offset(conn, self._offsets, self._group, tp, next_offset, check)
            if summary:
                log.info(self._message, extra={**summary, "next_offset": next_offset})
