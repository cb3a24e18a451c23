"""The consumer loop's parts, each pure and tested without a broker: the dead-letter guard and record,
isolation by bisection, commit throttling, retry-then-pause."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition

from pulse_shared.commits import CommitThrottle
from pulse_shared.dead_letters import (
    MAX_DEAD_LETTER_VALUE_BYTES,
    DeadLetterGuard,
    DeadLetterLimitExceeded,
    dead_letter_of,
    handle_or_isolate,
    split,
)
from pulse_shared.retry_pause import Pauses, RetryPolicy

TP = TopicPartition("pulse.responses.v1", 2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_guard_trips_only_when_most_recent_records_failed() -> None:
    guard = DeadLetterGuard(window=10, max_ratio=0.5, min_failures=4)
    for ok in (True, False) * 5:  # half failed: not more than half
        guard.note(ok=ok)
    for _ in range(20):  # a steady trickle of bad data never trips it
        guard.note(ok=True)
        guard.note(ok=True)
        guard.note(ok=False)
    guard = DeadLetterGuard(window=10, max_ratio=0.5, min_failures=4)
    for _ in range(3):
        guard.note(ok=False)  # fewer than the minimum: not yet
    with pytest.raises(DeadLetterLimitExceeded, match="4 of the last 4"):
        guard.note(ok=False)


@pytest.mark.parametrize("seed", range(5))
def test_the_guard_counts_failures_in_a_sliding_window_as_a_recount_would(seed: int) -> None:
    """The failure count is kept as outcomes enter and leave the window; it must equal a recount."""
    guard = DeadLetterGuard(window=20, max_ratio=0.5, min_failures=5)
    rng = random.Random(seed)
    window: deque[bool] = deque(maxlen=20)
    for i in range(2000):
        ok = rng.random() < 0.9 - 0.6 * i / 2000  # failures grow slowly more frequent
        window.append(ok)
        failures = window.count(False)
        if failures >= 5 and failures > 0.5 * len(window):
            with pytest.raises(DeadLetterLimitExceeded, match=f"{failures} of the last {len(window)}"):
                guard.note(ok=ok)
            assert i > 20  # the window filled and rolled before the limit was reached
            return
        guard.note(ok=ok)
    pytest.fail("the stream never crossed the limit")


def test_the_guard_forgets_failures_that_left_its_window() -> None:
    guard = DeadLetterGuard(window=4, max_ratio=0.5, min_failures=3)
    for ok in (False, False, True, True, True, True):  # the two failures left the window
        guard.note(ok=ok)
    guard.note(ok=False)
    guard.note(ok=False)  # 2 of 4: not more than half
    with pytest.raises(DeadLetterLimitExceeded):
        guard.note(ok=False)  # 3 of 4


@dataclass
class Message:
    topic: str = "pulse.responses.v1"
    partition: int = 2
    offset: int = 41
    key: bytes | None = b"acme"
    value: bytes | None = b"{}"
    headers: Sequence[tuple[str, bytes]] | None = (("event-type", b"response.submitted.v1"),)


def test_a_dead_letter_says_where_it_came_from_and_why_and_keeps_its_headers() -> None:
    letter = dead_letter_of(Message(), "not JSON", "pulse-scoring", [("pulse-dlq-exception", b"ValueError")])
    headers = dict(letter.headers)
    assert (letter.key, letter.value) == (b"acme", b"{}")
    assert headers == {"event-type": b"response.submitted.v1", "pulse-dlq-exception": b"ValueError",
                       "pulse-dlq-reason": b"not JSON", "pulse-dlq-topic": b"pulse.responses.v1",
                       "pulse-dlq-partition": b"2", "pulse-dlq-offset": b"41", "pulse-dlq-group": b"pulse-scoring"}
    big = dead_letter_of(Message(value=b"x" * (MAX_DEAD_LETTER_VALUE_BYTES + 5)), "too big", "g")
    assert len(big.value) == MAX_DEAD_LETTER_VALUE_BYTES
    assert dict(big.headers)["pulse-dlq-truncated-from"] == str(MAX_DEAD_LETTER_VALUE_BYTES + 5).encode()


@dataclass(frozen=True)
class Rec:
    offset: int


async def test_isolation_dead_letters_exactly_the_failing_records_and_applies_the_rest_in_order() -> None:
    records = [Rec(o) for o in range(100, 120)]
    poison = {105, 113, 114}
    applied: list[int] = []
    stored: list[int] = []
    lettered: list[int] = []

    async def handle(part: Sequence[Rec], next_offset: int, first: int) -> bool:
        if any(r.offset in poison for r in part):
            raise ValueError("cannot apply")
        applied.extend(r.offset for r in part)
        stored.append(next_offset)
        return True

    async def dead_letter(record: Rec, failure: Exception) -> None:
        assert isinstance(failure, ValueError)
        lettered.append(record.offset)

    done = await handle_or_isolate(handle, dead_letter, lambda _e: False, records, 120, 100, {"partition": 2})
    assert done is True
    assert lettered == [105, 113, 114]
    assert applied == [o for o in range(100, 120) if o not in poison]  # in order
    assert stored == sorted(stored)
    assert stored[-1] == 120  # the offset ends past the batch


async def test_isolation_lets_transient_errors_through_to_the_retry() -> None:
    async def handle(part: Sequence[Rec], next_offset: int, first: int) -> bool:
        raise ConnectionRefusedError("database down")

    async def dead_letter(record: Rec, failure: Exception) -> None:
        raise AssertionError("a transient error is never dead-lettered")

    with pytest.raises(ConnectionRefusedError):
        await handle_or_isolate(handle, dead_letter, lambda e: isinstance(e, OSError), [Rec(1), Rec(2)], 3, 1, {})


def test_split_gives_each_half_the_offset_after_it() -> None:
    records = [Rec(o) for o in (10, 11, 12, 13, 14)]
    (left, left_next), (right, right_next) = split(records, 15)
    assert ([r.offset for r in left], left_next) == ([10, 11], 12)
    assert ([r.offset for r in right], right_next) == ([12, 13, 14], 15)


def test_commits_are_throttled_and_only_what_kafka_lacks_is_committed() -> None:
    clock = Clock()
    commits = CommitThrottle(1.0, clock)
    other = TopicPartition("pulse.responses.v1", 0)
    assert not commits.due()
    commits.stage(TP, 10)
    commits.stage(other, 5)
    clock.now += 1.0
    assert commits.due()
    offsets = commits.to_commit()
    assert offsets == {TP: 10, other: 5}
    assert not commits.due()  # the interval restarts
    commits.committed(offsets)
    assert commits.to_commit() == {}  # nothing new
    commits.stage(TP, 12)
    assert commits.to_commit(only=[other]) == {}  # on revoke: only the revoked partitions
    assert commits.to_commit(only=[TP]) == {TP: 12}
    commits.forget(TP)
    assert commits.to_commit() == {}


def test_retries_back_off_with_jitter_up_to_a_cap_then_give_up() -> None:
    policy = RetryPolicy(initial_seconds=0.2, max_seconds=5.0, before_pause=5)
    assert [policy.delay(a, 0.999999) for a in (1, 2, 3)] == pytest.approx([0.2, 0.4, 0.8], rel=1e-5)
    assert policy.delay(1, 0.0) == pytest.approx(0.1)  # jitter halves at most
    assert policy.delay(10, 0.999999) == pytest.approx(5.0, rel=1e-5)  # capped
    assert [policy.gives_up(a) for a in (5, 6)] == [False, True]


def test_a_paused_partition_is_due_again_after_the_pause() -> None:
    clock = Clock()
    pauses = Pauses(10.0, clock)
    pauses.pause(TP)
    assert TP in pauses
    clock.now += 9.9
    assert pauses.due() == []
    clock.now += 0.1
    assert pauses.due() == [TP]
    assert TP not in pauses
    pauses.pause(TP)
    pauses.forget(TP)
    assert TP not in pauses
