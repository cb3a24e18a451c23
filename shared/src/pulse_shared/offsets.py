"""Consumed offsets stored in PostgreSQL, in the same transaction as the effects they produced."""

from __future__ import annotations

from collections.abc import Collection

from aiokafka import TopicPartition
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text, func, select, tuple_
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


async def store_offset(
    conn: AsyncConnection, table: Table, group: str, tp: TopicPartition, next_offset: int
) -> None:
    """Record that everything before ``next_offset`` of ``tp`` has been applied (call inside the effects'
    transaction)."""
    stmt = insert(table).values(
        group_id=group, topic=tp.topic, partition=tp.partition, next_offset=next_offset
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.group_id, table.c.topic, table.c.partition],
        set_={"next_offset": stmt.excluded.next_offset, "updated_at": func.now()},
    )
    await conn.execute(stmt)


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
    seed = insert(table).values(group_id=group, topic=tp.topic, partition=tp.partition, next_offset=-1)
    await conn.execute(seed.on_conflict_do_nothing())
    query = (
        select(table.c.next_offset)
        .where(table.c.group_id == group, table.c.topic == tp.topic, table.c.partition == tp.partition)
        .with_for_update()
    )
    stored = (await conn.execute(query)).scalar_one()
    return None if stored < 0 else int(stored)
