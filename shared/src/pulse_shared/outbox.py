"""Outbox claiming: side effects stored as rows, taken by one replica at a time.

A claim leases due rows with ``FOR UPDATE SKIP LOCKED`` and commits at once, so the slow part (the HTTP
call, the publish) runs outside any lock while other replicas take other rows. A replica that dies
mid-call lets its lease expire and the row is taken again: side effects are at-least-once, and every
effect is keyed so a repeat is harmless.

A table with a ``lease_token`` column gets a fresh token with every claim: its holder records an outcome
only ``WHERE lease_token = <its token>`` (:func:`fenced`), so a worker whose lease expired and was taken over
cannot overwrite what the new holder did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Table,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine


class Claimer:
    """A prepared claim of one outbox table: the statement is built once, so a claim costs one round trip
    and no statement construction (which matters on a latency path that claims a row or two at a time)."""

    def __init__(self, table: Table, *, pending: ColumnElement[bool], due_column: str = "next_attempt_at",
                 lease_seconds: float = 30) -> None:
        pk = list(table.primary_key.columns)
        due = table.c[due_column]
        lease = table.c.lease_until
        candidates = (
            select(*pk)
            .where(pending, due <= func.now(), or_(lease.is_(None), lease < func.now()))
            .order_by(due)
            .limit(bindparam("claim_limit", type_=Integer))
            .with_for_update(skip_locked=True)
        )
        values: dict[str, Any] = {
            "lease_until": func.now() + literal_column(f"interval '{float(lease_seconds)} seconds'")}
        if "lease_token" in table.c:
            values["lease_token"] = func.gen_random_uuid()
        self._stmt = update(table).where(tuple_(*pk).in_(candidates)).values(**values).returning(*table.c)

    async def claim(self, engine: AsyncEngine, limit: int) -> Sequence[Row[Any]]:
        """Lease up to ``limit`` due rows and return them."""
        async with engine.begin() as conn:
            return (await conn.execute(self._stmt, {"claim_limit": limit})).all()


async def claim_due(
    engine: AsyncEngine,
    table: Table,
    *,
    pending: ColumnElement[bool],
    due_column: str = "next_attempt_at",
    limit: int = 100,
    lease_seconds: float = 30,
) -> Sequence[Row[Any]]:
    """Lease up to ``limit`` rows that are ``pending``, due, and not leased; return them."""
    claimer = Claimer(table, pending=pending, due_column=due_column, lease_seconds=lease_seconds)
    return await claimer.claim(engine, limit)


def fenced(table: Table, key: ColumnElement[bool], token: str) -> ColumnElement[bool]:
    """The condition for recording an outcome: the row is ``key`` and still holds the claim's ``token``."""
    return and_(key, table.c.lease_token == token)
