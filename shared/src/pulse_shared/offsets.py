"""Consumed offsets stored in PostgreSQL, in the same transaction as the effects they produced."""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pulse_shared.start_offset import StoredOffset


def offsets_table(metadata: MetaData, schema: str) -> Table:
    """The ``consumer_offsets`` table of one service's schema."""
    return Table(
        "consumer_offsets",
        metadata,
        Column("group_id", Text, primary_key=True),
        Column("topic", Text, primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("next_offset", BigInteger, nullable=False),
        #: A record applied before ``next_offset`` and its fingerprint: recognises the log the offset points into.
        Column("check_offset", BigInteger),
        Column("fingerprint", Text),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        schema=schema,
    )


@functools.cache
def _store_statement(table: Table) -> Any:
    stmt = insert(table).values(group_id=bindparam("o_group"), topic=bindparam("o_topic"),
                                partition=bindparam("o_partition"), next_offset=bindparam("o_next"),
                                check_offset=bindparam("o_check", type_=BigInteger),
                                fingerprint=bindparam("o_print", type_=Text))
    ex = stmt.excluded
    # A batch without a record to fingerprint (all of it dead-lettered) keeps the previous one: still a record
    # of the same log.
    return stmt.on_conflict_do_update(
        index_elements=[table.c.group_id, table.c.topic, table.c.partition],
        set_={"next_offset": ex.next_offset, "check_offset": func.coalesce(ex.check_offset, table.c.check_offset),
              "fingerprint": func.coalesce(ex.fingerprint, table.c.fingerprint), "updated_at": func.now()},
    )


@functools.cache
def _reset_statement(table: Table) -> Any:
    stmt = insert(table).values(group_id=bindparam("o_group"), topic=bindparam("o_topic"),
                                partition=bindparam("o_partition"), next_offset=bindparam("o_next"))
    return stmt.on_conflict_do_update(
        index_elements=[table.c.group_id, table.c.topic, table.c.partition],
        set_={"next_offset": stmt.excluded.next_offset, "check_offset": None, "fingerprint": None,
              "updated_at": func.now()},
    )


@functools.cache
def _lock_statement(table: Table) -> Any:
    # One round trip: the seed row is inserted if missing, and ON CONFLICT DO UPDATE (a no-op update) takes
    # the row lock of an existing one; either way the stored offset comes back.
    stmt = insert(table).values(group_id=bindparam("o_group"), topic=bindparam("o_topic"),
                                partition=bindparam("o_partition"), next_offset=-1)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.group_id, table.c.topic, table.c.partition],
        set_={"next_offset": table.c.next_offset},
    ).returning(table.c.next_offset)


async def store_offset(
    conn: AsyncConnection, table: Table, group: str, tp: TopicPartition, next_offset: int,
    check: tuple[int, str] | None = None,
) -> None:
    """Record that everything before ``next_offset`` of ``tp`` has been applied (call inside the effects'
    transaction); ``check`` is a record applied (its offset and :func:`~pulse_shared.start_offset.fingerprint`)
    by which the log is recognised on the next assignment."""
    await conn.execute(_store_statement(table), {
        "o_group": group, "o_topic": tp.topic, "o_partition": tp.partition, "o_next": next_offset,
        "o_check": check[0] if check else None, "o_print": check[1] if check else None})


class DbOffsetStore:
    """Loads the offsets a service stored with its effects, for the runner to seek to on assignment."""

    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self._engine = engine
        self._table = table

    async def load(self, group: str, partitions: Collection[TopicPartition]) -> dict[TopicPartition, StoredOffset]:
        """The stored next offset of each partition that has one, with its fingerprinted record."""
        if not partitions:
            return {}
        t = self._table
        keys = [(tp.topic, tp.partition) for tp in partitions]
        query = select(t.c.topic, t.c.partition, t.c.next_offset, t.c.check_offset, t.c.fingerprint).where(
            t.c.group_id == group, tuple_(t.c.topic, t.c.partition).in_(keys)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            TopicPartition(row.topic, row.partition): StoredOffset(
                int(row.next_offset), None if row.check_offset is None else int(row.check_offset), row.fingerprint)
            for row in rows if row.next_offset >= 0
        }

    async def reset(self, group: str, tp: TopicPartition, next_offset: int) -> None:
        """Overwrite the stored offset of ``tp`` (after the broker lost the log it pointed into)."""
        async with self._engine.begin() as conn:
            await conn.execute(_reset_statement(self._table), {
                "o_group": group, "o_topic": tp.topic, "o_partition": tp.partition, "o_next": next_offset})


async def lock_offset(conn: AsyncConnection, table: Table, group: str, tp: TopicPartition) -> int | None:
    """Lock the partition's offset row for this transaction and return the stored next offset.

    Call first in the effects' transaction and skip records below the returned offset: a member that was
    expelled from the group while still processing (a zombie) then cannot apply a batch a second time,
    because it waits on this lock and sees the offset the new owner stored.
    """
    stored = (await conn.execute(_lock_statement(table), {"o_group": group, "o_topic": tp.topic,
                                                          "o_partition": tp.partition})).scalar_one()
    return None if stored < 0 else int(stored)
