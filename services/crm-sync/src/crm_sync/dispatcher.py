"""Drains pending CRM writes through one connector, in batches the CRM accepts, within its limits."""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter
from sqlalchemy import and_, func, literal_column, update
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.connectors.base import Connector, PendingWrite, WriteOutcome
from crm_sync.tables import crm_writes
from pulse_shared.outbox import claim_due
from pulse_shared.tracing import traced

log = logging.getLogger(__name__)

CONNECTOR_PAUSES = Counter("pulse_crm_connector_pauses_total", "CRM connector pauses by reason.",
                           ["connector", "reason"])
CRM_WRITES = Counter("pulse_crm_writes_total", "Account writes to CRMs by outcome.", ["connector", "outcome"])

PREPARE_RETRY_SECONDS = 30.0


class WriteDispatcher:
    """Claims due writes of one connector, calls it, and records each account's outcome."""

    def __init__(self, engine: AsyncEngine, connector: Connector, *, max_attempts: int) -> None:
        self._engine = engine
        self._connector = connector
        self._max_attempts = max_attempts
        self._paused_until = 0.0

    async def deliver_due(self) -> bool:
        """Write what is due; return whether there was anything."""
        if time.monotonic() < self._paused_until:
            return False
        try:
            await self._connector.prepare()
        except Exception as exc:
            self._paused_until = time.monotonic() + PREPARE_RETRY_SECONDS
            log.exception("CRM connector set-up failed; retrying later",
                      extra={"connector": self._connector.name, "error": repr(exc)[:300]})
            return False
        c = crm_writes.c
        rows = await claim_due(
            self._engine, crm_writes,
            pending=and_(c.connector == self._connector.name, c.status == "pending", c.version > c.written_version),
            limit=self._connector.max_batch,
        )
        if not rows:
            return False
        writes = [PendingWrite(r.account_id, r.version, dict(r.properties)) for r in rows]
        with traced(f"crm_sync.{self._connector.name}.write", rows[0].traceparent, accounts=len(rows)):
            outcome = await self._connector.write(writes)
        await self._record({r.account_id: r for r in rows}, outcome)
        CRM_WRITES.labels(self._connector.name, "written").inc(len(outcome.written))
        CRM_WRITES.labels(self._connector.name, "retry").inc(len(outcome.retry))
        CRM_WRITES.labels(self._connector.name, "failed").inc(len(outcome.failed))
        if outcome.pause_seconds:
            CONNECTOR_PAUSES.labels(self._connector.name, outcome.pause_reason or "other").inc()
            self._paused_until = time.monotonic() + outcome.pause_seconds
            log.warning("CRM connector paused", extra={"connector": self._connector.name,
                                                       "pause_s": round(outcome.pause_seconds, 1)})
        return True

    async def _record(self, rows: dict[str, Any], outcome: WriteOutcome) -> None:
        c = crm_writes.c
        name = self._connector.name
        async with self._engine.begin() as conn:
            for account_id in outcome.written:
                row = rows[account_id]
                await conn.execute(
                    update(crm_writes).where(c.connector == name, c.account_id == account_id).values(
                        written_version=func.greatest(c.written_version, row.version), written_at=func.now(),
                        attempts=0, lease_until=None, last_error=None,
                    )
                )
            for account_id, error in outcome.failed.items():
                await conn.execute(
                    update(crm_writes).where(c.connector == name, c.account_id == account_id,
                                             c.version == rows[account_id].version)
                    .values(status="failed", lease_until=None, last_error=error)
                )
            delay = outcome.pause_seconds or 0.0
            for account_id, error in outcome.retry.items():
                row = rows[account_id]
                attempts = row.attempts + 1
                wait = max(delay, min(600.0, 2.0**attempts))
                gave_up = attempts >= self._max_attempts and not outcome.pause_seconds
                await conn.execute(
                    update(crm_writes).where(c.connector == name, c.account_id == account_id).values(
                        attempts=attempts, lease_until=None, last_error=error,
                        status="failed" if gave_up else c.status,
                        next_attempt_at=func.now() + literal_column(f"interval '{wait:.3f} seconds'"),
                    )
                )
        for account_id in sorted(outcome.written):
            # One line per account, each in the trace of the answer that changed its scores.
            with traced(f"crm_sync.{name}.written", rows[account_id].traceparent, account_id=account_id):
                log.info("CRM updated", extra={"connector": name, "account_id": account_id,
                                               "version": rows[account_id].version})
        if outcome.retry or outcome.failed:
            log.warning("CRM writes not done", extra={"connector": name, "retry": len(outcome.retry),
                                                      "failed": len(outcome.failed)})
