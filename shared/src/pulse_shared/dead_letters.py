"""What a consumer cannot apply goes to the dead-letter topic, and the guard that stops it from
dead-lettering a whole stream.

- :class:`DeadLetterGuard` (pure): the outcomes of the last records; when too many failed (more than a
  ratio of the window, and at least a minimum), :class:`DeadLetterLimitExceeded` stops the consumer: that is
  a bad deploy, not bad data, and dead-lettering on would empty the stream into the dead-letter topic.
- :func:`dead_letter_of` (pure): the dead-letter record of a message: its key and value (clipped), its
  headers, and where it came from and why in ``pulse-dlq-*`` headers.
- :func:`handle_or_isolate`: apply a batch; when it fails on an error that is not transient, bisect it to
  the record(s) causing it, dead-letter those and apply the rest, in order.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

MAX_DEAD_LETTER_VALUE_BYTES = 512 * 1024


class DeadLetterLimitExceeded(RuntimeError):
    """Too many of the recent messages could not be applied: most likely a bad deploy, so stop."""


class DeadLetterGuard:
    """Counts failures among the last ``window`` outcomes; :meth:`note` raises past the limit."""

    def __init__(self, *, window: int, max_ratio: float, min_failures: int) -> None:
        self._recent: deque[bool] = deque(maxlen=window)
        self._failures = 0  # failures in ``_recent``, kept as it changes (counting per message costs O(window))
        self._max_ratio = max_ratio
        self._min_failures = min_failures

    def note(self, *, ok: bool) -> None:
        """Record one outcome; raise :class:`DeadLetterLimitExceeded` when failures are past the limit."""
        recent = self._recent
        if len(recent) == recent.maxlen and not recent[0]:
            self._failures -= 1  # the oldest outcome, a failure, leaves the window
        recent.append(ok)
        if not ok:
            self._failures += 1
        failures = self._failures
        if failures >= self._min_failures and failures > self._max_ratio * len(recent):
            raise DeadLetterLimitExceeded(
                f"{failures} of the last {len(recent)} messages could not be applied; refusing to "
                "dead-letter the stream (check the producer's or this service's deploy)"
            )


class Message(Protocol):
    """What a dead letter is made from (an aiokafka ``ConsumerRecord``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None


@dataclass(frozen=True)
class DeadLetter:
    """A record for the dead-letter topic."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def dead_letter_of(message: Message, reason: str, group: str,
                   extra_headers: Sequence[tuple[str, bytes]] = ()) -> DeadLetter:
    """The dead letter of ``message``: its own headers, then why and where from (``pulse-dlq-*``); a value
    over 512 KiB is clipped, its size noted."""
    value = message.value or b""
    headers = [
        *(message.headers or ()),
        *extra_headers,
        ("pulse-dlq-reason", reason[:1000].encode()),
        ("pulse-dlq-topic", message.topic.encode()),
        ("pulse-dlq-partition", str(message.partition).encode()),
        ("pulse-dlq-offset", str(message.offset).encode()),
        ("pulse-dlq-group", group.encode()),
    ]
    if len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        headers.append(("pulse-dlq-truncated-from", str(len(value)).encode()))
        value = value[:MAX_DEAD_LETTER_VALUE_BYTES]
    return DeadLetter(message.key, value, headers)


class Offsetted(Protocol):
    """A decoded record: all isolation needs is its offset."""

    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=Offsetted)

#: Apply ``records`` (offsets from ``first``) and store ``next_offset``: True when done, False when the
#: partition was paused (transient failures: the batch is read again later).
Handle = Callable[[Sequence[R], int, int], Awaitable[bool]]
#: Dead-letter one record the handler failed on, with the error.
DeadLetterOne = Callable[[R, Exception], Awaitable[None]]


def split(records: Sequence[R], next_offset: int) -> list[tuple[Sequence[R], int]]:
    """Two halves of a failed batch, each with the offset after it (the second keeps the batch's, which
    counts messages dead-lettered at decoding too)."""
    middle = len(records) // 2
    return [(records[:middle], records[middle].offset), (records[middle:], next_offset)]


async def handle_or_isolate(handle: Handle[R], dead_letter: DeadLetterOne[R],
                            transient: Callable[[BaseException], bool], records: Sequence[R], next_offset: int,
                            first: int, where: dict[str, Any]) -> bool:
    """Handle ``records``; if that fails on an error that is not transient, a single record is dead-lettered
    and its offset stored past it (no effect), and more are split in halves, each handled (and isolated
    again) in order. Transient errors propagate to the caller's retry."""
    try:
        return await handle(records, next_offset, first)
    except Exception as exc:
        if transient(exc):
            raise
        failure = exc
    here = {**where, "offset": first, "records": len(records)}
    if len(records) > 1:
        log.warning("batch failed on an error that is not transient; isolating the failing records",
                    extra={**here, "error": repr(failure)[:300]})
        for part, part_next in split(records, next_offset):
            if not await handle_or_isolate(handle, dead_letter, transient, part, part_next, part[0].offset, where):
                return False
        return True
    if records:
        log.error("the handler fails on this record; dead-lettering it", extra=here, exc_info=failure)
        await dead_letter(records[0], failure)
    # The handler stores the offset past the dead-lettered record, with no effect.
    return await handle([], next_offset, first)
