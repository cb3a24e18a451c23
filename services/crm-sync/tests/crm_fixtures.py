"""crm-sync component-test fixtures: the write path on a real PostgreSQL, writers on an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.connectors.hubspot import HubSpotConnector, HubSpotOptions
from crm_sync.dispatcher import ConnectorWriter, WriterOptions
from crm_sync.owners import OwnerSync
from crm_sync.store import CrmInput, StoreOptions, WriteStore
from crm_sync.tables import SCHEMA, consumer_offsets, crm_writes
from pulse_shared.consumer import Record
from pulse_shared.db import create_engine
from pulse_shared.events import ResponseSubmitted, ScoreSummary, ScoreUpdated
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.producer import EventProducer
from pulse_shared.testing.fake_hubspot import FakeHubSpot
from pulse_shared.transactional import TransactionalHandler

TP = TopicPartition("scores", 0)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def score_event(account: str, version: int, nps: float | None = 20.0, n: int = 10, detractors: int = 0,
                ) -> ScoreUpdated:
    return ScoreUpdated(
        account_id=account, version=version, computed_at=T0 + timedelta(seconds=version),
        scores=(ScoreSummary(metric="nps", window="30d", n=n, value=nps, ci_low=None if nps is None else nps - 30,
                             ci_high=None if nps is None else nps + 30,
                             counts={"promoters": 0, "passives": 0, "detractors": detractors}),),
    )


def answer(account: str, response: str, score: int = 3, *, comment: str | None = None,
           respondent: str | None = "user-1", at: datetime = T0, **properties: str) -> ResponseSubmitted:
    return ResponseSubmitted(
        response_id=response, account_id=account, survey_type="nps", score=score, scale_min=0, scale_max=10,
        comment=comment, respondent_id=respondent, properties=dict(properties), submitted_at=at, revised_at=at,
    )


@dataclass
class Clock:
    """Wall and monotonic time that move only when told (or when a writer sleeps for its budget)."""

    wall_at: datetime = T0
    mono_at: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def wall(self) -> datetime:
        return self.wall_at

    def mono(self) -> float:
        return self.mono_at

    def advance(self, seconds: float) -> None:
        self.wall_at += timedelta(seconds=seconds)
        self.mono_at += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


class Harness:
    """Feeds events through the transactional write path and builds writers against the HubSpot fake."""

    def __init__(self, engine: AsyncEngine, fake: FakeHubSpot, options: StoreOptions | None = None) -> None:
        self.engine = engine
        self.fake = fake
        self.clock = Clock()
        self.options = options or StoreOptions()
        self.offset = 0
        self.connectors: list[HubSpotConnector] = []
        self._handler = self.handler_for(self.options)

    def handler_for(self, options: StoreOptions) -> TransactionalHandler[CrmInput]:
        self.options = options
        self._handler = TransactionalHandler(self.engine, consumer_offsets, "crm",
                                             WriteStore(["hubspot"], options).apply, name="t",
                                             message="CRM writes queued")
        return self._handler

    async def feed(self, *events: CrmInput) -> None:
        records = [Record("scores", 0, self.offset + i, e.account_id.encode(), e, (), 0) for i, e in enumerate(events)]
        self.offset += len(events)
        await self._handler.handle(TP, records, self.offset)

    def connector(self, **options: Any) -> HubSpotConnector:
        connector = HubSpotConnector(self.fake.url, self.fake.token, HubSpotOptions(**options), timeout=2.0)
        self.connectors.append(connector)
        return connector

    def writer(self, connector: HubSpotConnector | None = None, *, producer: EventProducer | None = None,
               owners_topic: str = "owners", engine: AsyncEngine | None = None, real_time: bool = False,
               **options: Any) -> ConnectorWriter:
        engine = engine or self.engine
        connector = connector or self.connector(write_comments=self.options.write_comments)
        owners = OwnerSync(engine, producer, owners_topic, recheck_after=options.pop("recheck_after", 900.0),
                           wall=(lambda: datetime.now(UTC)) if real_time else self.clock.wall)
        if real_time:
            return ConnectorWriter(engine, connector, WriterOptions(**options), owners=owners)
        return ConnectorWriter(engine, connector, WriterOptions(**options), owners=owners, wall=self.clock.wall,
                               monotonic=self.clock.mono, sleep=self.clock.sleep)

    async def rows(self) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            return {r.account_id: r for r in (await conn.execute(select(crm_writes))).all()}

    async def statuses(self) -> dict[str, str]:
        return {a: r.status for a, r in (await self.rows()).items()}


@pytest.fixture
async def harness(database_url: str, fake_hubspot: FakeHubSpot) -> AsyncIterator[Harness]:
    await asyncio.to_thread(upgrade_to_head, "crm_sync.migrations", database_url, SCHEMA)
    engine = create_engine(database_url, pool_size=5)
    h = Harness(engine, fake_hubspot)
    yield h
    for c in h.connectors:
        await c.close()
    await engine.dispose()
