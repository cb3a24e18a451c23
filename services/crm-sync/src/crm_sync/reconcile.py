"""Reconcile: re-push every account's current scores, re-read owners, re-try unmatched accounts.

For a mapping change, a newly connected CRM, or after fixing what made writes fail. A reconcile run marks
each account's row of the chosen connectors as pending with nothing known to be sent (so every property is
written again), creates rows for accounts a connector has never had, and forgets when owners were checked.
The connector's writer then does the work, paced by the same budget as every other write; the command line
waits and prints progress (running a writer itself when no replica holds the writer lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.store import StoreOptions, WriteStore
from crm_sync.tables import account_owners, account_state, crm_writes, reconcile_runs

CHUNK = 1000


@dataclass
class ReconcileSummary:
    """What a reconcile run covers (for a dry run: would cover)."""

    run_id: int | None
    connectors: list[str]
    dry_run: bool
    accounts: int
    #: Rows per status before the run (connector -> status -> count).
    before: dict[str, dict[str, int]] = field(default_factory=dict)

    def line(self) -> str:
        """One line for people."""
        parts = [f"{c}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                 for c, counts in self.before.items()]
        verb = "would re-push" if self.dry_run else f"reconcile {self.run_id}: re-pushing"
        return f"{verb} {self.accounts} accounts to {', '.join(self.connectors)} ({'; '.join(parts) or 'no rows yet'})"


async def start_reconcile(engine: AsyncEngine, connectors: Sequence[str], *, options: StoreOptions,
                          dry_run: bool = False, requested_by: str = "cli") -> ReconcileSummary:
    """Mark every account of ``connectors`` for a full re-push and an owner re-read (or count them)."""
    names = list(connectors)
    w = crm_writes.c
    async with engine.begin() as conn:
        accounts = int((await conn.execute(select(func.count()).select_from(account_state))).scalar() or 0)
        counts = (await conn.execute(select(w.connector, w.status, func.count()).where(w.connector.in_(names))
                                     .group_by(w.connector, w.status))).all()
        before: dict[str, dict[str, int]] = {c: {} for c in names}
        for connector, status, count in counts:
            before[connector][status] = count
        if dry_run:
            return ReconcileSummary(None, names, True, accounts, before)
        run_id = int((await conn.execute(insert(reconcile_runs).values(
            connector=",".join(names), dry_run=False, accounts=accounts, requested_by=requested_by)
            .returning(reconcile_runs.c.id))).scalar_one())
        store = WriteStore(names, options)
        last = ""
        while True:  # rows for accounts a connector has never had (a newly connected CRM)
            ids = list((await conn.execute(select(account_state.c.account_id).where(account_state.c.account_id > last)
                                           .order_by(account_state.c.account_id).limit(CHUNK))).scalars())
            if not ids:
                break
            await store.queue(conn, ids, {})
            last = ids[-1]
        await conn.execute(update(crm_writes).where(w.connector.in_(names)).values(
            sent={}, status="pending", reason=None, last_error=None, attempts=0, next_attempt_at=func.now(),
            status_since=func.now(), reconcile_id=run_id, match_tried=None))
        await conn.execute(update(account_owners).where(account_owners.c.connector.in_(names))
                           .values(checked_at=None))
    return ReconcileSummary(run_id, names, False, accounts, before)


async def progress(engine: AsyncEngine, run_id: int) -> dict[str, Any] | None:
    """How far run ``run_id`` is: rows per status (a row is done once it is no longer pending)."""
    w = crm_writes.c
    async with engine.connect() as conn:
        run = (await conn.execute(select(reconcile_runs).where(reconcile_runs.c.id == run_id))).first()
        if run is None:
            return None
        rows = (await conn.execute(select(w.status, func.count()).where(w.reconcile_id == run_id)
                                   .group_by(w.status))).all()
    counts: dict[str, int] = {str(status): int(count) for status, count in rows}
    total = sum(counts.values())
    pending = counts.get("pending", 0)
    return {"run_id": run_id, "connectors": run.connector.split(","), "requested_at": run.requested_at,
            "total": total, "done": total - pending, "pending": pending,
            "synced": counts.get("synced", 0), "unmatched": counts.get("unmatched", 0),
            "failed": counts.get("failed", 0), "finished": pending == 0}


def progress_line(p: dict[str, Any]) -> str:
    """One progress line."""
    return (f"reconcile {p['run_id']}: {p['done']}/{p['total']} done (synced {p['synced']}, unmatched "
            f"{p['unmatched']}, failed {p['failed']}), {p['pending']} pending")
