"""Read a whole topic, from its beginning up to its end offsets at the time of the call.

"Nothing else was produced" checks need this: one short poll can miss a late message, reading to the end
offsets cannot.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` (all partitions), in partition then offset order.

    It reads at least up to the end offsets the broker reports at the call, then until a fetch at every
    partition's position brings nothing: tansu reports the end of a partition whose last record batch holds
    several records as that batch's base offset + 1, so its end offsets alone would stop the read early.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # loads the cluster's metadata
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        if not partitions:
            raise AssertionError(f"topic {topic} does not exist")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while True:
            behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            batch = await consumer.getmany(timeout_ms=1000 if behind else FINAL_FETCH_MS)
            fetched = [r for tp in partitions for r in batch.get(tp, [])]
            records += fetched
            if not behind and not fetched:
                break
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


#: The last fetch, at every partition's position, that must bring nothing (the broker answers a fetch with
#: no data after its own wait, at most aiokafka's fetch_max_wait_ms of 500 ms).
FINAL_FETCH_MS = 600


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """Each partition's true end (the offset after its last record), found by reading the topic: tansu's
    ListOffsets answer (``AIOKafkaConsumer.end_offsets``) can be short (see :func:`read_topic`), and a test
    waiting for a consumer to reach it would stop waiting too early."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = sorted(consumer.partitions_for_topic(topic) or set())
    finally:
        await consumer.stop()
    ends = {TopicPartition(topic, p): 0 for p in partitions}
    for record in await read_topic(bootstrap, topic):
        tp = TopicPartition(topic, record.partition)
        ends[tp] = max(ends[tp], record.offset + 1)
    return ends

