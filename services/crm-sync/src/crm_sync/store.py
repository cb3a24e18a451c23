"""Turns score events into pending CRM writes: one row per connector and account (the outbox)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.domain.properties import score_properties
from crm_sync.tables import crm_writes
from pulse_shared.consumer import Record
from pulse_shared.events import ScoreUpdated


class WriteStore:
    """crm-sync's write path from the scores topic (run inside a TransactionalHandler's transaction)."""

    def __init__(self, connectors: Sequence[str]) -> None:
        self._connectors = tuple(connectors)

    async def apply(self, conn: AsyncConnection, records: Sequence[Record[ScoreUpdated]]) -> dict[str, Any] | None:
        """Queue the newest scores of each account for every connector; return what to log."""
        latest: dict[str, ScoreUpdated] = {}
        traces: dict[str, str | None] = {}
        for record in records:
            event = record.value
            if event.account_id not in latest or event.version > latest[event.account_id].version:
                latest[event.account_id] = event
                traces[event.account_id] = record.traceparent
        if latest and self._connectors:
            rows = [
                {"connector": c, "account_id": e.account_id, "version": e.version, "properties": score_properties(e),
                 "traceparent": traces.get(e.account_id)}
                for c in self._connectors for e in latest.values()
            ]
            stmt = insert(crm_writes).values(rows)
            # Keyed by (connector, account, version): an older or repeated version changes nothing.
            stmt = stmt.on_conflict_do_update(
                index_elements=[crm_writes.c.connector, crm_writes.c.account_id],
                set_={"version": stmt.excluded.version, "properties": stmt.excluded.properties,
                      "traceparent": stmt.excluded.traceparent,
                      "status": "pending", "attempts": 0, "next_attempt_at": func.now(), "last_error": None},
                where=crm_writes.c.version < stmt.excluded.version,
            )
            await conn.execute(stmt)
        return {"accounts": len(latest)} if latest else None
