"""Kafka producer wrapper: acks=all, idempotence by setting, every send bounded by a timeout."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.structs import RecordMetadata

from pulse_shared.events import Encoded, Event, encode
from pulse_shared.metrics import EVENTS_PRODUCED, labelled
from pulse_shared.settings import ServiceSettings
from pulse_shared.topics import partition_key
from pulse_shared.tracing import current_traceparent

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]
#: How much longer than the send bound the broker client's own request timeout is.
REQUEST_TIMEOUT_MARGIN_SECONDS = 5.0


class PublishFailed(Exception):
    """The broker did not acknowledge the event within the bound; the caller should retry later."""


class EventProducer:
    """Publishes events keyed by account id and waits for the broker's acknowledgement (acks=all)."""

    def __init__(self, settings: ServiceSettings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = f"{settings.kafka_client_id}-{client_id}"
        self._timeout = settings.kafka_send_timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._queueing = asyncio.Lock()

    def _build(self) -> AIOKafkaProducer:
        # aiokafka binds to the running event loop, so the client is made inside it, at start.
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=self._settings.kafka_enable_idempotence,
            linger_ms=self._settings.kafka_linger_ms,
            # Longer than the send bound, never equal: the bound alone decides when a publish has failed
            # (PublishFailed, a 503 at ingest), instead of a race between it and the client's own request and
            # batch-expiry timeout. A batch still in flight past the bound may land late: at-least-once, and
            # the caller's retry carries the same response id.
            request_timeout_ms=int((max(self._timeout, 1.0) + REQUEST_TIMEOUT_MARGIN_SECONDS) * 1000),
            max_request_size=4 * 1024 * 1024,
            # A batch request's events for one partition fit one record batch: aiokafka queues one batch per
            # partition at a time, so with 16 KB batches concurrent batch requests waited on each other
            # until the send timeout (seen as 503s under load).
            max_batch_size=1024 * 1024,
        )

    async def start(self, *, attempts: int = 30, delay_seconds: float = 1.0) -> None:
        """Connect to the broker, retrying for a while: the broker may start after this process."""
        for attempt in range(1, attempts + 1):
            producer = self._build()
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                if attempt == attempts:
                    raise
                log.warning("broker not reachable yet", extra={"attempt": attempt, "error": str(exc)})
                await asyncio.sleep(delay_seconds)
            else:
                self._producer = producer
                return

    async def stop(self) -> None:
        """Flush pending sends and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def ping(self) -> None:
        """Readiness check: the producer can see the cluster's brokers."""
        if self._producer is None:
            raise RuntimeError("producer not started")
        cluster = self._producer.client.cluster
        if not cluster.brokers():
            await self._producer.client.force_metadata_update()
            if not cluster.brokers():
                raise RuntimeError("no broker known")

    async def send(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> RecordMetadata:
        """Send one message and wait for the acknowledgement, at most the configured timeout."""
        if self._producer is None:
            raise PublishFailed("producer not started")
        try:
            async with asyncio.timeout(self._timeout):  # no extra task per message, unlike wait_for
                metadata = await self._producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
        except (TimeoutError, KafkaError) as exc:
            labelled(EVENTS_PRODUCED, topic, "failed").inc()
            raise PublishFailed(f"broker did not acknowledge within {self._timeout}s: {exc!r}") from exc
        labelled(EVENTS_PRODUCED, topic, "acked").inc()
        return metadata

    async def publish_many(self, topic: str, events: Sequence[tuple[str, Event]]) -> list[BaseException | None]:
        """Publish ``(account_id, event)`` pairs together: :meth:`publish_encoded` of their encodings."""
        return await self.publish_encoded(topic, [Encoded(a, _event_type(e), encode(e)) for a, e in events])

    async def publish_encoded(self, topic: str, events: Sequence[Encoded]) -> list[BaseException | None]:
        """Publish encoded events together and wait for every acknowledgement (bounded by the send timeout);
        return, per event, None when acknowledged or the error that stopped it.

        The events are grouped into record batches per partition, chosen exactly as a single send chooses
        it (murmur2 of the key over the topic's partitions), so an account's events stay in order on one
        partition; a batch is acknowledged or failed as a whole. A send per event cost ~60 us of Python
        each; a batch append costs a few.
        """
        if not events:
            return []
        if self._producer is None:
            return [PublishFailed("producer not started")] * len(events)
        outcomes: list[BaseException | None] = [None] * len(events)
        sent: list[tuple[list[int], asyncio.Future[Any]]] = []
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline), self._queueing:
                # One caller at a time queues its batches: aiokafka holds one queued batch per partition and
                # each waiter's timeout shrinks faster than time passes, so concurrent callers timed out.
                await self._send_batches(self._producer, topic, events, outcomes, sent)
        except (TimeoutError, KafkaError) as exc:
            _abandon(future for _, future in sent)
            labelled(EVENTS_PRODUCED, topic, "failed").inc(len(events))
            return [PublishFailed(f"broker did not take the events within {self._timeout}s: {exc!r}")] * len(events)
        # Wait without cancelling: a batch still in flight may yet land, which is fine (at-least-once; the
        # caller hears "unavailable" and sends again, and the response id makes that idempotent).
        pending: set[asyncio.Future[Any]] = set()
        if sent:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            _, pending = await asyncio.wait([future for _, future in sent], timeout=remaining)
            _abandon(pending)
        for members, future in sent:
            error: BaseException | None = None
            if future in pending or future.cancelled():
                error = PublishFailed(f"broker did not acknowledge within {self._timeout}s")
            else:
                error = future.exception()
            if error is not None:
                for index in members:
                    outcomes[index] = error
        failed = sum(1 for r in outcomes if r is not None)
        labelled(EVENTS_PRODUCED, topic, "acked").inc(len(events) - failed)
        if failed:
            labelled(EVENTS_PRODUCED, topic, "failed").inc(failed)
        return outcomes

    @staticmethod
    async def _send_batches(
        producer: AIOKafkaProducer, topic: str, events: Sequence[Encoded],
        outcomes: list[BaseException | None], sent: list[tuple[list[int], asyncio.Future[Any]]],
    ) -> None:
        """Queue the events as record batches per partition, adding each batch's members and future to
        ``sent``; an event too large for a batch gets its error in ``outcomes``."""
        partitions = sorted(await producer.partitions_for(topic))
        keys = [partition_key(event.account_id) for event in events]
        by_partition: dict[int, list[int]] = {}
        chosen: dict[bytes, int] = {}  # murmur2 is pure Python: once per account
        by_type: dict[str, list[tuple[str, bytes]]] = {}  # the headers, once per event type
        for index, key in enumerate(keys):  # as the default partitioner of a single send chooses
            partition = chosen.get(key)
            if partition is None:
                partition = chosen[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
            by_partition.setdefault(partition, []).append(index)
        for partition, indexes in by_partition.items():
            batch, members = producer.create_batch(), list[int]()
            for index in indexes:
                kind, value = events[index].event_type, events[index].value
                headers = by_type.get(kind)
                if headers is None:
                    headers = by_type[kind] = _headers(kind)
                key = keys[index]
                if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:  # full: send it
                    if members:
                        sent.append((members, await producer.send_batch(batch, topic, partition=partition)))
                    batch, members = producer.create_batch(), []
                    if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                        outcomes[index] = PublishFailed("event larger than a record batch")
                        continue
                members.append(index)
            if members:
                sent.append((members, await producer.send_batch(batch, topic, partition=partition)))

    async def publish(self, topic: str, account_id: str, event: Event) -> RecordMetadata:
        """Publish an event keyed by its account, with its type and the current trace in headers."""
        return await self.publish_one(topic, Encoded(account_id, _event_type(event), encode(event)))

    async def publish_one(self, topic: str, event: Encoded) -> RecordMetadata:
        """Publish an encoded event keyed by its account, with its type and the current trace in headers."""
        return await self.send(topic, key=partition_key(event.account_id), value=event.value,
                               headers=_headers(event.event_type))


def _abandon(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Stop waiting for these futures without cancelling them; their outcome is read when it comes, so a
    late failure is not reported as an exception nobody retrieved."""
    for future in futures:
        future.add_done_callback(lambda done: done.cancelled() or done.exception())


def _headers(event_type: str) -> list[tuple[str, bytes]]:
    """A record's headers: the event's type, and the current trace when there is one."""
    headers = [("event-type", event_type.encode())]
    traceparent = current_traceparent()
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return headers


def _event_type(event: Event) -> str:
    return str(getattr(event, "type", type(event).__name__))
