"""The Kafka consumer loop every Pulse consumer runs (the invariants arroyo and quix-streams keep).

- Auto-commit is off. A batch's effects are made durable by the handler first; only then is the next
  offset staged, and staged offsets are committed to Kafka about once a second, on partition revoke and on
  shutdown. Handlers that keep state in PostgreSQL also store the next offset in the same transaction as
  their effects; on assignment the runner seeks to those stored offsets, which makes the effect
  exactly-once even after kill -9. (Kafka commits still matter: lag-based autoscaling reads them.)
- Each partition is processed in offset order, one handler call (one transaction) per fetched batch;
  different partitions (disjoint accounts) are processed concurrently.
- An undecodable message goes to the dead-letter topic with the reason in headers. So does a record the
  handler fails on with an error that is not transient: the batch is bisected to find it, and the rest is
  applied. If most recent messages fail, the runner crashes instead: that is a bad deploy, not bad data.
- Transient failures (database down) are retried with backoff; past a bound the partition is paused and
  rewound to the batch's first offset, and resumed later. Nothing is ever skipped.
- A processing lock makes a rebalance wait for the batch in flight, so offsets are committed for exactly
  the work that was done before a partition moves to another member.
- On stop: finish the batch in flight, commit, leave the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import InvalidSessionTimeoutError, KafkaError

from pulse_shared.commits import CommitThrottle
from pulse_shared.db import is_transient
from pulse_shared.dead_letters import (
    DeadLetterGuard,
    DeadLetterLimitExceeded,
    dead_letter_of,
    handle_or_isolate,
)
from pulse_shared.events import InvalidEvent
from pulse_shared.logs import bind, unbind
from pulse_shared.loops import sleep_or_stop
from pulse_shared.metrics import (
    CONSUMER_BATCH_SECONDS,
    CONSUMER_LAG,
    CONSUMER_PAUSES,
    CONSUMER_RETRIES,
    DEAD_LETTERED,
    EVENTS_CONSUMED,
    OFFSET_COMMITS,
)
from pulse_shared.producer import EventProducer
from pulse_shared.record_probe import fingerprints_at
from pulse_shared.retry_pause import Pauses, RetryPolicy
from pulse_shared.settings import ConfigError, ServiceSettings
from pulse_shared.start_offset import StoredOffset, choose_start, offset_to_check
from pulse_shared.tracing import traceparent_from_headers

log = logging.getLogger(__name__)

E = TypeVar("E")

__all__ = ["BatchHandler", "ConsumerRunner", "DeadLetterLimitExceeded", "OffsetStore", "Record", "RunnerConfig"]


@dataclass(frozen=True)
class Record(Generic[E]):
    """A decoded message with its position."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: E
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @property
    def traceparent(self) -> str | None:
        """The trace context the producer attached, if any."""
        return traceparent_from_headers(self.headers)


class BatchHandler(Protocol[E]):
    """Applies a batch of one partition's records; returns only when the effects are durable.

    ``next_offset`` is the offset after the batch (dead-lettered messages included): handlers that keep
    state in PostgreSQL store it in the same transaction as their effects.
    """

    async def handle(self, tp: TopicPartition, records: Sequence[Record[E]], next_offset: int) -> None:
        """Apply ``records`` and make their effects durable."""
        ...


class OffsetStore(Protocol):
    """Where a handler stores its consumed offsets together with its effects."""

    async def load(self, group: str, partitions: Collection[TopicPartition]) -> dict[TopicPartition, StoredOffset]:
        """The stored next offset per partition (with its fingerprinted record), for those that have one."""
        ...

    async def reset(self, group: str, tp: TopicPartition, next_offset: int) -> None:
        """Overwrite a stored offset the broker no longer has (its log was lost or truncated)."""
        ...


Decoder = Callable[[ConsumerRecord], E]


