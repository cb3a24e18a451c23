"""Scoring as a real process against the real broker and PostgreSQL, under faults (resilience.md rows 12
to 15): kill -9 at random moments, a second instance joining and leaving, a processing stall longer than
the poll interval, database connections killed mid-transaction or stranded by a failover, PostgreSQL
restarted. Every run ends with
aggregates equal to the oracle."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from pulse_shared.db import create_engine, plain_database_url
from pulse_shared.events import RespondentErased, ResponseSubmitted, ResponseUpdated
from pulse_shared.localinfra import free_port
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.producer import EventProducer
from pulse_shared.settings import ServiceSettings
from pulse_shared.testing.fixtures import idempotence_env, session_idempotence
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.testing.tcp_proxy import TcpProxy
from pulse_shared.testing.topic_reader import end_offsets as log_end_offsets
from pulse_shared.topics import Topics
from scoring.store import ResponseEvent
from scoring.tables import SCHEMA, consumer_offsets
from scoring_oracle import oracle, stored_state

BASE = datetime.now(UTC).replace(microsecond=0)


def make_stream(n: int, seed: int) -> list[ResponseEvent]:
    """Answers for 40 accounts with duplicates, later revisions and a few erasures."""
    rng = random.Random(seed)
    events: list[ResponseEvent] = []
    sent: list[ResponseSubmitted | ResponseUpdated] = []
    while len(events) < n:
        roll = rng.random()
        if sent and roll < 0.1:
            events.append(rng.choice(sent))  # a retry / redelivery
        elif sent and roll < 0.2:
            old = rng.choice(sent)
            newer = ResponseUpdated(**{**old.model_dump(exclude={"type", "event_id"}), "score": rng.randint(0, 10),
                                       "comment": "changed my mind", "revised_at": old.revised_at + timedelta(hours=1)})
            sent.append(newer)
            events.append(newer)
        elif roll < 0.21:
            account, respondent = f"acct-{rng.randint(0, 39)}", f"u{rng.randint(0, 99)}"
            events.append(RespondentErased(account_id=account, respondent_id=respondent))
        else:
            i = len(events)
            answer = ResponseSubmitted(
                response_id=f"resp-{i}", account_id=f"acct-{rng.randint(0, 39)}", survey_type="nps",
                score=rng.randint(0, 10), scale_min=0, scale_max=10, respondent_id=f"u{rng.randint(0, 99)}",
                comment=rng.choice([None, "slow", "love it"]), properties={"plan": rng.choice(["free", "pro"])},
                submitted_at=BASE - timedelta(days=rng.randint(0, 60)), revised_at=BASE,
            )
            sent.append(answer)
            events.append(answer)
    return events


class Rig:
    """Broker topics, a migrated database, and scoring processes started on demand."""

    def __init__(self, bootstrap: str, database_url: str, topics: Topics, log_dir: Path) -> None:
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.topics = topics
        self.log_dir = log_dir
        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": idempotence_env(),
            "KAFKA_TOPIC_PREFIX": topics.prefix, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING",
            "KAFKA_SESSION_TIMEOUT_MS": "6000", "SCORING_SEGMENT_PROPERTIES": "plan",
        }
        self.producer = EventProducer(
            ServiceSettings(kafka_bootstrap_servers=bootstrap, kafka_enable_idempotence=session_idempotence()),
            client_id="t")

    def scoring(self) -> ServiceProcess:
        port = free_port()
        return ServiceProcess("scoring", env={**self.env, "SCORING_PORT": str(port)}, port=port,
                              log_dir=self.log_dir)

    async def produce(self, events: list[ResponseEvent], pause: float = 0.0) -> None:
        for event in events:
            await self.producer.publish(self.topics.responses, event.account_id, event)
            if pause:
                await asyncio.sleep(pause)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """Each partition's end, read from the log itself (tansu's ListOffsets can report less)."""
        return await log_end_offsets(self.bootstrap, self.topics.responses)

    async def wait_caught_up(self, timeout: float = 90.0) -> None:
        """Until the offsets stored with the counts reach the end of every partition."""
        end = await self.end_offsets()
        engine = create_engine(self.database_url, pool_size=1)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                async with engine.connect() as conn:
                    stored = dict((await conn.execute(
                        select(consumer_offsets.c.partition, consumer_offsets.c.next_offset)
                        .where(consumer_offsets.c.topic == self.topics.responses))).all())
                if all(stored.get(tp.partition, 0) >= offset for tp, offset in end.items()):
                    return
                await asyncio.sleep(0.2)
            raise AssertionError(f"scoring did not catch up: stored {stored}, end {end}")
        finally:
            await engine.dispose()

    async def state(self) -> object:
        engine = create_engine(self.database_url, pool_size=1)
        try:
            return await stored_state(engine)
        finally:
            await engine.dispose()


@pytest.fixture
async def rig(kafka_bootstrap: str, database_url: str, topics: Topics, tmp_path: Path) -> AsyncIterator[Rig]:
    await asyncio.to_thread(upgrade_to_head, "scoring.migrations", database_url, SCHEMA)
    r = Rig(kafka_bootstrap, database_url, topics, tmp_path)
    await r.producer.start()
    yield r
    await r.producer.stop()


async def test_kill_9_twenty_times_during_a_5000_answer_stream_equals_the_oracle(rig: Rig) -> None:
    # A killed member is noticed after its session timeout: short, so each restart joins at once.
    rig.env.update(KAFKA_SESSION_TIMEOUT_MS="2000")
    rng = random.Random(12)
    events = make_stream(5000, seed=12)
    chunks = [events[i : i + 250] for i in range(0, 5000, 250)]
    interrupted = 0  # kills that left produced answers unapplied (the survivor or the next process redoes them)
    engine = create_engine(rig.database_url, pool_size=1)
    try:
        for number, chunk in enumerate(chunks, start=1):
            process = rig.scoring().start(wait_ready=True, timeout=60)
            producing = asyncio.create_task(rig.produce(chunk, pause=0.002))
            await asyncio.sleep(rng.uniform(0.05, 1.2))  # somewhere in the middle of consuming the chunk
            assert process.kill() == -9
            await producing
            async with engine.connect() as conn:
                stored = (await conn.execute(select(func.sum(consumer_offsets.c.next_offset)).where(
                    consumer_offsets.c.topic == rig.topics.responses))).scalar_one() or 0
            interrupted += stored < number * len(chunk)
    finally:
        await engine.dispose()
    assert interrupted >= 10, f"only {interrupted} of 20 kills landed while answers were still to apply"
    survivor = rig.scoring().start(wait_ready=True, timeout=60)
    try:
        await rig.wait_caught_up()
        assert await rig.state() == oracle(events)
    finally:
        survivor.terminate()


async def test_a_second_instance_joining_leaving_and_rejoining_loses_and_doubles_nothing(rig: Rig) -> None:
    events = make_stream(3000, seed=13)
    first = rig.scoring().start(wait_ready=True)
    producing = asyncio.create_task(rig.produce(events, pause=0.004))
    # Blocking process control runs in threads, so answers keep flowing through every rebalance.
    second = await asyncio.to_thread(rig.scoring().start, wait_ready=True)
    await asyncio.sleep(1.0)
    assert await asyncio.to_thread(second.terminate, 25) == 0  # drains, commits, leaves the group
    await asyncio.sleep(1.0)
    second = await asyncio.to_thread(rig.scoring().start, wait_ready=True)
    assert not producing.done(), "the stream should still be flowing during the rebalances"
    await producing
    try:
        await rig.wait_caught_up()
        assert await rig.state() == oracle(events)
        # Kafka's committed offsets (what lag monitors and autoscalers read) catch up too.
        end = await rig.end_offsets()
        consumer = AIOKafkaConsumer(bootstrap_servers=rig.bootstrap, group_id="pulse-scoring",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            deadline = time.monotonic() + 15
            while True:
                committed = {tp: await consumer.committed(tp) for tp in end}
                if committed == end or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        finally:
            await consumer.stop()
        assert committed == end
    finally:
        for process in (first, second):
            assert process.terminate(timeout=25) == 0


async def test_database_connections_killed_mid_transaction_are_survived(rig: Rig) -> None:
    events = make_stream(2000, seed=15)
    process = rig.scoring().start(wait_ready=True)
    producing = asyncio.create_task(rig.produce(events, pause=0.003))
    killer = await asyncpg.connect(plain_database_url(rig.database_url))
    terminated = 0
    try:
        while not producing.done():
            terminated += await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            await asyncio.sleep(0.25)
    finally:
        await killer.close()
    await producing
    assert terminated > 5
    try:
        await rig.wait_caught_up()
        assert process.process is not None
        assert process.process.poll() is None, f"scoring died:\n{process.tail()}"
        assert await rig.state() == oracle(events)
        engine = create_engine(rig.database_url, pool_size=1)
        async with engine.connect() as conn:
            # The offsets stored with the effects cover every answer produced, exactly: none skipped, none past.
            stored = (await conn.execute(select(func.sum(consumer_offsets.c.next_offset)).where(
                consumer_offsets.c.topic == rig.topics.responses))).scalar_one()
        await engine.dispose()
        assert stored == len(events)
    finally:
        process.terminate()


async def test_a_processing_stall_longer_than_the_poll_interval_rejoins_and_counts_once(rig: Rig) -> None:
    """Row 14: a batch stuck for longer than the poll interval (here: waiting for a row lock the test holds
    on the stored offsets) gets the member expelled; it rejoins, and the work is redone without double
    counting (the stalled transaction and its retry are fenced by the same offset row)."""
    rig.env.update(KAFKA_MAX_POLL_INTERVAL_MS="3000", LOG_LEVEL="INFO")
    events = make_stream(2000, seed=14)
    process = rig.scoring().start(wait_ready=True)
    producing = asyncio.create_task(rig.produce(events, pause=0.003))
    blocker = await asyncpg.connect(plain_database_url(rig.database_url))
    try:
        deadline = time.monotonic() + 30
        held: list[object] = []
        while not held and time.monotonic() < deadline:
            await asyncio.sleep(0.5)  # until batches were stored: their offset rows exist
            transaction = blocker.transaction()
            await transaction.start()
            held = await blocker.fetch("SELECT partition FROM scoring.consumer_offsets WHERE topic = $1 FOR UPDATE",
                                       rig.topics.responses)
            if not held:
                await transaction.rollback()
        assert held, "no batch was stored before the stall"
        await asyncio.sleep(8)  # > 3 s poll interval: the member is expelled while its batch waits
        await transaction.rollback()
    finally:
        await blocker.close()
    await producing
    try:
        await rig.wait_caught_up()
        assert process.process is not None
        assert process.process.poll() is None, f"scoring died:\n{process.tail()}"
        assert await rig.state() == oracle(events)
        assert process.logs().count('"partitions assigned"') >= 2, "the stalled member never rejoined"
    finally:
        assert process.terminate(timeout=25) == 0


async def test_postgresql_restarted_mid_stream_resumes_from_the_stored_offsets(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    """Row 15 (second half): the database server goes away for a few seconds under load and comes back;
    scoring keeps running, resumes from the offsets stored with the counts, and ends equal to the oracle."""
    from pulse_shared.localinfra import EmbeddedPostgres, ensure_database

    data = tmp_path / "pg"
    server = EmbeddedPostgres(data)
    try:
        database_url = await ensure_database(server.url, "scoring_restart")
        await asyncio.to_thread(upgrade_to_head, "scoring.migrations", database_url, SCHEMA)
        rig = Rig(kafka_bootstrap, database_url, topics, tmp_path)
        await rig.producer.start()
        events = make_stream(2000, seed=16)
        process = rig.scoring().start(wait_ready=True)
        try:
            producing = asyncio.create_task(rig.produce(events, pause=0.003))
            await asyncio.sleep(2.0)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(4.0)  # down: every transaction and the outbox fail meanwhile
            server = await asyncio.to_thread(EmbeddedPostgres, data)
            await producing
            await rig.wait_caught_up(timeout=120)
            assert process.process is not None
            assert process.process.poll() is None, f"scoring died:\n{process.tail()}"
            assert await rig.state() == oracle(events)
        finally:
            assert process.terminate(timeout=25) == 0
            await rig.producer.stop()
    finally:
        server.stop()


def proxied(database_url: str) -> tuple[TcpProxy, str]:
    """A proxy in front of the database's server (on TCP or a Unix socket), and the URL through it."""
    parts = urlsplit(database_url)
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    if socket_dir.startswith("/"):
        proxy = TcpProxy(f"{socket_dir}/.s.PGSQL.{parts.port or 5432}")
    else:
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    user = parts.netloc.rpartition("@")[0]
    return proxy, urlunsplit((parts.scheme, f"{user}@{proxy.address}", parts.path, "", ""))


