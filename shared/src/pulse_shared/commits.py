"""Kafka offset commits, throttled (pure; the runner makes the call).

A batch's next offset is *staged* once its effects are durable. Staged offsets go to Kafka about once a
``interval`` (and on revoke and stop), never one commit per batch: the offsets stored with the effects make
the effects exactly-once; Kafka's committed offsets feed lag monitors and autoscalers, which need them
fresh, not per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from aiokafka import TopicPartition


class CommitThrottle:
    """Staged and committed offsets per partition, and when the next commit is due."""

    def __init__(self, interval_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_seconds
        self._clock = clock
        self._staged: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._last = clock()

    def stage(self, tp: TopicPartition, next_offset: int) -> None:
        """``tp``'s effects up to ``next_offset`` are durable."""
        self._staged[tp] = next_offset

    def due(self) -> bool:
        """A commit is due (the interval has passed since the last one)."""
        return self._clock() - self._last >= self._interval

    def to_commit(self, only: Collection[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """The staged offsets Kafka does not have yet (of ``only``, when given); the interval restarts."""
        self._last = self._clock()
        return {tp: offset for tp, offset in self._staged.items()
                if self._committed.get(tp) != offset and (only is None or tp in only)}

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Kafka took ``offsets``."""
        self._committed.update(offsets)

    def forget(self, tp: TopicPartition) -> None:
        """``tp`` moved to another member."""
        self._staged.pop(tp, None)
        self._committed.pop(tp, None)
