"""Order independence against a pure oracle (hypothesis), and the rebuild command."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.consumer import Record
from pulse_shared.db import create_engine
from pulse_shared.events import RespondentErased, ResponseSubmitted, ResponseUpdated
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.transactional import TransactionalHandler
from scoring.rebuild import rebuild, reset_offsets
from scoring.store import ResponseEvent, ResponseStore
from scoring.tables import SCHEMA, consumer_offsets, daily_counts
from scoring_oracle import SEGMENTS, oracle, stored_state

BASE = datetime(2026, 11, 1, 12, tzinfo=UTC)


answer_events = st.builds(
    lambda kind, account, rid, score, minutes, day, plan, comment, respondent: (ResponseSubmitted if kind
                                                                                  else ResponseUpdated)(
        response_id=f"r{rid}", account_id=f"a{account}", survey_type="nps", score=score, scale_min=0, scale_max=10,
        comment=comment, respondent_id=f"u{respondent}", properties={"plan": plan} if plan else {},
        submitted_at=BASE - timedelta(days=day), revised_at=BASE + timedelta(minutes=minutes),
    ),
    st.booleans(), st.integers(0, 1), st.integers(0, 5), st.integers(0, 10), st.integers(0, 3), st.integers(0, 2),
    st.sampled_from([None, "pro", "free"]), st.sampled_from([None, "slow", "great"]), st.integers(0, 2),
)
erasures = st.builds(lambda account, respondent: RespondentErased(account_id=f"a{account}",
                                                                   respondent_id=f"u{respondent}"),
                     st.integers(0, 1), st.integers(0, 2))
streams = st.lists(st.one_of(answer_events, answer_events, answer_events, erasures), min_size=1, max_size=25)


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    await asyncio.to_thread(upgrade_to_head, "scoring.migrations", database_url, SCHEMA)
    return database_url


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(migrated_url, pool_size=2)
    yield eng
    await eng.dispose()


async def apply_in_batches(engine: AsyncEngine, events: list[ResponseEvent], rng: random.Random) -> None:
    handler = TransactionalHandler(engine, consumer_offsets, "scoring", ResponseStore(SEGMENTS).apply, name="t",
                                   message="stored")
    offset = 0
    while offset < len(events):
        size = rng.randint(1, 6)
        batch = events[offset : offset + size]
        records = [Record("r", 0, offset + i, b"k", e, (), 0) for i, e in enumerate(batch)]
        await handler.handle(TopicPartition("r", 0), records, offset + len(batch))
        offset += len(batch)


async def final_states(url: str, orders: list[list[ResponseEvent]], rng: random.Random) -> list[object]:
    engine = create_engine(url, pool_size=1)
    states = []
    try:
        for order in orders:
            async with engine.begin() as conn:
                await conn.execute(text("TRUNCATE scoring.responses, scoring.daily_counts, scoring.account_state, "
                                        "scoring.erased_respondents, scoring.consumer_offsets"))
            await apply_in_batches(engine, order, rng)
            states.append(await stored_state(engine))
    finally:
        await engine.dispose()
    return states


@settings(
    max_examples=int(os.environ.get("PULSE_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(stream=streams, seed=st.integers(0, 2**32 - 1), duplicate=st.booleans())
def test_any_order_with_duplicates_updates_and_erasures_equals_the_oracle(
    migrated_url: str, stream: list[ResponseEvent], seed: int, duplicate: bool
) -> None:
    rng = random.Random(seed)
    events = list(stream) + (rng.sample(stream, k=len(stream) // 2) if duplicate else [])
    orders = [rng.sample(events, k=len(events)) for _ in range(2)]
    expected = oracle(events)
    for i, state in enumerate(asyncio.run(final_states(migrated_url, orders, rng))):
        assert state == expected, f"order {i} differs from the oracle"


async def test_rebuild_reports_and_repairs_drift_and_applies_new_segments(engine: AsyncEngine) -> None:
    rng = random.Random(7)
    events: list[ResponseEvent] = [
        ResponseSubmitted(response_id=f"r{i}", account_id=f"a{i % 3}", survey_type="nps", score=i % 11, scale_min=0,
                          scale_max=10, properties={"plan": "pro" if i % 2 else "free", "region": "eu"},
                          submitted_at=BASE - timedelta(days=i % 5), revised_at=BASE)
        for i in range(60)
    ]
    await apply_in_batches(engine, events, rng)
    clean = await rebuild(engine, SEGMENTS, apply=False)
    assert clean.consistent
    assert clean.answers == 60
    assert clean.answers_counted_before == clean.answers_counted_after == 60

    async with engine.begin() as conn:  # simulate a bug that lost one count
        await conn.execute(update(daily_counts).where(daily_counts.c.account_id == "a1")
                           .values(n=daily_counts.c.n + 1))
    drift = await rebuild(engine, SEGMENTS, apply=False)
    assert not drift.consistent
    assert drift.accounts_affected == ["a1"]
    assert drift.answers_counted_before > 60
    assert drift.examples

    repaired = await rebuild(engine, ("plan", "region"), apply=True)  # a method change: a new segment
    assert repaired.applied
    assert repaired.segments_changed == 60
    assert (await rebuild(engine, ("plan", "region"), apply=False)).consistent
    counts, _ = await stored_state(engine)
    assert sum(n for k, n in counts.items() if dict(k[6]).get("region") == "eu") == 60
    assert sum(n for k, n in counts.items() if dict(k[6]).get("plan") == "pro") == 30
    assert sum(counts.values()) == 60

    async with engine.begin() as conn:
        await conn.execute(consumer_offsets.insert().values(group_id="scoring", topic="r", partition=1, next_offset=9))
    assert await reset_offsets(engine, "scoring") == 2
