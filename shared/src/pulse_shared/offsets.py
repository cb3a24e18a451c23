"""Consumed offsets stored in PostgreSQL, in the same transaction as the effects they produced."""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def offsets_table(metadata: MetaData, schema: str) -> Table:
    """The ``consumer_offsets`` table of one service's schema."""
    return Table(
        "consumer_offsets",
        metadata,
        Column("group_id", Text, primary_key=True),
        Column("topic", Text, primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("next_offset", BigInteger, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        schema=schema,
    )


@functools.cache
def _store_statement(table: Table) -> Any:
    stmt = insert(table).values(group_id=bindparam("o_group"), topic=bindparam("o_topic"),
                                partition=bindparam("o_partition"), next_offset=bindparam("o_next"))
    return stmt.on_conflict_do_update(
        index_elements=[table.c.group_id, table.c.topic, table.c.partition],
        set_={"next_offset": stmt.excluded.next_offset, "updated_at": func.now()},
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
    conn: AsyncConnection, table: Table, group: str, tp: TopicPartition, next_offset: int
) -> None:
    """Record that everything before ``next_offset`` of ``tp`` has been applied (call inside the effects'
    transaction)."""
    await conn.execute(_store_statement(table), {"o_group": group, "o_topic": tp.topic, "o_partition": tp.partition,
                                                 "o_next": next_offset})


class DbOffsetStore:
    """Loads the offsets a service stored with its effects, for the runner to seek to on assignment."""

    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self._engine = engine
        self._table = table

    async def load(self, group: str, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        """The stored next offset of each partition that has one."""
        if not partitions:
            return {}
        t = self._table
        keys = [(tp.topic, tp.partition) for tp in partitions]
        query = select(t.c.topic, t.c.partition, t.c.next_offset).where(
            t.c.group_id == group, tuple_(t.c.topic, t.c.partition).in_(keys)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            TopicPartition(row.topic, row.partition): int(row.next_offset) for row in rows if row.next_offset >= 0
        }

    async def reset(self, group: str, tp: TopicPartition, next_offset: int) -> None:
        """Overwrite the stored offset of ``tp`` (after the broker lost the log it pointed into)."""
        async with self._engine.begin() as conn:
            await store_offset(conn, self._table, group, tp, next_offset)


async def lock_offset(conn: AsyncConnection, table: Table, group: str, tp: TopicPartition) -> int | None:
    """Lock the partition's offset row for this transaction and return the stored next offset.

    Call first in the effects' transaction and skip records below the returned offset: a member that was
    expelled from the group while still processing (a zombie) then cannot apply a batch a second time,
    because it waits on this lock and sees the offset the new owner stored.
    """
    stored = (await conn.execute(_lock_statement(table), {"o_group": group, "o_topic": tp.topic,
                                                          "o_partition": tp.partition})).scalar_one()
    return None if stored < 0 else int(stored)
