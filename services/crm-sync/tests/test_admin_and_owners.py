"""crm-sync's admin API (unmatched, dead letters and replay, reconcile, status), owners read back and published,
and one writer per connector across replicas within one budget."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from crm_fixtures import Harness, score_event
from fastapi import FastAPI
from pydantic import SecretStr

from crm_sync.api import router
from crm_sync.domain.properties import property_defs
from crm_sync.leader import run_writer
from crm_sync.reconcile import progress, start_reconcile
from crm_sync.store import StoreOptions
from crm_sync.writer_lock import WriterLock
from pulse_shared.db import create_engine
from pulse_shared.events import OWNER_EVENTS, AccountOwnerChanged
from pulse_shared.producer import EventProducer
from pulse_shared.settings import ServiceSettings
from pulse_shared.testing.fixtures import session_idempotence
from pulse_shared.testing.topic_reader import read_topic
from pulse_shared.testing.waiting import eventually
from pulse_shared.topics import Topics

TOKEN = "crm-admin-test-token"


@pytest.fixture
async def admin(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.settings = SimpleNamespace(admin_token=SecretStr(TOKEN))
    app.include_router(router(harness.engine, ["hubspot"], StoreOptions()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crm",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


async def test_the_admin_api_needs_its_token(admin: httpx.AsyncClient) -> None:
    for path in ("/v1/crm/status", "/v1/crm/unmatched", "/v1/crm/failures"):
        assert (await admin.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await admin.get(path, headers={"Authorization": ""})).status_code == 401
    assert (await admin.post("/v1/crm/reconcile", headers={"Authorization": "Bearer wrong"})).status_code == 401


async def test_unmatched_and_dead_letters_are_listed_and_a_dead_letter_is_replayed(
    harness: Harness, admin: httpx.AsyncClient
) -> None:
    harness.fake.add_company(pulse_account_id="bad")
    harness.fake.add_company(pulse_account_id="good")
    await harness.feed(score_event("bad", 1), score_event("good", 1), score_event("ghost-1", 1),
                       score_event("ghost-2", 1))
    harness.fake.item_errors("bad")
    writer = harness.writer()
    await writer.cycle()

    page = (await admin.get("/v1/crm/unmatched", params={"limit": 1})).json()
    assert [i["account_id"] for i in page["items"]] == ["ghost-1"]
    assert "no company has pulse_account_id=ghost-1" in page["items"][0]["message"]
    rest = (await admin.get("/v1/crm/unmatched", params={"cursor": page["next_cursor"]})).json()
    assert [i["account_id"] for i in rest["items"]] == ["ghost-2"]
    assert rest["next_cursor"] is None
    assert (await admin.get("/v1/crm/unmatched", params={"cursor": "", "connector": ""})).status_code == 200
    assert (await admin.get("/v1/crm/unmatched", params={"connector": "salesforce"})).status_code == 422

    [failure] = (await admin.get("/v1/crm/failures")).json()["items"]
    assert failure["account_id"] == "bad"
    assert failure["reason"] == "invalid_value"
    assert "not valid" in failure["message"]
    assert (await admin.get("/v1/crm/failures", params={"reason": "gave_up"})).json()["items"] == []
    status = (await admin.get("/v1/crm/status")).json()
    assert status[0]["accounts"] == {"pending": 0, "synced": 1, "unmatched": 2, "failed": 1}
    assert status[0]["dead_letters"] == {"invalid_value": 1}

    # The CRM was fixed: the replay writes every property of the account again.
    retried = await admin.post(f"/v1/crm/failures/{failure['id']}/retry")
    assert retried.status_code == 202
    assert (await admin.post(f"/v1/crm/failures/{failure['id']}/retry")).status_code == 404
    await writer.cycle()
    assert (await harness.statuses())["bad"] == "synced"
    assert harness.fake.company(pulse_account_id="bad")["pulse_nps_30d"] == "20"  # type: ignore[index]
    assert (await admin.get("/v1/crm/failures")).json()["items"] == []


async def test_reconcile_re_pushes_every_account_and_re_tries_the_unmatched(
    harness: Harness, admin: httpx.AsyncClient
) -> None:
    for i in range(3):
        harness.fake.add_company(pulse_account_id=f"acct-{i}")
    await harness.feed(*(score_event(f"acct-{i}", 1) for i in range(4)))
    writer = harness.writer()
    await writer.cycle()
    calls = len(harness.fake.calls_of("update"))

    dry = (await admin.post("/v1/crm/reconcile", json={"dry_run": True})).json()
    assert dry["run_id"] is None
    assert dry["before"] == {"hubspot": {"synced": 3, "unmatched": 1}}
    await writer.cycle()
    assert len(harness.fake.calls_of("update")) == calls, "a dry run changed something"

    # Someone sets the id on the fourth company in HubSpot; a reconcile finds it, and rewrites everything.
    harness.fake.add_company(pulse_account_id="acct-3")
    harness.fake.company(pulse_account_id="acct-0")["pulse_nps_30d"] = "edited by hand"  # type: ignore[index]
    run = await admin.post("/v1/crm/reconcile", json={"connector": "hubspot"})
    assert run.status_code == 202
    run_id = run.json()["run_id"]
    assert (await admin.get(f"/v1/crm/reconcile/{run_id}")).json()["pending"] == 4
    await writer.cycle()
    done = (await admin.get(f"/v1/crm/reconcile/{run_id}")).json()
    assert (done["finished"], done["synced"], done["unmatched"]) == (True, 4, 0)
    [repush] = harness.fake.calls_of("update")[calls:]
    assert len(repush.body["inputs"]) == 4
    assert harness.fake.company(pulse_account_id="acct-0")["pulse_nps_30d"] == "20"  # type: ignore[index]
    assert (await admin.get("/v1/crm/reconcile/999")).status_code == 404
    assert (await admin.post("/v1/crm/reconcile", json={"connector": "nope"})).status_code == 422


async def test_a_reconcile_gives_a_newly_connected_crm_every_account(harness: Harness) -> None:
    await harness.feed(score_event("acme", 1))
    harness.fake.add_company(pulse_account_id="acme")
    summary = await start_reconcile(harness.engine, ["hubspot", "webhook"], options=StoreOptions())
    assert summary.accounts == 1
    assert summary.run_id is not None
    state = await progress(harness.engine, summary.run_id)
    assert state is not None
    assert (state["total"], state["pending"]) == (2, 2)  # a row for the new connector too


async def read_owner_events(bootstrap: str, topic: str) -> list[AccountOwnerChanged]:
    """Every event on the owners topic, read up to its end offsets."""
    return [OWNER_EVENTS.validate_json(r.value) for r in await read_topic(bootstrap, topic)]


async def test_owner_changes_are_read_back_and_published_once(
    harness: Harness, kafka_bootstrap: str, topics: Topics
) -> None:
    fake = harness.fake
    fake.add_owner("77", "jane@example.com", "Jane", "Doe")
    fake.add_owner("78", "bob@example.com", "Bob", "Roe")
    fake.add_company(pulse_account_id="acme", hubspot_owner_id="77")
    fake.add_company(pulse_account_id="orphan")
    await harness.feed(score_event("acme", 1), score_event("orphan", 1))
    settings = ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap, kafka_enable_idempotence=session_idempotence())
    producer = EventProducer(settings, client_id="crm-test")
    await producer.start()
    try:
        writer = harness.writer(producer=producer, owners_topic=topics.account_owners)
        await writer.cycle()  # writes the scores, then reads the owners of the accounts just written
        events = await read_owner_events(kafka_bootstrap, topics.account_owners)
        assert [(e.account_id, e.owner_email, e.owner_name, e.crm) for e in events] == [
            ("acme", "jane@example.com", "Jane Doe", "hubspot")]
        # Nothing changed: no event, and the owner lookup is cached.
        await writer.cycle()
        harness.clock.advance(1000)
        await writer.cycle()
        assert len(await read_owner_events(kafka_bootstrap, topics.account_owners)) == 1
        assert len(fake.calls_of("owner")) == 1
        # The CSM changes in HubSpot: the next sweep publishes the new owner.
        fake.company(pulse_account_id="acme")["hubspot_owner_id"] = "78"  # type: ignore[index]
        harness.clock.advance(1000)
        await writer.cycle()
        events = await read_owner_events(kafka_bootstrap, topics.account_owners)
        assert [(e.account_id, e.owner_email) for e in events] == [("acme", "jane@example.com"),
                                                                   ("acme", "bob@example.com")]
        assert events[1].occurred_at > events[0].occurred_at
    finally:
        await producer.stop()


async def test_two_replicas_share_one_writer_and_one_budget_across_a_crash(
    harness: Harness, database_url: str
) -> None:
    fake = harness.fake
    for d in property_defs("pulse_account_id", write_comments=False):  # set up already: the test is the writes
        fake.properties[d.name] = {"name": d.name, "type": d.type, "hasUniqueValue": d.unique, "groupName": "pulse"}
    for i in range(1200):
        fake.add_company(pulse_account_id=f"acct-{i:04d}")
    await harness.feed(*(score_event(f"acct-{i:04d}", 1) for i in range(1200)))
    engines = [create_engine(database_url, pool_size=3) for _ in range(2)]
    writers = [harness.writer(engine=e, real_time=True, rate_limit=3, rate_window=1.0, flush_interval=0.05)
               for e in engines]
    locks = [WriterLock(e, "hubspot") for e in engines]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(run_writer(s, writer=w, lock=lk)) for s, w, lk in zip(stops, writers, locks,
                                                                                       strict=True)]
    try:
        await eventually(lambda: len(fake.calls_of("update")) >= 4, what="the first writes")
        leader = 0 if writers[0].calls else 1
        assert writers[1 - leader].calls == 0, "two writers at once"
        # The leader dies without a word: its task is gone and its lock connection is closed under it.
        tasks[leader].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[leader]
        await engines[leader].dispose()
        async def all_synced() -> bool:
            return set((await harness.statuses()).values()) == {"synced"}

        await eventually(all_synced, what="every account written after the takeover")
        assert writers[1 - leader].calls > 0, "the other replica never took over"
    finally:
        for s in stops:
            s.set()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for e in engines:
            await e.dispose()
    updates = fake.calls_of("update")
    assert sum(len(c.body["inputs"]) for c in updates) >= 1200
    times = sorted(c.at for c in fake.calls)
    worst = max(range(len(times)), key=lambda i: sum(1 for t in times if times[i] <= t < times[i] + 1.0))
    assert fake.max_calls_in_window(1.0) <= 3, [(c.operation, round(c.at - times[worst], 3)) for c in fake.calls
                                                if -1.5 < c.at - times[worst] < 2.5]
    assert fake.violations == []
