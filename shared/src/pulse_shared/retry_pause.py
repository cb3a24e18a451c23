"""Transient failures (the database down, a lock timeout): retried with backoff, then the partition is
paused and read again from the same offset later. Nothing is ever skipped. Pure: the clock and the jitter
are given."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import TopicPartition


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, up to ``before_pause`` retries."""

    initial_seconds: float
    max_seconds: float
    before_pause: int

    def gives_up(self, attempt: int) -> bool:
        """After ``attempt`` failed tries in a row, stop retrying and pause the partition."""
        return attempt > self.before_pause

    def delay(self, attempt: int, jitter: float) -> float:
        """The wait before retry ``attempt`` (1, 2, ...): doubling from ``initial_seconds``, capped, times a
        jitter factor in [0.5, 1) from ``jitter`` in [0, 1)."""
        backoff: float = self.initial_seconds * 2.0 ** (attempt - 1)
        return min(self.max_seconds, backoff) * (0.5 + jitter / 2)


class Pauses:
    """Partitions paused after repeated transient failures, and when each is due to resume."""

    def __init__(self, pause_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.pause_seconds = pause_seconds
        self._clock = clock
        self._until: dict[TopicPartition, float] = {}

    def pause(self, tp: TopicPartition) -> None:
        """Pause ``tp`` for the pause period from now."""
        self._until[tp] = self._clock() + self.pause_seconds

    def due(self) -> list[TopicPartition]:
        """The partitions whose pause has ended (forgotten here: the caller resumes them)."""
        now = self._clock()
        ended = [tp for tp, until in self._until.items() if until <= now]
        for tp in ended:
            del self._until[tp]
        return ended

    def __contains__(self, tp: object) -> bool:
        return tp in self._until

    def forget(self, tp: TopicPartition) -> None:
        """``tp`` moved to another member."""
        self._until.pop(tp, None)
