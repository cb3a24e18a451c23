"""The consumer runner against the real broker: order, commits, dead letters, retries, stored offsets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from pulse_shared.consumer import ConsumerRunner, DeadLetterLimitExceeded, Record, RunnerConfig
from pulse_shared.events import Encoded, InvalidEvent
from pulse_shared.localinfra import Broker, create_topics
from pulse_shared.producer import EventProducer, PublishFailed
from pulse_shared.record_probe import fingerprints_at
from pulse_shared.settings import ConfigError, ServiceSettings
from pulse_shared.start_offset import StoredOffset, fingerprint
from pulse_shared.testing.fixtures import session_idempotence
from pulse_shared.testing.topic_reader import read_topic
from pulse_shared.testing.waiting import eventually
from pulse_shared.topics import Topics


def decode(message: ConsumerRecord) -> int:
    try:
        return int(json.loads(message.value)["n"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidEvent(f"not a counter message: {exc}") from exc


class Collect:
    """A handler that remembers what it saw; can fail transiently a given number of times."""

    def __init__(self, transient_failures: int = 0) -> None:
        self.seen: dict[int, list[int]] = {}
        self.next_offsets: dict[int, int] = {}
        self.failures_left = transient_failures
        self.calls = 0

    async def handle(self, tp: TopicPartition, records: Sequence[Record[int]], next_offset: int) -> None:
        self.calls += 1
        if self.failures_left > 0:
            self.failures_left -= 1
            raise ConnectionResetError("database went away")
        self.seen.setdefault(tp.partition, []).extend(r.value for r in records)
        self.next_offsets[tp.partition] = next_offset


class FixedOffsets:
    def __init__(self, offsets: dict[TopicPartition, int | StoredOffset]) -> None:
        self.offsets = {tp: o if isinstance(o, StoredOffset) else StoredOffset(o) for tp, o in offsets.items()}
        self.resets: list[tuple[TopicPartition, int]] = []

    async def load(self, group: str, partitions: Collection[TopicPartition]) -> dict[TopicPartition, StoredOffset]:
        return {tp: o for tp, o in self.offsets.items() if tp in partitions}

    async def reset(self, group: str, tp: TopicPartition, next_offset: int) -> None:
        self.resets.append((tp, next_offset))
        self.offsets[tp] = StoredOffset(next_offset)


def settings_for(bootstrap: str, topics: Topics, *, idempotent: bool | None = None) -> ServiceSettings:
    """Settings on ``bootstrap``: the session broker's idempotence unless told (a tansu broker of a test's
    own has no idempotent producer)."""
    return ServiceSettings(
        kafka_bootstrap_servers=bootstrap,
        kafka_enable_idempotence=session_idempotence() if idempotent is None else idempotent,
        kafka_topic_prefix=topics.prefix
    )


async def produce(producer: EventProducer, topic: str, values: list[bytes], key: bytes = b"acme") -> None:
    for value in values:
        await producer.send(topic, key=key, value=value)


@contextlib.asynccontextmanager
async def running(runner: ConsumerRunner[int]) -> AsyncIterator[asyncio.Task[None]]:
    """The runner consuming in a task while the block runs; stopped (drained) after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await task


async def run_until(runner: ConsumerRunner[int], condition: object, timeout: float = 20.0) -> None:
    async with running(runner) as task, asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            if task.done():
                task.result()
            await asyncio.sleep(0.05)


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


@pytest.fixture
async def producer(kafka_bootstrap: str, topics: Topics) -> EventProducer:
    p = EventProducer(settings_for(kafka_bootstrap, topics), client_id="test")
    await p.start()
    yield p  # type: ignore[misc]
    await p.stop()


