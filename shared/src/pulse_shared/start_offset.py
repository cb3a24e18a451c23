"""Where a consumer starts reading a partition it was just assigned. Pure.

Offsets stored with the effects (in PostgreSQL) outlive the log they point into when the topic is deleted
and created again, or the broker loses its log (the dev broker keeps nothing on restart). A stored offset
past the end of the new log gives itself away; one below it does not (stored 2, the new log already holds 3
answers: resuming at 2 would skip two of them). So each stored offset carries the *fingerprint* of a
record the consumer applied (its offset, producer timestamp and key): if the log holds another record
there, the offset belongs to an earlier incarnation of the topic and is discarded. A fingerprinted record
that retention has removed since cannot be compared, and the offset is trusted, as before. An offset past the
reported end whose record the log still holds is kept: the broker under-reports its end (tansu does, after
a batch of several records), it did not lose its log.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredOffset:
    """A next offset stored with the effects, and how to recognise the log it belongs to."""

    next_offset: int
    #: A record the consumer applied (normally the last of its last batch) and its :func:`fingerprint`.
    check_offset: int | None = None
    fingerprint: str | None = None


def fingerprint(timestamp_ms: int, key: bytes | None) -> str:
    """What identifies a record besides its offset: the producer's timestamp and a checksum of its key."""
    return f"{timestamp_ms}:{zlib.crc32(key or b''):08x}"


def offset_to_check(stored: StoredOffset, *, beginning: int) -> int | None:
    """The offset whose record must be read back to recognise the log ``stored`` belongs to (None: there is
    nothing to compare: no fingerprint, or retention removed the record). The partition's reported end is no
    bound: tansu reports it as its last record batch's base offset + 1, so a record past it may well be in
    the log."""
    if stored.check_offset is None or stored.fingerprint is None:
        return None
    return stored.check_offset if beginning <= stored.check_offset else None


@dataclass(frozen=True)
class Start:
    """Seek to ``offset`` (None: leave the position to the consumer's reset policy); ``reset_store``: the
    stored offset is stale and must be overwritten, or its fence would skip the new log's first records."""

    offset: int | None
    origin: str
    reset_store: bool = False
    warning: str | None = None


def choose_start(stored: StoredOffset | None, committed: int | None, *, beginning: int, end: int,
                 found: str | None = None) -> Start:
    """The start of a newly assigned partition, from the offset stored with the effects (else Kafka's
    committed one), the log's ``beginning`` and ``end``, and the fingerprint ``found`` of the record the log
    holds at the stored ``check_offset`` (None: unknown, the lookup failed or was not made: the offset is
    trusted, since wrongly discarding it would apply the log a second time)."""
    if stored is not None:
        target, origin = stored.next_offset, "database"
    elif committed is not None:
        target, origin = committed, "kafka"
    else:
        return Start(None, "none")
    from_database = origin == "database"
    checked = stored is not None and offset_to_check(stored, beginning=beginning) is not None
    holds_it = checked and stored is not None and found is not None and found == stored.fingerprint
    if target > end and not holds_it:
        return Start(beginning, origin, reset_store=from_database, warning=(
            "stored offset lies past the end of the partition: the broker lost its log (the dev broker forgets "
            "every topic on restart); reading this partition from the beginning"))
    if checked and stored is not None and found is not None and found != stored.fingerprint:
        return Start(beginning, origin, reset_store=True, warning=(
            "stored offset belongs to an earlier incarnation of the topic (the record it was stored after "
            "is not in the log any more): reading this partition from the beginning"))
    if target < beginning:
        return Start(beginning, origin, warning=(
            "stored offset lies before the log start (retention removed messages); reading from the earliest "
            "message still kept"))
    return Start(target, origin)