@dataclass(frozen=True)
class RunnerConfig:
    """Tuning of one consumer group's loop."""

    group_id: str
    topics: tuple[str, ...]
    max_batch: int = 6000
    poll_timeout_ms: int = 200
    commit_interval_seconds: float = 1.0
    retry_initial_seconds: float = 0.2
    retry_max_seconds: float = 5.0
    retries_before_pause: int = 5
    pause_seconds: float = 10.0
    dead_letter_window: int = 200
    dead_letter_max_ratio: float = 0.5
    dead_letter_min_failures: int = 20
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    start_attempts: int = 60
    #: How long the broker may hold a fetch waiting for data: the latency floor of a quiet partition.
    fetch_max_wait_ms: int = 500

    @classmethod
    def from_settings(cls, settings: ServiceSettings, *, group_id: str, topics: tuple[str, ...]) -> RunnerConfig:
        """A configuration with the group timing taken from the service's settings."""
        return cls(
            group_id=group_id,
            topics=topics,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(500, settings.kafka_session_timeout_ms // 4),
            max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        )


class ConsumerRunner(Generic[E]):
    """Runs one consumer group member: fetch, decode, handle, stage, commit; see the module docstring."""

    def __init__(
        self,
        settings: ServiceSettings,
        config: RunnerConfig,
        *,
        decoder: Decoder[E],
        handler: BatchHandler[E],
        producer: EventProducer,
        offset_store: OffsetStore | None = None,
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        self._settings = settings
        self._config = config
        self._decoder = decoder
        self._handler = handler
        self._producer = producer
        self._offset_store = offset_store
        self._transient = transient
        self._dead_letter_topic = settings.topics.dead_letter
        self._lock = asyncio.Lock()
        self._position: dict[TopicPartition, int] = {}
        # The runner composes the loop's concerns, each in its own module (as arroyo's strategies do):
        self._commits = CommitThrottle(config.commit_interval_seconds)
        self._retry = RetryPolicy(config.retry_initial_seconds, config.retry_max_seconds, config.retries_before_pause)
        self._pauses = Pauses(config.pause_seconds)
        self._guard = DeadLetterGuard(window=config.dead_letter_window, max_ratio=config.dead_letter_max_ratio,
                                      min_failures=config.dead_letter_min_failures)
        self._consumer: AIOKafkaConsumer | None = None
        self.assignments = 0

    @property
    def group_id(self) -> str:
        """The consumer group this runner belongs to."""
        return self._config.group_id

    async def ping(self) -> None:
        """Readiness check: the consumer has started, joined its group and positioned what it was assigned."""
        if self._consumer is None:
            raise RuntimeError("consumer not started")
        if self.assignments == 0:
            raise RuntimeError("consumer has not joined its group yet")

    @property
    def assigned(self) -> frozenset[TopicPartition]:
        """The partitions this member holds now (none before it joined or after it stopped)."""
        consumer = self._consumer
        return frozenset(consumer.assignment()) if consumer is not None else frozenset()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then drain: finish the batch, commit, leave the group."""
        cfg = self._config
        consumer = await self._start(stop)
        if consumer is None:
            return
        self._consumer = consumer
        try:
            while not stop.is_set():
                self._resume_due(consumer)
                batches = await self._fetch(consumer)
                if batches and not stop.is_set():
                    async with self._lock:
                        # Partitions hold disjoint keys (accounts), so their batches run concurrently: the
                        # database works on one while Python prepares another. Order within each is kept.
                        await asyncio.gather(*(
                            self._process(consumer, tp, messages, stop)
                            for tp, messages in batches.items()
                            if tp in consumer.assignment() and tp not in self._pauses
                        ))
                if self._commits.due():
                    await self._commit(consumer)
        finally:
            async with self._lock:
                await self._commit(consumer)
            await consumer.stop()
            self._consumer = None
            log.info("consumer stopped", extra={"group": cfg.group_id})

    async def _fetch(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Up to ``max_batch`` records shared fairly among the partitions that have some buffered.

        A plain ``getmany`` fills its batch from the first partition with data (its buffer holds up to
        ``max_partition_fetch_bytes``), so batches were mostly one partition's and nothing overlapped;
        with a share per partition, their transactions run side by side: the database works on one
        while Python prepares another.
        """
        cfg = self._config
        ready = [tp for tp in consumer.assignment() if tp not in self._pauses]
        share = max(1, cfg.max_batch // max(1, len(ready)))
        batches = dict(await consumer.getmany(timeout_ms=cfg.poll_timeout_ms, max_records=share))
        if batches:
            for tp in ready:
                if tp not in batches:
                    batches.update(await consumer.getmany(tp, timeout_ms=0, max_records=share))
        return batches

    def _new_consumer(self) -> AIOKafkaConsumer:
        cfg = self._config
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=f"{self._settings.kafka_client_id}-{cfg.group_id}",
            group_id=cfg.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=cfg.session_timeout_ms,
            heartbeat_interval_ms=cfg.heartbeat_interval_ms,
            max_poll_interval_ms=cfg.max_poll_interval_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=cfg.fetch_max_wait_ms,
        )
        consumer.subscribe(list(cfg.topics), listener=_Listener(self, consumer))
        return consumer

    async def _start(self, stop: asyncio.Event) -> AIOKafkaConsumer | None:
        """A started consumer, retrying while the broker is not there yet (a fresh consumer each attempt: a
        consumer whose start failed cannot be started again). None when stopped meanwhile."""
        for attempt in range(1, self._config.start_attempts + 1):
            consumer = self._new_consumer()
            try:
                await consumer.start()
            except InvalidSessionTimeoutError as exc:
                await _stop_quietly(consumer)
                raise ConfigError(
                    f"KAFKA_SESSION_TIMEOUT_MS={self._config.session_timeout_ms} is refused by the broker: it must "
                    "lie within the broker's group.min.session.timeout.ms and group.max.session.timeout.ms "
                    "(Apache Kafka's defaults: 6000 and 1800000)") from exc
            except KafkaError as exc:
                await _stop_quietly(consumer)
                if attempt == self._config.start_attempts:
                    raise
                log.warning("broker not reachable yet", extra={"attempt": attempt, "error": str(exc)})
                if await sleep_or_stop(stop, 1.0):
                    return None
            else:
                return consumer
        return None

    async def _process(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        messages: Sequence[ConsumerRecord],
        stop: asyncio.Event,
    ) -> None:
        expected = self._position.get(tp)
        if expected is None:
            # Fetched while the partition's start is still being chosen (the fetcher does not wait for the
            # assignment callback): dropped, it is read again from the chosen start.
            return
        messages = [m for m in messages if m.offset >= expected]
        if not messages:
            return
        started = time.perf_counter()
        records = [r for r in [await self._decode(m) for m in messages] if r is not None]
        next_offset = messages[-1].offset + 1
        if not await self._apply(consumer, tp, records, next_offset, messages, stop):
            return
        self._commits.stage(tp, next_offset)
        self._position[tp] = next_offset
        CONSUMER_BATCH_SECONDS.labels(self.group_id).observe(time.perf_counter() - started)
        EVENTS_CONSUMED.labels(tp.topic, self.group_id).inc(len(messages))
        highwater = consumer.highwater(tp)
        if highwater is not None:
            CONSUMER_LAG.labels(tp.topic, str(tp.partition), self.group_id).set(max(0, highwater - next_offset))

    async def _decode(self, message: ConsumerRecord) -> Record[E] | None:
        try:
            value = self._decoder(message)
        except InvalidEvent as exc:
            self._guard.note(ok=False)
            await self._dead_letter(message, str(exc))
            return None
        self._guard.note(ok=True)
        return Record(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=value,
            headers=tuple(message.headers or ()),
            timestamp_ms=message.timestamp,
        )

    async def _dead_letter(self, message: ConsumerRecord, reason: str,
                           extra_headers: Sequence[tuple[str, bytes]] = ()) -> None:
        letter = dead_letter_of(message, reason, self.group_id, extra_headers)
        await self._producer.send(self._dead_letter_topic, key=letter.key, value=letter.value, headers=letter.headers)
        DEAD_LETTERED.labels(message.topic, self.group_id).inc()
        log.warning(
            "message dead-lettered",
            extra={"topic": message.topic, "partition": message.partition, "offset": message.offset,
                   "reason": reason[:300]},
        )

    async def _apply(self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: Sequence[Record[E]],
                     next_offset: int, messages: Sequence[ConsumerRecord], stop: asyncio.Event) -> bool:
        """Handle the batch (retrying transient failures, then pausing); a failure that is not transient is
        isolated by bisecting the batch, so the record(s) causing it are dead-lettered and the partition goes
        on instead of crash-looping on it (:func:`pulse_shared.dead_letters.handle_or_isolate`)."""
        raw = {m.offset: m for m in messages}

        async def handle(part: Sequence[Record[E]], part_next: int, first: int) -> bool:
            return await self._handle_with_retry(consumer, tp, part, part_next, first, stop)

        async def dead_letter(record: Record[E], failure: Exception) -> None:
            self._guard.note(ok=False)  # counted against the limit: a bug failing every record stops the runner
            await self._dead_letter(raw[record.offset], f"handler failed: {failure!r}"[:1000],
                                    extra_headers=[("pulse-dlq-exception", type(failure).__name__.encode())])

        return await handle_or_isolate(handle, dead_letter, self._transient, records, next_offset,
                                       messages[0].offset, {"topic": tp.topic, "partition": tp.partition})

    async def _handle_with_retry(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: Sequence[Record[E]],
        next_offset: int,
        first_offset: int,
        stop: asyncio.Event,
    ) -> bool:
        attempt = 0
        bind(topic=tp.topic, partition=tp.partition, offset=first_offset)
        try:
            while True:
                try:
                    await self._handler.handle(tp, records, next_offset)
                except Exception as exc:
                    if not self._transient(exc):
                        raise
                    attempt += 1
                    CONSUMER_RETRIES.labels(self.group_id).inc()
                    if self._retry.gives_up(attempt) or stop.is_set():
                        self._pause(consumer, tp, first_offset, exc)
                        return False
                    delay = self._retry.delay(attempt, random.random())
                    log.warning(
                        "transient failure, retrying",
                        extra={"attempt": attempt, "delay_s": round(delay, 3), "error": repr(exc)[:300]},
                    )
                    if await sleep_or_stop(stop, delay):
                        self._pause(consumer, tp, first_offset, exc)
                        return False
                else:
                    return True
        finally:
            unbind("topic", "partition", "offset", "trace_id")

    def _pause(self, consumer: AIOKafkaConsumer, tp: TopicPartition, first_offset: int, exc: Exception) -> None:
        consumer.pause(tp)
        consumer.seek(tp, first_offset)
        self._position[tp] = first_offset
        self._pauses.pause(tp)
        CONSUMER_PAUSES.labels(self.group_id).inc()
        log.error(
            "partition paused after repeated transient failures; will retry from the same offset",
            extra={"topic": tp.topic, "partition": tp.partition, "offset": first_offset,
                   "pause_s": self._config.pause_seconds, "error": repr(exc)[:300]},
        )

    def _resume_due(self, consumer: AIOKafkaConsumer) -> None:
        for tp in self._pauses.due():
            if tp in consumer.assignment():
                consumer.resume(tp)
                log.info("partition resumed", extra={"topic": tp.topic, "partition": tp.partition})

    async def _commit(self, consumer: AIOKafkaConsumer, only: Collection[TopicPartition] | None = None) -> None:
        offsets = self._commits.to_commit(only)
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # Harmless for correctness: the offsets stored with the effects (or redelivery to an
            # idempotent handler) cover it. Kafka commits feed lag monitoring and autoscaling.
            OFFSET_COMMITS.labels(self.group_id, "failed").inc()
            log.warning("offset commit failed", extra={"error": repr(exc)[:300]})
            return
        OFFSET_COMMITS.labels(self.group_id, "ok").inc()
        self._commits.committed(offsets)

    async def on_revoked(self, consumer: AIOKafkaConsumer, revoked: Collection[TopicPartition]) -> None:
        """Rebalance: wait for the batch in flight, commit the revoked partitions, forget their state."""
        async with self._lock:
            await self._commit(consumer, only=revoked)
            for tp in revoked:
                self._commits.forget(tp)
                self._pauses.forget(tp)
                self._position.pop(tp, None)
                with contextlib.suppress(KeyError):
                    CONSUMER_LAG.remove(tp.topic, str(tp.partition), self.group_id)
        if revoked:
            log.info("partitions revoked", extra={"partitions": _names(revoked)})

    async def on_assigned(self, consumer: AIOKafkaConsumer, assigned: Collection[TopicPartition]) -> None:
        """Rebalance: seek each new partition to the offset stored with the effects (or Kafka's), unless it
        belongs to another log (see :mod:`pulse_shared.start_offset`). Counted (readiness) only once every
        new partition has its start: a member is ready when it can consume what it holds."""
        if not assigned:
            self.assignments += 1
            return
        stored = await self._load_stored(assigned)
        beginning = await consumer.beginning_offsets(list(assigned))
        end = await consumer.end_offsets(list(assigned))
        checks = {tp: offset_to_check(s, beginning=beginning[tp]) for tp, s in stored.items()}
        wanted = {tp: offset for tp, offset in checks.items() if offset is not None}
        found = await fingerprints_at(self._settings.kafka_bootstrap_servers, wanted,
                                      client_id=self._settings.kafka_client_id)
        for tp in assigned:
            committed = None if tp in stored else await consumer.committed(tp)
            start = choose_start(stored.get(tp), committed, beginning=beginning[tp], end=end[tp],
                                 found=found.get(tp))
            offset = beginning[tp] if start.offset is None else start.offset  # nothing stored: the earliest
            if start.warning:
                log.warning(start.warning, extra={
                    "topic": tp.topic, "partition": tp.partition, "origin": start.origin, "log_start": beginning[tp],
                    "end_offset": end[tp], "stored_offset": stored[tp].next_offset if tp in stored else committed})
            if start.reset_store and self._offset_store is not None:
                # The offset stored with the effects fences re-application; it must follow the broker's new log,
                # or the first messages of the new log would be taken as already applied.
                await self._offset_store.reset(self.group_id, tp, offset)
            consumer.seek(tp, offset)
            self._position[tp] = offset
        self.assignments += 1
        log.info("partitions assigned", extra={"partitions": _names(assigned)})

    async def _load_stored(self, assigned: Collection[TopicPartition]) -> dict[TopicPartition, StoredOffset]:
        if self._offset_store is None:
            return {}
        for attempt in range(1, 6):
            try:
                return await self._offset_store.load(self.group_id, assigned)
            except Exception as exc:
                if not self._transient(exc) or attempt == 5:
                    raise
                await asyncio.sleep(0.5 * attempt)
        return {}


async def _stop_quietly(consumer: AIOKafkaConsumer) -> None:
    """Release what a consumer whose start failed holds (its connections)."""
    with contextlib.suppress(KafkaError, AssertionError, OSError):
        await consumer.stop()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ConsumerRunner[Any], consumer: AIOKafkaConsumer) -> None:
        self._runner = runner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._runner.on_revoked(self._consumer, revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self._runner.on_assigned(self._consumer, assigned)


def _names(partitions: Collection[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)

