"""crm-sync against the HubSpot fake: existing companies only, coalesced and unchanged-free writes, matching,
limits (row 21 of resilience.md), dead letters, erasure."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from crm_fixtures import T0, Harness, answer, score_event
from sqlalchemy import select

from crm_sync.connectors.base import Schema
from crm_sync.store import StoreOptions
from crm_sync.tables import connector_state
from pulse_shared.events import RespondentErased


async def drain(writer: object, rounds: int = 20) -> None:
    """Cycles until a cycle writes nothing (bounded)."""
    for _ in range(rounds):
        if not await writer.cycle():  # type: ignore[attr-defined]
            return
    raise AssertionError("the writer kept writing")


async def test_scores_land_on_existing_companies_only_in_pulses_property_group(harness: Harness) -> None:
    fake = harness.fake
    for i in range(200):
        fake.add_company(name=f"Customer {i}", pulse_account_id=f"acct-{i:03d}")
    companies_before = set(fake.companies)
    await harness.feed(*(score_event(f"acct-{i:03d}", 1, nps=float(i % 100)) for i in range(250)))
    writer = harness.writer()
    await writer.cycle()

    updates = fake.calls_of("update")
    assert [len(c.body["inputs"]) for c in updates] == [100, 100, 50]
    assert all(item["idProperty"] == "pulse_account_id" for c in updates for item in c.body["inputs"])
    assert fake.calls_of("upsert", "create") == []
    assert set(fake.companies) == companies_before, "a company was created"
    assert fake.company(pulse_account_id="acct-007")["pulse_nps_30d"] == "7"  # type: ignore[index]
    statuses = await harness.statuses()
    assert sum(s == "synced" for s in statuses.values()) == 200
    assert {a for a, s in statuses.items() if s == "unmatched"} == {f"acct-{i:03d}" for i in range(200, 250)}
    # Pulse's own group, created first, holds every property Pulse created.
    assert list(fake.groups) == ["pulse"]
    first_property = next(i for i, c in enumerate(fake.calls) if c.operation == "create_property")
    assert fake.calls[first_property - 1].operation == "create_group"
    assert {p["groupName"] for p in fake.properties.values()} == {"pulse"}
    assert fake.properties["pulse_account_id"]["hasUniqueValue"] is True
    assert fake.properties["pulse_nps_30d_change_significant"]["type"] == "bool"
    assert fake.violations == []

    # Properties are checked once per leadership, not before every flush.
    created = len(fake.calls_of("create_property"))
    await harness.feed(score_event("acct-000", 2, nps=55.0))
    await writer.cycle()
    assert len(fake.calls_of("create_property")) == created
    assert len(fake.calls_of("properties")) == 1


async def test_a_burst_coalesces_and_unchanged_values_are_not_sent(harness: Harness) -> None:
    harness.fake.add_company(pulse_account_id="acme")
    await harness.feed(*(score_event("acme", v, nps=float(v)) for v in range(1, 11)))
    await harness.feed(score_event("acme", 4, nps=-50))  # an older version, redelivered: changes nothing
    writer = harness.writer()
    await writer.cycle()
    [call] = harness.fake.calls_of("update")
    assert call.body["inputs"][0]["properties"]["pulse_nps_30d"] == "10"

    # Only the sample size changes: only it (and the computed time) is sent.
    await harness.feed(score_event("acme", 11, nps=10.0, n=11))
    await writer.cycle()
    sent = harness.fake.calls_of("update")[-1].body["inputs"][0]["properties"]
    assert set(sent) == {"pulse_nps_30d_n", "pulse_scores_updated_at"}

    # Nothing changed at all: no call.
    calls = len(harness.fake.calls)
    await harness.feed(score_event("acme", 11, nps=10.0, n=11))
    await writer.cycle()
    assert len(harness.fake.calls) == calls
    assert harness.fake.company(pulse_account_id="acme")["pulse_nps_30d_n"] == "11"  # type: ignore[index]


async def test_an_unmatched_account_is_linked_by_its_domain_once(harness: Harness) -> None:
    harness.handler_for(StoreOptions(match_from="properties.company_domain"))
    record_id = harness.fake.add_company(name="Acme Inc", domain="acme.com")
    await harness.feed(answer("acme", "r1", 9, company_domain="ACME.com "), score_event("acme", 1))
    writer = harness.writer(harness.connector(match_property="domain"))
    await writer.cycle()
    company = harness.fake.companies[record_id]
    assert company["pulse_account_id"] == "acme"
    assert company["pulse_nps_30d"] == "20"
    assert company["pulse_last_score"] == "9"
    [search] = harness.fake.calls_of("search")
    assert search.body["filterGroups"][0]["filters"][0] == {"propertyName": "domain", "operator": "EQ",
                                                           "value": "acme.com"}
    assert (await harness.statuses()) == {"acme": "synced"}
    # Linked: the next write finds the company by the id property, without a search.
    await harness.feed(score_event("acme", 2, nps=30.0))
    await writer.cycle()
    assert len(harness.fake.calls_of("search")) == 1
    assert company["pulse_nps_30d"] == "30"
    assert len(harness.fake.companies) == 1


async def test_an_ambiguous_or_taken_match_is_a_dead_letter_and_no_domain_stays_unmatched(harness: Harness) -> None:
    harness.handler_for(StoreOptions(match_from="properties.company_domain"))
    harness.fake.add_company(domain="twin.com")
    harness.fake.add_company(domain="twin.com")
    harness.fake.add_company(domain="taken.com", pulse_account_id="someone-else")
    await harness.feed(answer("twin", "r1", company_domain="twin.com"),
                       answer("taken", "r2", company_domain="taken.com"),
                       answer("nowhere", "r3", company_domain="nowhere.com"), answer("nodomain", "r4"))
    writer = harness.writer(harness.connector(match_property="domain"))
    await writer.cycle()
    rows = await harness.rows()
    assert (rows["twin"].status, rows["twin"].reason) == ("failed", "ambiguous_match")
    assert (rows["taken"].status, rows["taken"].reason) == ("failed", "already_linked")
    assert "someone-else" in rows["taken"].last_error
    assert rows["nowhere"].status == "unmatched"
    assert rows["nodomain"].status == "unmatched"
    assert len(harness.fake.calls_of("search")) == 3  # no search without a value to search by
    assert len(harness.fake.companies) == 3
    # New scores for the unmatched: written if a company holds them now, but the same domain is not searched
    # again (a domain found nowhere would cost a search per flush); a new domain is.
    await harness.feed(score_event("nowhere", 1),
                       answer("nodomain", "r5", company_domain="late.com", at=T0 + timedelta(minutes=1)))
    await writer.cycle()
    assert [c.body["filterGroups"][0]["filters"][0]["value"] for c in harness.fake.calls_of("search")[3:]] == [
        "late.com"]
    assert (await harness.statuses())["nowhere"] == "unmatched"


async def test_companies_are_created_only_when_creating_is_switched_on(harness: Harness) -> None:
    await harness.feed(score_event("new-co", 1))
    writer = harness.writer(harness.connector(create_companies=True))
    await writer.cycle()
    created = harness.fake.company(pulse_account_id="new-co")
    assert created is not None
    assert created["name"] == "new-co"
    assert created["pulse_nps_30d"] == "20"
    assert (await harness.statuses()) == {"new-co": "synced"}


async def test_row_21_limits_pause_and_only_failed_items_are_sent_again(harness: Harness) -> None:
    """resilience.md row 21: 250 updates; 429 TEN_SECONDLY_ROLLING, then 429 DAILY, then 207 with 3 item
    errors: at most 100 inputs per call, the budget respected, no call after DAILY until the reset, and only
    the 3 failed items sent again."""
    fake = harness.fake
    for i in range(250):
        fake.add_company(pulse_account_id=f"acct-{i:03d}")
    await harness.feed(*(score_event(f"acct-{i:03d}", 1) for i in range(250)))
    failing = ["acct-005", "acct-150", "acct-249"]
    fake.fail_next("rate_limit", operation="update")
    fake.fail_next("daily_limit", operation="update")
    fake.item_errors(*failing, category="INTERNAL_ERROR")
    writer = harness.writer(rate_limit=100, rate_window=10.0, retry_base=0.05)
    clock = harness.clock

    await writer.cycle()  # 429 TEN_SECONDLY_ROLLING: the window is spent
    assert len(fake.calls_of("update")) == 1
    await writer.cycle()  # waits the window at the budget (no call before), then 429 DAILY
    assert clock.slept
    assert clock.slept[-1] >= 10.0
    assert len(fake.calls_of("update")) == 2
    async with harness.engine.connect() as conn:
        paused_until = (await conn.execute(select(connector_state.c.paused_until))).scalar_one()
    assert paused_until == clock.wall().replace(hour=0, minute=1, second=0, microsecond=0) + timedelta(days=1)

    # Paused until the portal's next day: no call, by this writer or by a restarted one.
    clock.advance(3600)
    await writer.cycle()
    restarted = harness.writer()
    await restarted.cycle()
    assert len(fake.calls_of("update")) == 2
    assert "daily_limit" in (await restarted.paused() or "")

    clock.wall_at = paused_until + timedelta(seconds=1)
    await writer.cycle()  # the 250, in 3 calls; 3 items fail with a retryable error
    assert [len(c.body["inputs"]) for c in fake.calls_of("update")[2:4]] == [100, 100]
    # The retry backoff is measured by PostgreSQL's clock: cycle until it has passed.
    deadline = time.monotonic() + 10
    while set((await harness.statuses()).values()) != {"synced"} and time.monotonic() < deadline:
        await writer.cycle()
    assert set((await harness.statuses()).values()) == {"synced"}
    sent = Counter(item["id"] for c in fake.calls_of("update")[2:] for item in c.body["inputs"])
    assert {a for a, n in sent.items() if n == 2} == set(failing)
    assert set(sent.values()) == {1, 2}
    assert len(sent) == 250
    assert all(len(c.body["inputs"]) <= 100 for c in fake.calls_of("update"))
    assert fake.violations == []


async def test_an_outage_opens_the_circuit_and_keeps_every_write(harness: Harness) -> None:
    harness.fake.add_company(pulse_account_id="acme")
    harness.fake.hang_seconds = 3.0  # longer than the connector's 2 s timeout
    await harness.feed(score_event("acme", 1))
    harness.fake.fail_next("server_error", operation="update")
    harness.fake.fail_next("timeout", operation="update")
    writer = harness.writer()
    await writer.cycle()
    assert await writer.paused() == "circuit open"
    await writer.cycle()
    assert len(harness.fake.calls_of("update")) == 1  # the open circuit makes no call
    harness.clock.advance(2.0)
    await writer.cycle()  # half-open: the call times out, the circuit opens for longer
    assert len(harness.fake.calls_of("update")) == 2
    assert writer.circuit.failures == 2
    harness.clock.advance(4.0)
    await writer.cycle()
    assert (await harness.statuses()) == {"acme": "synced"}
    assert writer.circuit.failures == 0
    assert (await harness.rows())["acme"].attempts == 0


async def test_a_refused_token_pauses_and_keeps_the_writes(harness: Harness) -> None:
    harness.fake.add_company(pulse_account_id="acme")
    await harness.feed(score_event("acme", 1))
    harness.fake.fail_next("unauthorized", operation="update")
    writer = harness.writer()
    await writer.cycle()
    assert await writer.paused() == "paused"
    assert (await harness.statuses()) == {"acme": "pending"}
    harness.clock.advance(61)
    await writer.cycle()
    assert (await harness.statuses()) == {"acme": "synced"}


async def test_an_invalid_value_is_a_dead_letter_and_the_others_are_written(harness: Harness) -> None:
    for name in ("good", "bad"):
        harness.fake.add_company(pulse_account_id=name)
    await harness.feed(score_event("good", 1), score_event("bad", 1))
    harness.fake.item_errors("bad")
    writer = harness.writer()
    await writer.cycle()
    rows = await harness.rows()
    assert rows["good"].status == "synced"
    assert (rows["bad"].status, rows["bad"].reason) == ("failed", "invalid_value")
    assert "not valid" in rows["bad"].last_error
    # A new change of the account is tried again (the new values may be fine).
    await harness.feed(score_event("bad", 2, nps=5.0))
    await writer.cycle()
    assert (await harness.statuses())["bad"] == "synced"


async def test_a_property_of_another_type_is_reported_and_left_out(harness: Harness) -> None:
    harness.fake.properties["pulse_nps_30d"] = {"name": "pulse_nps_30d", "type": "string", "groupName": "x"}
    harness.fake.properties["pulse_account_id"] = {"name": "pulse_account_id", "type": "string",
                                                   "hasUniqueValue": True, "groupName": "x"}
    harness.fake.add_company(pulse_account_id="acme")
    await harness.feed(score_event("acme", 1))
    writer = harness.writer()
    await writer.cycle()
    schema = await writer.prepare()
    assert isinstance(schema, Schema)
    assert schema.excluded == frozenset({"pulse_nps_30d"})
    assert harness.fake.properties["pulse_nps_30d"]["type"] == "string", "an existing property was changed"
    [call] = harness.fake.calls_of("update")
    assert "pulse_nps_30d" not in call.body["inputs"][0]["properties"]
    assert "pulse_nps_30d_n" in call.body["inputs"][0]["properties"]
    async with harness.engine.connect() as conn:
        problems = (await conn.execute(select(connector_state.c.problems))).scalar_one()
    assert problems == ["pulse_nps_30d exists with type string, Pulse writes number: left out"]


async def test_an_erased_respondents_comment_is_cleared_in_the_crm(harness: Harness) -> None:
    harness.handler_for(StoreOptions(write_comments=True))
    harness.fake.add_company(pulse_account_id="acme")
    await harness.feed(answer("acme", "r1", 2, comment="Support never answers", respondent="u-9"))
    writer = harness.writer()
    await writer.cycle()
    company = harness.fake.company(pulse_account_id="acme")
    assert company is not None
    assert company["pulse_last_comment"] == "Support never answers"
    await harness.feed(RespondentErased(account_id="acme", respondent_id="u-9"))
    await writer.cycle()
    assert company["pulse_last_comment"] == ""
    assert company["pulse_last_score"] == "2"  # the anonymous facts stay
    # The erased respondent's answer redelivered later brings no comment back.
    await harness.feed(answer("acme", "r1", 2, comment="Support never answers", respondent="u-9"))
    await writer.cycle()
    assert company["pulse_last_comment"] == ""
    rows = await harness.rows()
    assert "Support" not in str(rows["acme"].properties) + str(rows["acme"].sent)


async def test_comments_stay_out_of_the_crm_by_default(harness: Harness) -> None:
    harness.fake.add_company(pulse_account_id="acme")
    await harness.feed(answer("acme", "r1", 2, comment="Support never answers"))
    await harness.writer().cycle()
    assert "pulse_last_comment" not in harness.fake.properties
    [call] = harness.fake.calls_of("update")
    assert "pulse_last_comment" not in call.body["inputs"][0]["properties"]
    assert call.body["inputs"][0]["properties"]["pulse_last_survey"] == "nps"


async def test_the_same_answer_posted_again_later_writes_nothing(harness: Harness) -> None:
    harness.fake.add_company(pulse_account_id="acme")
    await harness.feed(answer("acme", "r1", 3))
    writer = harness.writer()
    await writer.cycle()
    # Re-posted a minute later (ingest stamps it again): the same answer, given once, at its first time.
    await harness.feed(answer("acme", "r1", 3, at=T0 + timedelta(minutes=1)))
    await writer.cycle()
    assert len(harness.fake.calls_of("update")) == 1
    # A real revision of it (a new score) is written, still at the answer's first time.
    await harness.feed(answer("acme", "r1", 8, at=T0 + timedelta(minutes=2)))
    await writer.cycle()
    company = harness.fake.company(pulse_account_id="acme")
    assert company is not None
    assert company["pulse_last_score"] == "8"
    assert company["pulse_last_response_at"] == str(int(T0.timestamp() * 1000))
