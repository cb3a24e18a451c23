"""Alerts: rules, message safety, and delivery to a Slack stand-in that checks the documented shapes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.dispatcher import AlertDispatcher
from alerts.domain.message import AlertFacts, escape, render
from alerts.slack import SlackClient
from alerts.store import AlertInput, AlertStore
from alerts.tables import SCHEMA, alerts, consumer_offsets
from pulse_shared.consumer import Record
from pulse_shared.db import create_engine
from pulse_shared.events import AccountOwnerChanged, ResponseSubmitted
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.testing.fake_slack import FakeSlack
from pulse_shared.transactional import TransactionalHandler

NOW = datetime.now(UTC)
TP = TopicPartition("responses", 0)


def answer(rid: str, score: int, *, comment: str | None = None, survey: str = "nps",
           revised: datetime = NOW) -> ResponseSubmitted:
    lo, hi = {"nps": (0, 10), "csat": (1, 5)}[survey]
    return ResponseSubmitted(response_id=rid, account_id="acme", survey_type=survey, score=score,  # type: ignore[arg-type]
                             scale_min=lo, scale_max=hi, comment=comment, respondent_id="u1",
                             submitted_at=NOW, revised_at=revised)


class Harness:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.handler = TransactionalHandler(engine, consumer_offsets, "alerts", AlertStore().apply, name="t",
                                            message="alerts recorded")
        self.offset = 0

    async def feed(self, *events: AlertInput) -> None:
        records = [Record("responses", 0, self.offset + i, b"acme", e, (), 0) for i, e in enumerate(events)]
        self.offset += len(events)
        await self.handler.handle(TP, records, self.offset)

    async def rows(self) -> list[object]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(select(alerts).order_by(alerts.c.alert_id))).all())


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    await asyncio.to_thread(upgrade_to_head, "alerts.migrations", database_url, SCHEMA)
    engine = create_engine(database_url, pool_size=3)
    yield Harness(engine)
    await engine.dispose()


@pytest.fixture
async def slack(fake_slack: FakeSlack) -> AsyncIterator[SlackClient]:
    client = SlackClient(fake_slack.url, fake_slack.token, timeout=2)
    yield client
    await client.close()


def dispatcher(h: Harness, slack: SlackClient | None, **kw: object) -> AlertDispatcher:
    return AlertDispatcher(h.engine, slack, default_channel="#cs", max_attempts=3, retry_base_seconds=0.05,
                           **kw)  # type: ignore[arg-type]


async def drain(d: AlertDispatcher, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await d.deliver_due()
        await asyncio.sleep(0.05)


def test_survey_text_cannot_ping_or_inject_links() -> None:
    facts = AlertFacts(account_id="acme", response_id="r1", survey_type="nps", score=2, scale_min=0, scale_max=10,
                       sentiment="detractor", comment="<!channel> see <https://evil|here> & more")
    text, blocks = render(facts, owner_mention=None)
    flat = str(blocks)
    assert "<!channel>" not in flat
    assert "&lt;!channel&gt;" in flat
    assert escape("a & b") == "a &amp; b"
    assert "acme" in text
    long = facts.model_copy(update={"comment": "x" * 10_000})
    _, blocks = render(long, owner_mention=None)
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks if b["type"] == "section")


async def test_one_alert_per_detractor_answer_posted_once(harness: Harness, slack: SlackClient,
                                                         fake_slack: FakeSlack) -> None:
    await harness.feed(answer("r1", 3), answer("r2", 9), answer("r3", 2, survey="csat"), answer("r1", 3))
    await harness.feed(answer("r1", 3))  # a redelivery on a later offset
    assert [r.alert_id for r in await harness.rows()] == ["detractor:acme:r1", "detractor:acme:r3"]  # type: ignore[attr-defined]
    await drain(dispatcher(harness, slack), 1.0)
    assert len(fake_slack.posts()) == 2
    assert fake_slack.violations == []
    assert {r.status for r in await harness.rows()} == {"sent"}  # type: ignore[attr-defined]


async def test_a_comment_arriving_later_edits_the_message_instead_of_posting_again(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    d = dispatcher(harness, slack)
    await harness.feed(answer("r1", 3))
    await drain(d, 0.5)
    [posted] = await harness.rows()
    assert posted.slack_ts  # type: ignore[attr-defined]
    await harness.feed(answer("r1", 3, comment="Exports time out", revised=datetime.now(UTC)))
    await drain(d, 0.5)
    methods = [c.method for c in fake_slack.calls]
    assert methods == ["chat.postMessage", "chat.update"]
    assert fake_slack.calls[1].body["ts"] == posted.slack_ts  # type: ignore[attr-defined]
    assert fake_slack.calls[1].body["channel"] == "#cs"
    [edited] = await harness.rows()
    assert edited.status == "sent"  # type: ignore[attr-defined]
    assert "Exports time out" in str(fake_slack.calls[1].body["blocks"])


async def test_alerts_go_to_the_owner_by_dm_when_the_crm_names_one(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    fake_slack.users_by_email["csm@example.com"] = "U123"
    await harness.feed(AccountOwnerChanged(account_id="acme", owner_email="csm@example.com", crm="hubspot"))
    await harness.feed(answer("r1", 1))
    await drain(dispatcher(harness, slack), 0.5)
    [post] = fake_slack.posts()
    assert post.body["channel"] == "U123"
    assert "<@U123>" in str(post.body["blocks"])


async def test_permanent_errors_fail_at_once_and_transient_ones_are_retried(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next("#cs", "channel_not_found")
    await harness.feed(answer("r1", 1))
    await drain(dispatcher(harness, slack), 0.5)
    [row] = await harness.rows()
    assert (row.status, row.last_error) == ("failed", "channel_not_found")  # type: ignore[attr-defined]
    assert len([c for c in fake_slack.calls if c.method == "chat.postMessage"]) == 1

    fake_slack.fail_next("#cs", "server_error", times=2)
    await harness.feed(answer("r2", 1))
    await drain(dispatcher(harness, slack), 1.5)
    row = (await harness.rows())[1]
    assert row.status == "sent"  # type: ignore[attr-defined]
    assert len(fake_slack.posts()) == 1


async def test_rate_limits_wait_for_retry_after(harness: Harness, slack: SlackClient, fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("#cs", "ratelimited", retry_after=1)
    await harness.feed(answer("r1", 1))
    await drain(dispatcher(harness, slack), 2.0)
    attempts = [c.at for c in fake_slack.calls if c.method == "chat.postMessage"]
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.95
    assert len(fake_slack.posts()) == 1


async def test_without_slack_alerts_are_logged_clearly(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    await harness.feed(answer("r1", 1, comment="bad"))
    await drain(dispatcher(harness, None), 0.3)
    [row] = await harness.rows()
    assert row.status == "logged"  # type: ignore[attr-defined]
    assert any("Slack not configured" in r.getMessage() for r in caplog.records)