async def test_processes_in_order_and_commits_after_the_effects(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer
) -> None:
    await produce(producer, topics.responses, [json.dumps({"n": i}).encode() for i in range(50)])
    handler = Collect()
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics), RunnerConfig(group_id="g-order", topics=(topics.responses,),
                                                            max_batch=7),
        decoder=decode, handler=handler, producer=producer,
    )
    await run_until(runner, lambda: sum(len(v) for v in handler.seen.values()) == 50)
    [(partition, seen)] = handler.seen.items()
    assert seen == list(range(50))
    assert await committed(kafka_bootstrap, "g-order", TopicPartition(topics.responses, partition)) == 50


async def test_undecodable_messages_go_to_the_dead_letter_topic_with_a_reason(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer
) -> None:
    await produce(producer, topics.responses, [b'{"n": 1}', b"not json", b'{"n": 2}'])
    handler = Collect()
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics), RunnerConfig(group_id="g-dlq", topics=(topics.responses,)),
        decoder=decode, handler=handler, producer=producer,
    )
    await run_until(runner, lambda: sum(len(v) for v in handler.seen.values()) == 2)
    assert next(iter(handler.seen.values())) == [1, 2]
    assert next(iter(handler.next_offsets.values())) == 3

    dlq = AIOKafkaConsumer(topics.dead_letter, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await dlq.start()
    try:
        batch = await dlq.getmany(timeout_ms=5000)
    finally:
        await dlq.stop()
    [message] = [m for msgs in batch.values() for m in msgs]
    headers = dict(message.headers)
    assert message.value == b"not json"
    assert message.key == b"acme"
    assert b"not a counter message" in headers["pulse-dlq-reason"]
    assert headers["pulse-dlq-offset"] == b"1"
    assert headers["pulse-dlq-group"] == b"g-dlq"


async def test_mostly_undecodable_stream_crashes_instead_of_dead_lettering_everything(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer
) -> None:
    await produce(producer, topics.responses, [b"garbage"] * 30)
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics),
        RunnerConfig(group_id="g-limit", topics=(topics.responses,), dead_letter_min_failures=10),
        decoder=decode, handler=Collect(), producer=producer,
    )
    with pytest.raises(DeadLetterLimitExceeded):
        await asyncio.wait_for(runner.run(asyncio.Event()), timeout=20)


async def test_transient_failures_are_retried_and_nothing_is_skipped(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer
) -> None:
    await produce(producer, topics.responses, [json.dumps({"n": i}).encode() for i in range(10)])
    handler = Collect(transient_failures=3)
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics),
        RunnerConfig(group_id="g-retry", topics=(topics.responses,), retry_initial_seconds=0.01),
        decoder=decode, handler=handler, producer=producer,
    )
    await run_until(runner, lambda: sum(len(v) for v in handler.seen.values()) == 10)
    assert next(iter(handler.seen.values())) == list(range(10))
    assert handler.calls >= 4


async def test_repeated_transient_failures_pause_the_partition_then_resume_from_the_same_offset(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer
) -> None:
    await produce(producer, topics.responses, [json.dumps({"n": i}).encode() for i in range(5)])
    handler = Collect(transient_failures=4)
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics),
        RunnerConfig(group_id="g-pause", topics=(topics.responses,), retry_initial_seconds=0.01,
                     retries_before_pause=1, pause_seconds=0.3),
        decoder=decode, handler=handler, producer=producer,
    )
    await run_until(runner, lambda: sum(len(v) for v in handler.seen.values()) == 5)
    assert next(iter(handler.seen.values())) == list(range(5))


