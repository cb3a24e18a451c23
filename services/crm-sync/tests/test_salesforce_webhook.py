"""crm-sync's Salesforce connector against the Salesforce fake (row 22 of resilience.md), the signed webhook
connector against a receiver that verifies with the `standardwebhooks` package, and several connectors at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from crm_fixtures import Harness, score_event
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from standardwebhooks import Webhook

from crm_sync.connectors.salesforce import SalesforceConnector, SalesforceOptions, default_field, field_map
from crm_sync.connectors.salesforce_answers import call_outcome, record_outcomes
from crm_sync.connectors.webhook import WebhookConnector, message_id, signing_key
from crm_sync.dispatcher import ConnectorWriter, WriterOptions
from crm_sync.leader import run_writer
from crm_sync.owners import OwnerSync
from crm_sync.store import StoreOptions, WriteStore
from crm_sync.tables import account_owners, connector_state, consumer_offsets
from crm_sync.writer_lock import WriterLock
from pulse_shared.testing.fake_salesforce import FakeSalesforce
from pulse_shared.testing.server import ThreadedServer
from pulse_shared.testing.waiting import eventually
from pulse_shared.transactional import TransactionalHandler

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "crm-webhook.schema.json").read_text())
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SF_TYPES = {"number": "double", "bool": "boolean", "datetime": "datetime", "enumeration": "picklist",
            "string": "textarea"}


@pytest.fixture
def salesforce() -> Iterator[FakeSalesforce]:
    from crm_sync.domain.properties import property_defs

    fake = FakeSalesforce()
    types = {d.name: d.type for d in property_defs("x", write_comments=False)}
    for prop, name in field_map({}, write_comments=False).items():
        fake.fields[name] = SF_TYPES[types[prop]]
    fake.start()
    yield fake
    fake.stop()


def connectors_of(harness: Harness, names: list[str]) -> None:
    harness._handler = TransactionalHandler(
        harness.engine, consumer_offsets, "crm", WriteStore(names, StoreOptions()).apply, name="t", message="queued")


def sf_writer(harness: Harness, fake: FakeSalesforce, **options: Any) -> ConnectorWriter:
    connector = SalesforceConnector(SalesforceOptions(fake.url, fake.client_id, fake.client_secret, **options),
                                    timeout=2)
    harness.connectors.append(connector)  # type: ignore[arg-type]
    owners = OwnerSync(harness.engine, None, "owners", recheck_after=900, wall=harness.clock.wall)
    return ConnectorWriter(harness.engine, connector, WriterOptions(retry_base=0.05), owners=owners,
                           wall=harness.clock.wall, monotonic=harness.clock.mono, sleep=harness.clock.sleep)


async def test_row_22_salesforce_limits_and_errors(harness: Harness, salesforce: FakeSalesforce) -> None:
    """resilience.md row 22: 450 updates with 2 item errors and a duplicate external id; a 300 (several
    Accounts hold one id); 401 INVALID_SESSION_ID; 403 REQUEST_LIMIT_EXCEEDED: at most 200 records per call, no
    duplicate ids in a call, the ambiguous one not retried, one token refresh per 401, the connector paused."""
    connectors_of(harness, ["salesforce"])
    ext = salesforce.external_id_field
    for i in range(450):
        salesforce.add_account(**{ext: f"acct-{i:03d}", "Name": f"Customer {i}"})
    salesforce.add_account(**{ext: "acct-007", "Name": "A second Customer 7"})  # two Accounts hold acct-007
    await harness.feed(*(score_event(f"acct-{i:03d}", 1, nps=float(i % 100)) for i in range(450)))
    await harness.feed(score_event("acct-010", 2, nps=-10.0))  # the same account again: sent once, newest
    salesforce.record_errors("acct-020")  # a validation rule refuses it
    salesforce.record_errors("acct-030", code="UNABLE_TO_LOCK_ROW")  # a lock: worth another try
    ids = {a[ext]: a["Id"] for a in salesforce.accounts.values()}
    writer = sf_writer(harness, salesforce)
    await writer.prepare()  # first token
    salesforce.expire_tokens()  # the session expires: the next call answers 401 once
    await writer.cycle()

    updates = salesforce.calls_of("update")
    # acct-007 (ambiguous) is never sent; the last call may already carry acct-030's retry.
    assert [len(c.body["records"]) for c in updates][:2] == [199, 200]
    assert all(len(c.body["records"]) <= 200 for c in updates)
    for call in updates:
        record_ids = [r["id"] for r in call.body["records"]]
        assert len(record_ids) == len(set(record_ids))
    assert salesforce.tokens_issued == 2, "one refresh for the 401"
    rows = await harness.rows()
    assert (rows["acct-007"].status, rows["acct-007"].reason) == ("failed", "ambiguous_match")
    assert (rows["acct-020"].status, rows["acct-020"].reason) == ("failed", "invalid_value")
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in rows["acct-020"].last_error
    account = salesforce.account("acct-010")
    assert account is not None
    assert account[default_field("pulse_nps_30d")] == -10  # a JSON number, the newest version
    assert account[default_field("pulse_nps_30d_change_significant")] is False
    assert account[default_field("pulse_scores_updated_at")].endswith("Z")

    # The retry, then the org's API allowance is spent: paused (stored), no more calls.
    async def retried() -> bool:
        await writer.cycle()  # the retry's backoff is measured by PostgreSQL's clock
        return (await harness.statuses())["acct-030"] == "synced"

    await eventually(retried, timeout=10, what="the lock retry")
    sent = Counter(r["id"] for c in salesforce.calls_of("update") for r in c.body["records"])
    assert (sent[ids["acct-030"]], sent[ids["acct-020"]], sent[ids["acct-100"]]) == (2, 1, 1)
    assert sum(s == "synced" for s in (await harness.statuses()).values()) == 448
    await harness.feed(score_event("acct-100", 2, nps=50.0))
    salesforce.fail_next("request_limit")
    await writer.cycle()
    calls = len(salesforce.calls)
    await writer.cycle()
    assert len(salesforce.calls) == calls
    async with harness.engine.connect() as conn:
        state = (await conn.execute(select(connector_state))).one()
    assert (state.pause_reason or "").startswith("request_limit")
    assert state.paused_until == harness.clock.wall() + timedelta(seconds=3600)
    assert [c.body["records"][0]["id"] for c in salesforce.calls_of("update")].count(ids["acct-007"]) == 0
    assert salesforce.violations == []


async def test_accounts_none_holds_are_unmatched_or_created_when_allowed(
    harness: Harness, salesforce: FakeSalesforce
) -> None:
    connectors_of(harness, ["salesforce"])
    await harness.feed(score_event("new-co", 1))
    await sf_writer(harness, salesforce).cycle()
    assert (await harness.statuses()) == {"new-co": "unmatched"}
    assert salesforce.accounts == {}
    await harness.feed(score_event("new-co", 2, nps=33.0))
    await sf_writer(harness, salesforce, create_accounts=True).cycle()
    created = salesforce.account("new-co")
    assert created is not None
    assert created["Name"] == "new-co"
    assert created[default_field("pulse_nps_30d")] == 33
    [upsert] = salesforce.calls_of("upsert")
    assert upsert.path.endswith(f"/composite/sobjects/Account/{salesforce.external_id_field}")


async def test_a_300_answer_is_a_dead_letter_and_not_retried(harness: Harness, salesforce: FakeSalesforce) -> None:
    connectors_of(harness, ["salesforce"])
    await harness.feed(score_event("twice", 1))
    writer = sf_writer(harness, salesforce, create_accounts=True)
    await writer.prepare()
    salesforce.fail_next("multiple_choices", operation="upsert")
    await writer.cycle()
    row = (await harness.rows())["twice"]
    assert (row.status, row.reason) == ("failed", "ambiguous_match")
    upserts = len(salesforce.calls_of("upsert"))
    harness.clock.advance(3600)
    await writer.cycle()
    assert len(salesforce.calls_of("upsert")) == upserts, "a 300 was retried"


async def test_salesforce_owners_are_read_with_soql(harness: Harness, salesforce: FakeSalesforce) -> None:
    connectors_of(harness, ["salesforce"])
    salesforce.users["005A"] = {"Email": "jane@example.com", "Name": "Jane Doe"}
    salesforce.add_account(**{salesforce.external_id_field: "acme", "OwnerId": "005A"})
    await harness.feed(score_event("acme", 1))
    await sf_writer(harness, salesforce).cycle()
    async with harness.engine.connect() as conn:
        owner = (await conn.execute(select(account_owners))).one()
    assert (owner.connector, owner.account_id, owner.email, owner.name) == ("salesforce", "acme",
                                                                          "jane@example.com", "Jane Doe")
    [soql] = [c for c in salesforce.calls_of("query") if "Owner.Email" in c.path]
    assert "Pulse_Account_Id__c+IN+%28%27acme%27%29" in soql.path or "IN ('acme')" in soql.path


async def test_missing_or_mistyped_fields_are_reported_and_left_out(harness: Harness,
                                                                   salesforce: FakeSalesforce) -> None:
    connectors_of(harness, ["salesforce"])
    del salesforce.fields[default_field("pulse_ces_90d")]
    salesforce.fields[default_field("pulse_nps_30d")] = "string"
    salesforce.add_account(**{salesforce.external_id_field: "acme"})
    await harness.feed(score_event("acme", 1))
    writer = sf_writer(harness, salesforce)
    await writer.cycle()
    schema = await writer.prepare()
    assert schema is not None
    assert schema.excluded == {"pulse_ces_90d", "pulse_nps_30d"}
    assert (await harness.statuses()) == {"acme": "synced"}
    [update] = salesforce.calls_of("update")
    assert default_field("pulse_nps_30d") not in update.body["records"][0]


async def test_no_external_id_field_stops_the_connector_with_a_clear_reason(
    harness: Harness, salesforce: FakeSalesforce
) -> None:
    salesforce.external_id_field = "Other__c"
    writer = sf_writer(harness, salesforce)
    assert await writer.prepare() is None
    assert writer.circuit.failures == 1


def test_salesforce_answers_read_the_documented_bodies() -> None:
    ids = ["a", "b", "c", "d"]
    results = [{"id": "001A", "success": True, "errors": []},
               {"success": False, "errors": [{"statusCode": "STRING_TOO_LONG", "message": "too long",
                                              "fields": ["Pulse_Last_Comment__c"]}]},
               {"success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "gone", "fields": []}]},
               {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "lock", "fields": []}]}]
    outcome = record_outcomes(results, ids)
    assert outcome.written == {"a"}
    assert outcome.failed["b"].reason == "invalid_value"
    assert "Pulse_Last_Comment__c" in outcome.failed["b"].message
    assert set(outcome.unmatched) == {"c"}
    assert set(outcome.retry) == {"d"}
    many = call_outcome(300, [{"errorCode": "MULTIPLE_CHOICES", "message": "several"}], ["a"])
    assert many is not None
    assert many.failed["a"].reason == "ambiguous_match"
    limit = call_outcome(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests"}], ["a"])
    assert limit is not None
    assert limit.pause is not None
    assert limit.pause.kind == "request_limit"
    assert call_outcome(200, [], ["a"]) is None
    assert record_outcomes([{"success": True}], ["a", "b"]).retry.keys() == {"a", "b"}


class Receiver:
    """A webhook receiver verifying each request with the `standardwebhooks` package; scripted answers."""

    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.accepted: list[tuple[str, dict[str, Any]]] = []
        self.seen_ids: list[str] = []
        self.refused: list[str] = []
        self.script: list[int] = []
        self.lock = threading.Lock()
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            try:
                message = self.verifier.verify(body, dict(request.headers))
            except Exception as exc:
                self.refused.append(repr(exc))
                return JSONResponse({"error": "bad signature"}, status_code=401)
            with self.lock:
                self.seen_ids.append(request.headers["webhook-id"])
                status = self.script.pop(0) if self.script else 204
            if status >= 300:
                return JSONResponse({"error": "scripted"}, status_code=status)
            self.accepted.append((request.headers["webhook-id"], message))
            return JSONResponse({}, status_code=204 if status == 204 else status)

        self.server = ThreadedServer(app).start()

    @property
    def url(self) -> str:
        return f"{self.server.url}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET)
    yield r
    r.server.stop()


def webhook_writer(harness: Harness, url: str) -> ConnectorWriter:
    connector = WebhookConnector(url, SECRET, timeout=2, concurrency=4)
    harness.connectors.append(connector)  # type: ignore[arg-type]
    return ConnectorWriter(harness.engine, connector, WriterOptions(), wall=harness.clock.wall,
                           monotonic=harness.clock.mono, sleep=harness.clock.sleep)


async def test_the_webhook_sends_signed_full_state_messages_with_stable_ids(harness: Harness,
                                                                            receiver: Receiver) -> None:
    connectors_of(harness, ["webhook"])
    await harness.feed(score_event("acme", 1, nps=-12.5, detractors=1), score_event("globex", 1))
    receiver.script = [503]  # the first message fails: the circuit opens and the message is sent again
    writer = webhook_writer(harness, receiver.url)
    await writer.cycle()
    harness.clock.advance(2.0)
    await writer.cycle()
    assert receiver.refused == []
    assert sorted(m["account_id"] for _, m in receiver.accepted) == ["acme", "globex"]
    retried = Counter(receiver.seen_ids)
    assert sorted(retried.values()) == [1, 2], "the failed message is sent again with the same webhook-id"
    for webhook_id, message in receiver.accepted:
        jsonschema.validate(message, SCHEMA)
        assert webhook_id == message_id(message["account_id"], message["version"])
    acme = next(m for _, m in receiver.accepted if m["account_id"] == "acme")
    assert acme["scores"]["nps"]["30d"] == {"value": -12.5, "n": 10, "ci_low": -42.5, "ci_high": 17.5, "change": None,
                                           "change_significant": False}
    assert acme["open_detractor"] is True
    # A change sends the full state again (receivers keep state), under a new id.
    await harness.feed(score_event("acme", 2, nps=0.0))
    await writer.cycle()
    _, latest = receiver.accepted[-1]
    assert latest["scores"]["nps"]["30d"]["value"] == 0
    assert latest["scores"]["nps"]["30d"]["n"] == 10
    assert len(set(receiver.seen_ids)) == 3


async def test_a_webhook_refusal_is_a_dead_letter(harness: Harness, receiver: Receiver) -> None:
    connectors_of(harness, ["webhook"])
    await harness.feed(score_event("acme", 1))
    receiver.script = [422]
    await webhook_writer(harness, receiver.url).cycle()
    row = (await harness.rows())["acme"]
    assert (row.status, row.reason) == ("failed", "rejected")
    assert "422" in row.last_error


def test_webhook_secrets_must_be_standard_webhooks_secrets() -> None:
    assert len(signing_key(SECRET)) == 24
    assert signing_key(SECRET.rstrip("=")) == signing_key(SECRET)
    for bad in ("not base64 at all!", "whsec_c2hvcnQ="):
        with pytest.raises(ValueError, match="CRM_WEBHOOK_SECRET"):
            signing_key(bad)


@pytest.fixture
async def hanging_hubspot(harness: Harness) -> AsyncIterator[str]:
    harness.fake.hang_seconds = 3.0
    harness.fake.fail_next("timeout", times=100, operation="any")
    yield harness.fake.url
    harness.fake.hang_seconds = 0.0


async def test_a_failing_crm_never_delays_another(harness: Harness, receiver: Receiver, hanging_hubspot: str) -> None:
    connectors_of(harness, ["hubspot", "webhook"])
    await harness.feed(*(score_event(f"acct-{i}", 1) for i in range(20)))
    writers = [harness.writer(real_time=True, flush_interval=0.1),
               ConnectorWriter(harness.engine, WebhookConnector(receiver.url, SECRET, timeout=2),
                               WriterOptions(flush_interval=0.1))]
    stops = [asyncio.Event() for _ in writers]
    tasks = [asyncio.create_task(run_writer(s, w, WriterLock(harness.engine, w.connector.name)))
             for s, w in zip(stops, writers, strict=True)]
    try:
        await eventually(lambda: len(receiver.accepted) == 20, timeout=10, what="every webhook message")
        assert harness.fake.batch_calls() == []  # HubSpot has not even answered its first call
    finally:
        for s in stops:
            s.set()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await writers[1].connector.close()
