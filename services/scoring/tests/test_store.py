"""The scoring write path against real PostgreSQL: idempotence, revisions, erasure, offset fencing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.consumer import Record
from pulse_shared.db import create_engine
from pulse_shared.events import RespondentErased, ResponseSubmitted
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.transactional import TransactionalHandler
from scoring.domain.windows import rolling
from scoring.queries import account_windows, metrics_of
from scoring.store import ConcurrentAnswer, ResponseEvent, ResponseStore, is_transient
from scoring.tables import SCHEMA, account_state, consumer_offsets, responses

TP = TopicPartition("responses", 0)
NOW = datetime.now(UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(upgrade_to_head, "scoring.migrations", database_url, SCHEMA)
    eng = create_engine(database_url, pool_size=2)
    yield eng
    await eng.dispose()


def answer(response_id: str, score: int, *, account: str = "acme", comment: str | None = None,
           revised: datetime = NOW, respondent: str | None = "u1", plan: str = "pro") -> ResponseSubmitted:
    return ResponseSubmitted(
        response_id=response_id, account_id=account, survey_type="nps", score=score, scale_min=0, scale_max=10,
        comment=comment, respondent_id=respondent, properties={"plan": plan}, submitted_at=NOW,
        revised_at=revised,
    )


def records(events: list[ResponseEvent], start: int = 0) -> list[Record[ResponseEvent]]:
    return [Record("responses", 0, start + i, b"acme", e, (), 0) for i, e in enumerate(events)]


async def apply(engine: AsyncEngine, events: list[ResponseEvent], start: int = 0) -> None:
    handler = TransactionalHandler(engine, consumer_offsets, "scoring", ResponseStore(["plan"]).apply, name="t",
                                   message="stored")
    await handler.handle(TP, records(events, start), start + len(events))


async def nps_of(engine: AsyncEngine, account: str = "acme") -> tuple[int, float | None, dict[str, int]]:
    async with engine.connect() as conn:
        [hist] = await account_windows(conn, account, [rolling("30d", NOW.date())])
        m = metrics_of(hist)["nps"]
    return m.n, m.value, m.counts


async def test_duplicates_and_redelivered_batches_count_once(engine: AsyncEngine) -> None:
    batch: list[ResponseEvent] = [answer("r1", 3), answer("r1", 3), answer("r2", 10)]
    await apply(engine, batch)
    await apply(engine, batch)  # the same offsets again: fenced by the stored offset
    await apply(engine, [answer("r1", 3, revised=NOW + timedelta(seconds=5))], start=3)  # a retry, same content
    n, value, counts = await nps_of(engine)
    assert (n, value) == (2, 0.0)
    assert counts == {"promoters": 1, "passives": 0, "detractors": 1}
    async with engine.connect() as conn:
        version = (await conn.execute(select(account_state.c.version))).scalar_one()
    assert version == 1


async def test_the_log_says_what_each_batch_changed_and_names_duplicates(engine: AsyncEngine) -> None:
    store = ResponseStore(["plan"])

    async def summary(events: list[ResponseEvent]) -> dict[str, object]:
        async with engine.begin() as conn:
            return dict(await store.apply(conn, records(events)))

    assert await summary([answer("r1", 3), answer("r2", 10)]) == {"applied": 2, "new": 2, "accounts": ["acme"]}
    # The same answer sent again (a client retry with the same id): logged as unchanged, nothing counted.
    assert await summary([answer("r1", 3)]) == {"applied": 1, "unchanged": 1, "accounts": []}
    assert await summary([answer("r1", 9, revised=NOW + timedelta(minutes=1))]) == {
        "applied": 1, "revised": 1, "accounts": ["acme"]}


async def test_a_later_revision_moves_the_counts_and_an_older_one_does_not(engine: AsyncEngine) -> None:
    await apply(engine, [answer("r1", 3)])
    await apply(engine, [answer("r1", 9, comment="fixed!", revised=NOW + timedelta(minutes=1))], start=1)
    await apply(engine, [answer("r1", 0, revised=NOW - timedelta(minutes=1))], start=2)
    n, value, counts = await nps_of(engine)
    assert (n, value, counts["promoters"], counts["detractors"]) == (1, 100.0, 1, 0)


async def test_erasure_clears_personal_fields_keeps_counts_and_survives_replay(engine: AsyncEngine) -> None:
    original = answer("r1", 2, comment="call me at 555-1234")
    await apply(engine, [original])
    await apply(engine, [RespondentErased(account_id="acme", respondent_id="u1")], start=1)
    await apply(engine, [original], start=0)  # a replay of the topic from the beginning (offsets lost)
    async with engine.begin() as conn:
        row = (await conn.execute(select(responses))).one()
    assert (row.comment, row.respondent_id, row.erased) == (None, None, True)
    assert (await nps_of(engine))[0] == 1


async def test_an_answer_inserted_by_two_transactions_at_once_is_retried_and_counted_once(
    engine: AsyncEngine,
) -> None:
    """New answers are stored with COPY; should two partitions hold one account (a re-partitioned topic)
    and insert the same answer at once, the second fails with a retryable error and its retry updates."""
    store = ResponseStore(["plan"])
    later = answer("r1", 9, revised=NOW + timedelta(minutes=1))
    async with engine.connect() as a, engine.connect() as b:
        await a.begin()
        await b.begin()
        await store.apply(a, [Record("responses", 0, 0, b"acme", answer("r1", 3), (), 0)])
        second = asyncio.create_task(store.apply(b, [Record("responses", 1, 0, b"acme", later, (), 0)]))
        await asyncio.sleep(0.3)
        assert not second.done()  # waits on the first transaction's key
        await a.commit()
        with pytest.raises(ConcurrentAnswer) as failed:
            await second
        assert is_transient(failed.value)
        await b.rollback()
    handler = TransactionalHandler(engine, consumer_offsets, "scoring", store.apply, name="t", message="stored")
    await handler.handle(TopicPartition("responses", 1), [Record("responses", 1, 0, b"acme", later, (), 0)], 1)
    n, value, counts = await nps_of(engine)
    assert (n, value, counts["promoters"], counts["detractors"]) == (1, 100.0, 1, 0)


def test_the_content_hash_is_pinned_because_stored_rows_carry_it() -> None:
    """Ties between revisions with the same time are broken by the hash stored with each row, so the
    hash of the same content must never change between releases."""
    from scoring.domain.answers import content_hash

    t = datetime(2026, 11, 23, 12, tzinfo=UTC)
    answer = ResponseSubmitted(response_id="r1", account_id="acme", survey_type="nps", score=3, scale_min=0,
                               scale_max=10, comment="Exports — slow", respondent_id="u7",
                               properties={"plan": "pro", "seats": 12, "trial": False, "ratio": 0.5},
                               submitted_at=t, revised_at=t, survey_id="product-nps")
    assert content_hash(answer) == "b5859187c27383ea6ed82814d6f50116"
    later = answer.model_copy(update={"submitted_at": t - timedelta(days=1), "revised_at": t + timedelta(hours=1)})
    assert content_hash(later) == content_hash(answer)  # what was said, not when


async def test_tables_updated_in_place_leave_room_for_heap_only_updates(engine: AsyncEngine) -> None:
    from sqlalchemy import text

    async with engine.connect() as conn:
        options = dict((await conn.execute(text(
            "SELECT relname, reloptions FROM pg_class WHERE relnamespace = 'scoring'::regnamespace "
            "AND relname IN ('daily_counts', 'account_state')"))).all())
    assert options == {"daily_counts": ["fillfactor=80"], "account_state": ["fillfactor=70"]}