async def test_seeks_to_stored_offsets_and_survives_offsets_past_the_end(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer, caplog: pytest.LogCaptureFixture
) -> None:
    # Partition of key "acme": find it by producing once.
    metadata = await producer.send(topics.responses, key=b"acme", value=b'{"n": 0}')
    await produce(producer, topics.responses, [json.dumps({"n": i}).encode() for i in range(1, 6)])
    tp = TopicPartition(topics.responses, metadata.partition)
    # Stored offset 3: everything before was applied already. Another partition's offset is far past its end
    # (as after a dev-broker restart): it must be read from the beginning, with a warning.
    other = TopicPartition(topics.responses, (metadata.partition + 1) % 3)
    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await raw.start()
    await raw.send_and_wait(topics.responses, b'{"n": 100}', partition=other.partition)
    await raw.stop()
    handler = Collect()
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics), RunnerConfig(group_id="g-seek", topics=(topics.responses,)),
        decoder=decode, handler=handler, producer=producer,
        offset_store=(store := FixedOffsets({tp: 3, other: 1000})),
    )
    with caplog.at_level(logging.WARNING):
        await run_until(runner, lambda: len(handler.seen) == 2)
    assert handler.seen[tp.partition] == [3, 4, 5]
    assert handler.seen[other.partition] == [100]
    # The stale stored offset is moved to the new log, or the handler's fence would skip its messages.
    assert store.resets == [(other, 0)]
    assert any("past the end of the partition" in r.getMessage() for r in caplog.records)


async def test_an_offset_stored_for_an_earlier_incarnation_of_the_topic_is_discarded(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer, caplog: pytest.LogCaptureFixture
) -> None:
    # Three answers in the partition of "acme"; the offsets stored say 2 were applied.
    metadata = await producer.send(topics.responses, key=b"acme", value=b'{"n": 0}')
    await produce(producer, topics.responses, [json.dumps({"n": i}).encode() for i in (1, 2)])
    tp = TopicPartition(topics.responses, metadata.partition)
    here = await fingerprints_at(kafka_bootstrap, {tp: 1}, client_id="test")
    assert set(here) == {tp}

    # Stored after the record this log holds at offset 1: the same log, so it resumes at 2.
    same = Collect()
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics), RunnerConfig(group_id="g-same-log", topics=(topics.responses,)),
        decoder=decode, handler=same, producer=producer,
        offset_store=(kept := FixedOffsets({tp: StoredOffset(2, 1, here[tp])})),
    )
    await run_until(runner, lambda: same.seen.get(tp.partition) == [2])
    assert kept.resets == []

    # Stored after another record (the topic was created again since, or the dev broker lost its log and the
    # new one already holds three answers): read from the beginning, and the stale offset is replaced.
    other = Collect()
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics), RunnerConfig(group_id="g-other-log", topics=(topics.responses,)),
        decoder=decode, handler=other, producer=producer,
        offset_store=(stale := FixedOffsets({tp: StoredOffset(2, 1, "1733000000000:0badf00d")})),
    )
    with caplog.at_level(logging.WARNING):
        await run_until(runner, lambda: other.seen.get(tp.partition) == [0, 1, 2])
    assert stale.resets == [(tp, 0)]
    assert any("earlier incarnation of the topic" in r.getMessage() for r in caplog.records)


async def test_a_stored_offset_past_a_broker_reported_end_is_kept_when_the_log_holds_its_record(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer, caplog: pytest.LogCaptureFixture
) -> None:
    """tansu reports a partition's end as its last record batch's base offset + 1: after one batch of five
    answers, 1. An offset stored after the last of them looks past the end, but the log still holds the record
    it was stored after (same fingerprint): it resumes there, neither reading the log again nor replacing it."""
    outcomes = await producer.publish_encoded(topics.responses, [
        Encoded("acme", "t", json.dumps({"n": i}).encode()) for i in range(5)])
    assert outcomes == [None] * 5
    tp = TopicPartition(topics.responses, (await producer.send(topics.responses, key=b"acme", value=b'{"n": 5}'))
                        .partition)
    # The single send above makes the reported end right again; a second batch makes it wrong once more.
    await producer.publish_encoded(topics.responses, [Encoded("acme", "t", json.dumps({"n": i}).encode())
                                                      for i in range(6, 9)])
    here = await fingerprints_at(kafka_bootstrap, {tp: 8}, client_id="test")
    assert set(here) == {tp}
    handler = Collect()
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics), RunnerConfig(group_id="g-under", topics=(topics.responses,)),
        decoder=decode, handler=handler, producer=producer,
        offset_store=(kept := FixedOffsets({tp: StoredOffset(9, 8, here[tp])})),
    )
    with caplog.at_level(logging.WARNING):
        async with running(runner):
            # Once the start is chosen (on the log as it is now, its last batch of several records), one more.
            await eventually(lambda: runner.assignments > 0, what="the partition's start to be chosen")
            await producer.send(topics.responses, key=b"acme", value=b'{"n": 9}')
            await eventually(lambda: 9 in handler.seen.get(tp.partition, []), what="the next answer")
    assert handler.seen[tp.partition] == [9]
    assert kept.resets == []
    assert not any("past the end" in r.getMessage() for r in caplog.records)


