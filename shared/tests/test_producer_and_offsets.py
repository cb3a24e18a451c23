"""Producer bounds and offset fencing, against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import TopicPartition
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.db import create_engine
from pulse_shared.localinfra import Broker, create_topics
from pulse_shared.offsets import DbOffsetStore, lock_offset, offsets_table, store_offset
from pulse_shared.producer import EventProducer, PublishFailed
from pulse_shared.settings import ServiceSettings


async def test_sends_are_bounded_when_the_broker_goes_away() -> None:
    broker = Broker().start()
    settings = ServiceSettings(kafka_bootstrap_servers=broker.bootstrap, kafka_enable_idempotence=False,
                               kafka_send_timeout_seconds=1.0)
    producer = EventProducer(settings, client_id="test")
    try:
        await create_topics(broker.bootstrap, ["t"], partitions=1)
        await producer.start()
        metadata = await producer.send("t", key=b"acme", value=b"1")
        assert metadata.offset == 0
        broker.stop()
        started = time.monotonic()
        with pytest.raises(PublishFailed):
            await producer.send("t", key=b"acme", value=b"2")
        assert time.monotonic() - started < 3.0
    finally:
        await producer.stop()
        broker.stop()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=4)
    async with eng.begin() as conn:
        await conn.execute(text("CREATE SCHEMA t"))
    yield eng
    await eng.dispose()


async def test_the_offset_row_fences_a_second_member_applying_the_same_batch(engine: AsyncEngine) -> None:
    table = offsets_table(MetaData(), "t")
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    tp = TopicPartition("responses", 0)
    applied: list[str] = []
    first_holds_lock = asyncio.Event()

    async def member(name: str, hold: float) -> None:
        async with engine.begin() as conn:
            stored = await lock_offset(conn, table, "g", tp)
            if name == "first":
                first_holds_lock.set()
            if stored is not None and stored >= 10:
                return  # someone applied offsets < 10 already
            await asyncio.sleep(hold)
            applied.append(name)
            await store_offset(conn, table, "g", tp, 10)

    first = asyncio.create_task(member("first", 0.3))
    await first_holds_lock.wait()
    await asyncio.gather(first, member("zombie", 0))
    assert applied == ["first"]
    store = DbOffsetStore(engine, table)
    assert await store.load("g", [tp, TopicPartition("responses", 1)]) == {tp: 10}
    await store.reset("g", tp, 0)
    assert await store.load("g", [tp]) == {tp: 0}