async def test_a_failover_that_strands_open_database_connections_is_survived(rig: Rig) -> None:
    """Row 15, as a failover looks to a client: the connections scoring holds stop answering and are never
    reset (the primary's address moved), while new connections work. Each stuck statement fails after
    DATABASE_COMMAND_TIMEOUT_SECONDS, the connection is replaced, and the stream is counted exactly once;
    without that bound the worker would wait for TCP to give up (a quarter of an hour on Linux)."""
    proxy, proxied_url = proxied(rig.database_url)
    proxy.start()
    rig.env.update(DATABASE_URL=proxied_url, DATABASE_COMMAND_TIMEOUT_SECONDS="2")
    events = make_stream(2000, seed=17)
    process = rig.scoring().start(wait_ready=True)
    try:
        producing = asyncio.create_task(rig.produce(events, pause=0.003))
        await asyncio.sleep(2.0)
        stranded = proxy.connections
        await asyncio.to_thread(proxy.strand)
        await producing
        await rig.wait_caught_up(timeout=60)
        assert stranded >= 1
        assert process.process is not None
        assert process.process.poll() is None, f"scoring died:\n{process.tail()}"
        assert await rig.state() == oracle(events)
    finally:
        assert process.terminate(timeout=25) == 0
        proxy.stop()