class Poisoned(Collect):
    """Fails, not transiently, on every batch holding one of ``poison`` (as a handler bug on odd data does)."""

    def __init__(self, poison: set[int]) -> None:
        super().__init__()
        self.poison = poison

    async def handle(self, tp: TopicPartition, records: Sequence[Record[int]], next_offset: int) -> None:
        self.calls += 1
        if any(r.value in self.poison for r in records):
            raise ValueError(f"cannot apply {sorted(r.value for r in records if r.value in self.poison)}")
        self.seen.setdefault(tp.partition, []).extend(r.value for r in records)
        self.next_offsets[tp.partition] = next_offset


async def test_a_record_the_handler_fails_on_is_isolated_and_dead_lettered_and_the_rest_applied(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer
) -> None:
    await produce(producer, topics.responses, [json.dumps({"n": i}).encode() for i in range(20)])
    handler = Poisoned({13})
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics), RunnerConfig(group_id="g-poison", topics=(topics.responses,)),
        decoder=decode, handler=handler, producer=producer,
    )
    await run_until(runner, lambda: sum(len(v) for v in handler.seen.values()) == 19
                    and 20 in handler.next_offsets.values())
    [applied] = handler.seen.values()
    assert applied == [i for i in range(20) if i != 13]  # in order, nothing twice
    assert list(handler.next_offsets.values()) == [20]
    [dead] = await read_topic(kafka_bootstrap, topics.dead_letter)
    headers = dict(dead.headers)
    assert json.loads(dead.value) == {"n": 13}
    assert headers["pulse-dlq-reason"].decode().startswith("handler failed: ValueError('cannot apply [13]')")
    assert headers["pulse-dlq-exception"] == b"ValueError"
    assert headers["pulse-dlq-offset"] == b"13"


async def test_a_handler_failing_on_every_record_still_crashes_loudly(
    kafka_bootstrap: str, topics: Topics, producer: EventProducer
) -> None:
    await produce(producer, topics.responses, [json.dumps({"n": i}).encode() for i in range(40)])
    runner = ConsumerRunner(
        settings_for(kafka_bootstrap, topics),
        RunnerConfig(group_id="g-bug", topics=(topics.responses,), dead_letter_window=20, dead_letter_min_failures=5),
        decoder=decode, handler=Poisoned(set(range(40))), producer=producer,
    )
    with pytest.raises(DeadLetterLimitExceeded):
        await run_until(runner, lambda: False)


async def test_the_probe_reads_the_record_of_every_partition_asked_for(
    kafka_bootstrap: str, topics: Topics
) -> None:
    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await raw.start()
    try:
        sent = {p: await raw.send_and_wait(topics.responses, b'{"n": 1}', key=f"k{p}".encode(), partition=p)
                for p in range(3)}
    finally:
        await raw.stop()
    wanted = {TopicPartition(topics.responses, p): meta.offset for p, meta in sent.items()}
    found = await fingerprints_at(kafka_bootstrap, wanted, client_id="test")
    assert found == {tp: fingerprint(sent[tp.partition].timestamp, f"k{tp.partition}".encode()) for tp in wanted}
    # One partition asked past its log (the broker lost it): left out, without costing the others theirs.
    past = {**wanted, TopicPartition(topics.responses, 0): 500}
    started = time.monotonic()
    partial = await fingerprints_at(kafka_bootstrap, past, client_id="test", timeout=30)
    assert partial == {tp: f for tp, f in found.items() if tp.partition != 0}
    assert time.monotonic() - started < 15  # not the whole timeout


