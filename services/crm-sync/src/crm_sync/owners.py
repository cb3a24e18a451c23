"""Owners back to alerts: read each synced account's owner from the CRM and publish changes.

Periodically (and on reconcile) the writer asks the connector for the owners of the accounts it has written
(``max_batch`` per call, paced by the same budget). A change (a new owner, another email, no owner any more) is
stored and put in the owner outbox in one transaction, then published as ``account.owner_changed.v1`` (keyed by
account id) and marked published after the broker's acknowledgement: at-least-once, and alerts keeps the newest
change per account, so a repeat is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.connectors.base import Connector, Owner, Pause
from crm_sync.tables import account_owners, crm_writes, owner_outbox
from pulse_shared.events import AccountOwnerChanged, random_uuid, utcnow
from pulse_shared.producer import EventProducer

log = logging.getLogger(__name__)

OWNER_CHANGES = Counter("pulse_crm_owner_changes_total", "Account owner changes read from CRMs.", ["connector"])
OWNER_EVENTS = Counter("pulse_crm_owner_events_published_total", "account.owner_changed.v1 events published.")

ACCOUNTS_PER_ROUND = 5000
PUBLISH_BATCH = 500


class OwnerSync:
    """Reads owners through a connector and publishes their changes."""

    def __init__(self, engine: AsyncEngine, producer: EventProducer | None, topic: str, *,
                 recheck_after: float, wall: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._producer = producer
        self._topic = topic
        self._recheck_after = recheck_after
        self._wall = wall

    async def sync(self, connector: Connector, *, sweep: bool) -> Pause | None:
        """Read the owners of written accounts never checked (and, on a ``sweep``, of those not checked
        recently); return a pause the connector asked for."""
        name = connector.name
        w, o = crm_writes.c, account_owners.c
        stale = self._wall() - timedelta(seconds=self._recheck_after if sweep else 10 * 365 * 86400)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(
                select(w.account_id, o.owner_id, o.email, o.name, o.checked_at)
                .select_from(crm_writes.outerjoin(account_owners, and_(o.connector == w.connector,
                                                                       o.account_id == w.account_id)))
                .where(w.connector == name, w.written_version > 0, w.status != "unmatched",
                       or_(o.checked_at.is_(None), o.checked_at < stale))
                .order_by(o.checked_at.asc().nulls_first(), w.account_id)
                .limit(ACCOUNTS_PER_ROUND))).all()
        for start in range(0, len(rows), connector.max_batch):
            chunk = rows[start:start + connector.max_batch]
            found, pause = await connector.owners([r.account_id for r in chunk])
            await self._store(name, chunk, found, complete=pause is None)
            if pause is not None:
                return pause
        return None

    async def _store(self, connector: str, chunk: Sequence[Any], found: dict[str, Owner | None], *,
                     complete: bool) -> None:
        now = self._wall()
        checked = []
        changes = []
        for row in chunk:
            account_id = row.account_id
            if account_id not in found:
                if complete:
                    checked.append(account_id)  # not in the CRM now: nothing to say about its owner
                continue
            owner = found[account_id]
            checked.append(account_id)
            before = (row.owner_id, row.email, row.name)
            after = (owner.owner_id, owner.email, owner.name) if owner else (None, None, None)
            first_seen = row.checked_at is None
            if before != after and not (first_seen and owner is None):
                changes.append((account_id, owner))
        async with self._engine.begin() as conn:
            if changes:
                rows = [{"connector": connector, "account_id": a, "owner_id": ow.owner_id if ow else None,
                         "email": ow.email if ow else None, "name": ow.name if ow else None,
                         "checked_at": now, "changed_at": now} for a, ow in changes]
                stmt = insert(account_owners).values(rows)
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=[account_owners.c.connector, account_owners.c.account_id],
                    set_={"owner_id": stmt.excluded.owner_id, "email": stmt.excluded.email,
                          "name": stmt.excluded.name, "checked_at": now, "changed_at": now}))
                await conn.execute(insert(owner_outbox).values([
                    {"event_id": str(random_uuid()), "connector": connector, "account_id": a,
                     "email": ow.email if ow else None, "name": ow.name if ow else None, "occurred_at": now}
                    for a, ow in changes]))
                OWNER_CHANGES.labels(connector).inc(len(changes))
                log.info("account owners changed", extra={"connector": connector, "count": len(changes),
                                                          "accounts": [a for a, _ in changes][:20]})
            unchanged = [a for a in checked if a not in {a for a, _ in changes}]
            if unchanged:
                stmt = insert(account_owners).values(
                    [{"connector": connector, "account_id": a, "checked_at": now} for a in unchanged])
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=[account_owners.c.connector, account_owners.c.account_id],
                    set_={"checked_at": now}))

    async def publish(self) -> int:
        """Publish unpublished owner changes (oldest first); return how many the broker acknowledged."""
        if self._producer is None:
            return 0
        t = owner_outbox.c
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(owner_outbox).where(t.published_at.is_(None))
                                       .order_by(t.id).limit(PUBLISH_BATCH))).all()
        if not rows:
            return 0
        events = [(r.account_id, AccountOwnerChanged(
            event_id=r.event_id, occurred_at=r.occurred_at, account_id=r.account_id,
            owner_email=r.email if r.email and len(r.email) >= 3 else None, owner_name=r.name, crm=r.connector))
            for r in rows]
        results = await self._producer.publish_many(self._topic, events)
        done = [r.id for r, error in zip(rows, results, strict=True) if error is None]
        if done:
            async with self._engine.begin() as conn:
                await conn.execute(update(owner_outbox).where(t.id.in_(done)).values(published_at=func.now()))
            OWNER_EVENTS.inc(len(done))
        failed = len(rows) - len(done)
        if failed:
            log.warning("owner events not acknowledged; retrying", extra={"failed": failed})
        return len(done)
