"""crm-sync: score events coalesced per account and written to a HubSpot stand-in within its limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.connectors.hubspot import HubSpotConnector
from crm_sync.dispatcher import WriteDispatcher
from crm_sync.domain.properties import property_defs, score_properties
from crm_sync.store import WriteStore
from crm_sync.tables import SCHEMA, consumer_offsets, crm_writes
from pulse_shared.consumer import Record
from pulse_shared.db import create_engine
from pulse_shared.events import ScoreSummary, ScoreUpdated
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.testing.fake_hubspot import FakeHubSpot
from pulse_shared.transactional import TransactionalHandler

TP = TopicPartition("scores", 0)


def score_event(account: str, version: int, nps: float | None = 20.0, n: int = 10) -> ScoreUpdated:
    return ScoreUpdated(
        account_id=account, version=version, computed_at=datetime(2026, 11, 23, tzinfo=UTC),
        scores=(ScoreSummary(metric="nps", window="30d", n=n, value=nps, ci_low=None if nps is None else nps - 30,
                             ci_high=None if nps is None else nps + 30, counts={}),),
    )


def test_properties_carry_value_sample_size_and_interval() -> None:
    props = score_properties(score_event("acme", 4, nps=-12.5, n=37))
    assert props["pulse_nps_30d"] == "-12.5"
    assert props["pulse_nps_30d_n"] == "37"
    assert props["pulse_nps_30d_ci_low"] == "-42.5"
    assert props["pulse_scores_version"] == "4"
    empty = score_properties(score_event("acme", 5, nps=None, n=0))
    assert empty["pulse_nps_30d"] == ""
    names = [d.name for d in property_defs("pulse_account_id")]
    assert len(names) == len(set(names))
    assert set(props) <= set(names)


class Harness:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.handler = TransactionalHandler(engine, consumer_offsets, "crm", WriteStore(["hubspot"]).apply, name="t",
                                            message="CRM writes queued")
        self.offset = 0

    async def feed(self, *events: ScoreUpdated) -> None:
        records = [Record("scores", 0, self.offset + i, e.account_id.encode(), e, (), 0) for i, e in enumerate(events)]
        self.offset += len(events)
        await self.handler.handle(TP, records, self.offset)


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    await asyncio.to_thread(upgrade_to_head, "crm_sync.migrations", database_url, SCHEMA)
    engine = create_engine(database_url, pool_size=3)
    yield Harness(engine)
    await engine.dispose()


@pytest.fixture
async def hubspot(fake_hubspot: FakeHubSpot) -> AsyncIterator[HubSpotConnector]:
    connector = HubSpotConnector(fake_hubspot.url, fake_hubspot.token, id_property="pulse_account_id",
                                 create_properties=True, timeout=5)
    yield connector
    await connector.close()


async def test_250_accounts_go_in_batches_of_at_most_100_and_properties_are_created_once(
    harness: Harness, hubspot: HubSpotConnector, fake_hubspot: FakeHubSpot
) -> None:
    await harness.feed(*(score_event(f"acct-{i:03d}", 1) for i in range(250)))
    d = WriteDispatcher(harness.engine, hubspot, max_attempts=3)
    while await d.deliver_due():
        pass
    calls = fake_hubspot.batch_calls()
    assert [len(c.body["inputs"]) for c in calls] == [100, 100, 50]
    assert len(fake_hubspot.companies) == 250
    assert fake_hubspot.violations == []
    assert fake_hubspot.properties["pulse_account_id"]["hasUniqueValue"] is True
    created = len(fake_hubspot.properties)
    await harness.feed(score_event("acct-000", 2))
    await d.deliver_due()
    assert len(fake_hubspot.properties) == created


async def test_only_the_newest_version_is_written_and_old_versions_change_nothing(
    harness: Harness, hubspot: HubSpotConnector, fake_hubspot: FakeHubSpot
) -> None:
    await harness.feed(score_event("acme", 3, nps=30), score_event("acme", 2, nps=10), score_event("acme", 4, nps=40))
    await harness.feed(score_event("acme", 1, nps=-50))
    d = WriteDispatcher(harness.engine, hubspot, max_attempts=3)
    await d.deliver_due()
    assert not await d.deliver_due()
    [call] = fake_hubspot.batch_calls()
    assert call.body["inputs"][0]["properties"]["pulse_nps_30d"] == "40"
    assert fake_hubspot.companies["acme"]["pulse_scores_version"] == "4"


@pytest.mark.parametrize(("error", "min_pause"), [("rate_limit", 9.0), ("daily_limit", 60.0), ("server_error", 4.0)])
async def test_limits_and_outages_pause_the_connector_and_keep_the_writes(
    harness: Harness, hubspot: HubSpotConnector, fake_hubspot: FakeHubSpot, error: str, min_pause: float
) -> None:
    await harness.feed(score_event("acme", 1))
    fake_hubspot.fail_next(error)
    d = WriteDispatcher(harness.engine, hubspot, max_attempts=3)
    assert await d.deliver_due()
    assert not await d.deliver_due()  # paused: no call at all
    assert len(fake_hubspot.batch_calls()) == 1
    async with harness.engine.connect() as conn:
        row = (await conn.execute(select(crm_writes))).one()
    assert row.written_version == 0
    assert row.status == "pending"
    assert (row.next_attempt_at - datetime.now(UTC)).total_seconds() >= min_pause - 1