class StoringCollect(Collect):
    """A handler that stores its next offset with the fingerprint of its last record, as the transactional
    handler does in the same transaction as its effects."""

    def __init__(self, store: FixedOffsets) -> None:
        super().__init__()
        self.store = store

    async def handle(self, tp: TopicPartition, records: Sequence[Record[int]], next_offset: int) -> None:
        await super().handle(tp, records, next_offset)
        if records:
            last = records[-1]
            self.store.offsets[tp] = StoredOffset(next_offset, last.offset, fingerprint(last.timestamp_ms, last.key))


async def test_a_running_consumer_reads_the_whole_new_log_when_the_broker_loses_its_log(
    topics: Topics, tmp_path: Path
) -> None:
    """The dev broker restarts (forgetting every topic) under a running consumer, and new answers arrive,
    fewer than were applied before. Every answer of the new log is applied; none is skipped as 'already
    applied' by the old offsets. (With more new answers than were applied before, a fetch at the old position
    can win the race against the rejoin: seen failing once under load; open, see issue 18.)"""
    broker = Broker(log_file=tmp_path / "tansu.log").start()
    settings = settings_for(broker.bootstrap, topics, idempotent=False)
    producer = EventProducer(settings, client_id="lost")
    store = FixedOffsets({})
    handler = StoringCollect(store)
    config = RunnerConfig(group_id="g-lost", topics=(topics.responses,), session_timeout_ms=3000,
                          heartbeat_interval_ms=1000)
    runner = ConsumerRunner(settings, config, decoder=decode, handler=handler, producer=producer, offset_store=store)
    try:
        await create_topics(broker.bootstrap, topics.all(), partitions=1)
        await producer.start()
        await produce(producer, topics.responses, [json.dumps({"n": i}).encode() for i in range(5)])
        async with running(runner) as task:
            await eventually(lambda: handler.seen.get(0) == [0, 1, 2, 3, 4], what="the first log")
            broker.stop()
            broker.start()  # same port, empty
            await create_topics(broker.bootstrap, topics.all(), partitions=1)
            values = [100, 101]
            unsent = list(values)

            async def send_new_answers() -> bool:  # the producer reconnects to the restarted broker
                with contextlib.suppress(PublishFailed):
                    while unsent:
                        await producer.send(topics.responses, key=b"acme",
                                            value=json.dumps({"n": unsent[0]}).encode())
                        unsent.pop(0)
                return not unsent

            await eventually(send_new_answers, timeout=30, what="the new answers sent")
            await eventually(lambda: handler.seen[0][5:] == values, timeout=60, what=f"the new log's answers {values}")
            assert not task.done()
    finally:
        await producer.stop()
        broker.stop()



async def test_a_session_timeout_the_broker_refuses_is_a_configuration_error_not_a_retry_loop(
    apache_kafka: str, topics: Topics, producer: EventProducer
) -> None:
    """Apache Kafka refuses a session timeout outside group.min/max.session.timeout.ms (tansu does not check).
    The runner said 'broker not reachable yet' and started the same consumer again, which aiokafka refuses
    ('Did you call start twice?'): the worker died with a misleading traceback. Now: a ConfigError naming the
    setting."""
    await create_topics(apache_kafka, [topics.responses], partitions=1)  # a group joins once its topic exists
    runner = ConsumerRunner(
        settings_for(apache_kafka, topics, idempotent=True),
        RunnerConfig(group_id="g-session", topics=(topics.responses,), session_timeout_ms=500,
                     heartbeat_interval_ms=100),
        decoder=decode, handler=Collect(), producer=producer,
    )
    with pytest.raises(ConfigError, match="KAFKA_SESSION_TIMEOUT_MS=500 is refused by the broker"):
        await asyncio.wait_for(runner.run(asyncio.Event()), 60)
