"""Producer bounds and offset fencing, against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.consumer import Record
from pulse_shared.db import create_engine
from pulse_shared.events import Encoded
from pulse_shared.localinfra import Broker, create_topics
from pulse_shared.offsets import DbOffsetStore, lock_offset, offsets_table, store_offset
from pulse_shared.producer import EventProducer, PublishFailed
from pulse_shared.settings import ServiceSettings
from pulse_shared.start_offset import StoredOffset, fingerprint
from pulse_shared.testing.fixtures import session_idempotence
from pulse_shared.testing.tcp_proxy import TcpProxy, broker_behind_proxy
from pulse_shared.transactional import TransactionalHandler


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
    assert await store.load("g", [tp, TopicPartition("responses", 1)]) == {tp: StoredOffset(10)}
    await store.reset("g", tp, 0)
    assert await store.load("g", [tp]) == {tp: StoredOffset(0)}


async def test_the_handler_stores_the_fingerprint_of_its_last_record_and_a_reset_drops_it(
    engine: AsyncEngine,
) -> None:
    table = offsets_table(MetaData(), "t")
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    tp = TopicPartition("responses", 2)

    async def apply(_conn: object, records: object) -> None:
        return None

    handler = TransactionalHandler(engine, table, "g", apply, name="t", message="applied")  # type: ignore[arg-type]
    records = [Record("responses", 2, n, b"acme", n, (), 1_733_000_000_000 + n) for n in (4, 5, 6)]
    await handler.handle(tp, records, 7)
    store = DbOffsetStore(engine, table)
    assert await store.load("g", [tp]) == {tp: StoredOffset(7, 6, fingerprint(1_733_000_000_006, b"acme"))}
    # A batch with nothing to fingerprint (all of it dead-lettered) keeps the record it had.
    await handler.handle(tp, [], 9)
    assert await store.load("g", [tp]) == {tp: StoredOffset(9, 6, fingerprint(1_733_000_000_006, b"acme"))}
    await store.reset("g", tp, 0)
    assert await store.load("g", [tp]) == {tp: StoredOffset(0)}


async def test_publish_many_puts_each_account_on_the_partition_a_single_send_uses(kafka_bootstrap: str) -> None:
    """Batched publishing must not reorder an account's events against single sends: same partition, in
    the order given, with the event-type header."""
    from aiokafka import AIOKafkaConsumer

    from pulse_shared.events import ResponseSubmitted

    topic = f"many-{time.monotonic_ns()}"
    await create_topics(kafka_bootstrap, [topic], partitions=3)
    settings = ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap, kafka_enable_idempotence=session_idempotence())
    producer = EventProducer(settings, client_id="test")
    await producer.start()

    def answer(i: int) -> ResponseSubmitted:
        return ResponseSubmitted(response_id=f"r{i}", account_id=f"acct-{i % 13}", survey_type="nps", score=i % 11,
                                 scale_min=0, scale_max=10, comment="x" * (i % 300),
                                 submitted_at=now, revised_at=now)

    now = datetime.now(UTC)

    try:
        singles = {f"acct-{i}": (await producer.publish(topic, f"acct-{i}", answer(i))).partition for i in range(13)}
        many = [answer(i) for i in range(13, 1013)]  # several record batches per partition
        assert await producer.publish_many(topic, [(e.account_id, e) for e in many]) == [None] * len(many)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen: dict[str, list[tuple[int, str]]] = {}
    try:
        while sum(len(v) for v in seen.values()) < 1013:
            for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                for m in messages:
                    assert dict(m.headers)["event-type"] == b"response.submitted.v1"
                    seen.setdefault(m.key.decode(), []).append((tp.partition, m.value.decode()))
    finally:
        await consumer.stop()
    for account, placed in seen.items():
        assert {p for p, _ in placed} == {singles[account]}, account
        ids = [int(value.split('"response_id":"r')[1].split('"')[0]) for _, value in placed]
        assert ids == sorted(ids), account  # in the order given


async def test_concurrent_publish_many_calls_are_all_acknowledged(kafka_bootstrap: str) -> None:
    """Thirty-two batch requests at once (as ingest sees under load) all land: none may time out waiting on
    another's queued batch (they did, with aiokafka's per-partition batch queue, before callers took turns)."""
    from pulse_shared.events import ResponseSubmitted

    topic = f"concurrent-{time.monotonic_ns()}"
    await create_topics(kafka_bootstrap, [topic], partitions=3)
    settings = ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap, kafka_enable_idempotence=session_idempotence(),
                               kafka_send_timeout_seconds=10.0)
    producer = EventProducer(settings, client_id="test")
    await producer.start()
    now = datetime.now(UTC)

    def batch(n: int) -> list[tuple[str, ResponseSubmitted]]:
        return [(f"acct-{i % 97}", ResponseSubmitted(
            response_id=f"c{n}-{i}", account_id=f"acct-{i % 97}", survey_type="nps", score=i % 11, scale_min=0,
            scale_max=10, comment="a comment of some length " * 40, submitted_at=now, revised_at=now))
            for i in range(500)]

    try:
        for _ in range(3):
            outcomes = await asyncio.gather(*(producer.publish_many(topic, batch(n)) for n in range(32)))
            assert [e for result in outcomes for e in result if e is not None] == []
    finally:
        await producer.stop()


async def test_every_broker_failure_of_a_publish_is_publish_failed_and_the_producer_recovers() -> None:
    """The broker black-holed at the moment of the send, at every phase of the send bound: each send ends
    in PublishFailed within the bound (never another exception, never a dead producer), whichever of the
    bound and the client's own request timeout fires first; once the path is back, sends are acknowledged."""
    with broker_behind_proxy() as proxy:
        await _black_holed_sends(proxy)


async def _black_holed_sends(proxy: TcpProxy) -> None:
    bound = 1.0
    settings = ServiceSettings(kafka_bootstrap_servers=proxy.address, kafka_enable_idempotence=False,
                               kafka_send_timeout_seconds=bound)
    producer = EventProducer(settings, client_id="hole")
    topic = f"hole-{time.monotonic_ns()}"
    try:
        await create_topics(proxy.address, [topic], partitions=3)
        await producer.start()
        await producer.send(topic, key=b"acme", value=b"before")
        unexpected: list[BaseException] = []

        async def one(delay: float, index: int) -> float:
            await asyncio.sleep(delay)
            started = time.monotonic()
            try:
                if index % 2:
                    await producer.send(topic, key=f"a{index}".encode(), value=b"x")
                    unexpected.append(AssertionError(f"send {index} was acknowledged through a black hole"))
                else:
                    outcomes = await producer.publish_encoded(topic, [Encoded(f"a{index}", "t", b"x")] * 3)
                    unexpected.extend(AssertionError(f"publish {index}: {o!r}") for o in outcomes
                                      if not isinstance(o, PublishFailed))
            except PublishFailed:
                pass
            except BaseException as exc:
                unexpected.append(exc)
            return time.monotonic() - started

        for _round in range(3):
            await asyncio.to_thread(proxy.black_hole)
            took = await asyncio.gather(*(one(0.05 * i, i) for i in range(30)))
            assert unexpected == []
            assert max(took) < bound + 1.0, took
            await asyncio.to_thread(proxy.up)
            deadline = time.monotonic() + 30
            while True:  # the producer is alive: it reconnects and takes sends again
                try:
                    await producer.send(topic, key=b"acme", value=b"after")
                    break
                except PublishFailed:
                    assert time.monotonic() < deadline, "the producer never recovered"
    finally:
        await producer.stop()
