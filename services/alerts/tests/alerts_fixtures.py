"""Fixtures of alerts' component tests: a migrated database, the store behind a real transactional handler,
a dispatcher against the Slack fake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.api import router
from alerts.config import AlertsConfig, parse_config
from alerts.dispatcher import AlertDispatcher
from alerts.slack import SlackClient
from alerts.store import AlertInput, AlertStore
from alerts.tables import SCHEMA, alerts, consumer_offsets
from pulse_shared.consumer import Record
from pulse_shared.db import create_engine
from pulse_shared.events import ResponseSubmitted, ResponseUpdated
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.testing.fake_slack import FakeSlack
from pulse_shared.transactional import TransactionalHandler

CHANNEL = "C0CS00001"
TP = TopicPartition("responses", 0)


def answer(rid: str, score: int, *, comment: str | None = None, survey: str = "nps", account: str = "acme",
           revised: datetime | None = None, respondent: str = "u1", properties: dict[str, Any] | None = None,
           updated: bool = False) -> ResponseSubmitted | ResponseUpdated:
    lo, hi = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}[survey]
    now = datetime.now(UTC)
    cls = ResponseUpdated if updated else ResponseSubmitted
    return cls(response_id=rid, account_id=account, survey_type=survey, score=score,  # type: ignore[arg-type]
               scale_min=lo, scale_max=hi, comment=comment, respondent_id=respondent,
               respondent_email=f"{respondent}@customer.example", properties=properties or {},
               submitted_at=now, revised_at=revised or now)


class Harness:
    """The alerts store fed through the real transactional handler, and a dispatcher factory."""

    def __init__(self, engine: AsyncEngine, config: AlertsConfig | None = None, hold: float = 0.0) -> None:
        self.engine = engine
        #: The store's clock (None: the real one); tests set it to place answers in time.
        self.now: datetime | None = None
        self.configure(config, hold)
        self.offset = 0

    def configure(self, config: AlertsConfig | str | None = None, hold: float = 0.0) -> None:
        if isinstance(config, str):
            config = parse_config(config)
        self.store = AlertStore(config, hold_seconds=hold, clock=lambda: self.now or datetime.now(UTC))
        self.handler = TransactionalHandler(self.engine, consumer_offsets, "alerts", self.store.apply, name="t",
                                            message="alerts recorded")

    async def feed(self, *events: AlertInput) -> None:
        records = [Record("responses", 0, self.offset + i, b"acme", e, (), 0) for i, e in enumerate(events)]
        self.offset += len(events)
        await self.handler.handle(TP, records, self.offset)

    async def rows(self) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(select(alerts).order_by(alerts.c.created_at, alerts.c.alert_id))).all())

    async def row(self, alert_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(alerts).where(alerts.c.alert_id == alert_id))).one()

    async def sql(self, statement: str, **params: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text(statement), params)


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    await asyncio.to_thread(upgrade_to_head, "alerts.migrations", database_url, SCHEMA)
    engine = create_engine(database_url, pool_size=8)
    yield Harness(engine)
    await engine.dispose()


@pytest.fixture
async def admin(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """Alerts' admin API on the harness's database (bearer ``admin``)."""
    app = FastAPI()
    app.state.settings = SimpleNamespace(admin_token=SecretStr("admin"))
    app.include_router(router(harness.engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alerts",
                                 headers={"Authorization": "Bearer admin"}) as client:
        yield client


@pytest.fixture
async def slack(fake_slack: FakeSlack) -> AsyncIterator[SlackClient]:
    client = SlackClient(fake_slack.url, fake_slack.token, timeout=2)
    yield client
    await client.close()


def dispatcher(h: Harness, slack: SlackClient | None, **kw: Any) -> AlertDispatcher:
    options: dict[str, Any] = {"default_channel": CHANNEL, "max_attempts": 3, "retry_base_seconds": 0.05,
                               "lease_seconds": 10.0, "channel_interval_seconds": 1.0}
    options.update(kw)
    return AlertDispatcher(h.engine, slack, **options)


async def drain_until(d: AlertDispatcher, done: Callable[[], Any], *, timeout: float = 10.0,
                      what: str = "the condition") -> None:
    """Run the dispatcher until ``done()`` (sync or async) holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await d.deliver_due()
        result = done()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def settle(h: Harness, d: AlertDispatcher, *, timeout: float = 10.0) -> None:
    """Run the dispatcher until no alert is due or leased any more (held ones included)."""

    async def quiet() -> bool:
        async with h.engine.connect() as conn:
            n = (await conn.execute(select(alerts.c.alert_id).where(
                alerts.c.status.in_(("pending", "update_pending"))))).all()
        return not n

    await drain_until(d, quiet, timeout=timeout, what="every alert to settle")
