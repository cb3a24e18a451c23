"""Reads single records by offset, to recognise which log a stored offset belongs to."""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from pulse_shared.start_offset import fingerprint

log = logging.getLogger(__name__)


async def fingerprints_at(bootstrap: str, wanted: dict[TopicPartition, int], *, client_id: str,
                          timeout: float = 10.0) -> dict[TopicPartition, str]:
    """The :func:`~pulse_shared.start_offset.fingerprint` of the record at each wanted offset, read with a
    consumer outside any group. A partition is left out when its record could not be read in ``timeout``
    (the broker is slow, or the log holds no record at that offset): unknown, not different."""
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id=f"{client_id}-probe", group_id=None,
                                enable_auto_commit=False, auto_offset_reset="none")
    found: dict[TopicPartition, str] = {}
    try:
        await consumer.start()
        consumer.assign(list(wanted))
        for tp, offset in wanted.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        # A partition is paused once its first record was read (one record is all it takes): done when every
        # wanted partition is.
        while len(consumer.paused()) < len(wanted) and time.monotonic() < deadline:
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=1)
            except OffsetOutOfRangeError as exc:  # the log holds nothing there: done with those partitions
                gone = [tp for tp in (exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {})
                        if tp in wanted]
                if not gone:
                    raise
                consumer.pause(*gone)
                continue
            for tp, records in batches.items():
                if records and tp not in consumer.paused():
                    record = records[0]
                    if record.offset == wanted[tp]:
                        found[tp] = fingerprint(record.timestamp, record.key)
                    consumer.pause(tp)
            # A fetch that brought nothing still tells the partition's high watermark (which tansu reports
            # right, unlike its ListOffsets end): at or below the offset wanted, the log holds nothing there.
            for tp, offset in wanted.items():
                highwater = consumer.highwater(tp)
                if tp not in consumer.paused() and highwater is not None and highwater <= offset:
                    consumer.pause(tp)
    except (TimeoutError, KafkaError, OSError) as exc:
        log.warning("could not read back the records stored offsets were fingerprinted with; trusting them",
                    extra={"error": repr(exc)[:300]})
    finally:
        await consumer.stop()
    return found
