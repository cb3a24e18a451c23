"""Read a whole topic, from its beginning up to its end offsets at the time of the call.

"Nothing else was produced" checks need this: one short poll can miss a late message, reading to the end
offsets cannot.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from pulse_shared.localinfra import topic_partitions


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` (all partitions), in partition then offset order.

    It reads at least up to the end offsets the broker reports at the call, then until a fetch at every
    partition's position brings nothing: tansu reports the end of a partition whose last record batch holds
    several records as that batch's base offset + 1, so its end offsets alone would stop the read early.
    """
    records, _ends = await _read(bootstrap, topic)
    return records


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """Each partition's true end (its high watermark once read to the end): tansu's ListOffsets answer
    (``AIOKafkaConsumer.end_offsets``) can be short (see :func:`read_topic`), and a test waiting for a
    consumer to reach it would stop waiting too early."""
    _records, ends = await _read(bootstrap, topic)
    return ends


#: The last fetch, at every partition's position, that must bring nothing (the broker answers a fetch with
#: no data after its own wait, at most aiokafka's fetch_max_wait_ms of 500 ms).
FINAL_FETCH_MS = 600


async def _read(bootstrap: str, topic: str) -> tuple[list[ConsumerRecord[bytes, bytes]], dict[TopicPartition, int]]:
    """The topic's records (see :func:`read_topic`) and each partition's high watermark after reading them."""
    partitions = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
    if not partitions:
        raise AssertionError(f"topic {topic} does not exist")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        reported = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while True:
            behind = [tp for tp, end in reported.items() if await consumer.position(tp) < end]
            batch = await consumer.getmany(timeout_ms=1000 if behind else FINAL_FETCH_MS)
            fetched = [r for tp in partitions for r in batch.get(tp, [])]
            records += fetched
            if not behind and not fetched:
                break
        ends = {tp: max(consumer.highwater(tp) or 0, await consumer.position(tp)) for tp in partitions}
        return sorted(records, key=lambda r: (r.partition, r.offset)), ends
    finally:
        await consumer.stop()
