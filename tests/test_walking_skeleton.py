"""End to end, with every service as its own process: one detractor answer travels through Pulse.

ingest → responses topic (keyed by account) → scoring (PostgreSQL, exactly once) → alerts → Slack
chat.postMessage; scoring → scores topic → crm-sync → HubSpot batch update of the existing
company. Posting the same answer again
changes nothing downstream, and every service drains cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest

from pulse_shared.db import plain_database_url
from pulse_shared.testing.topic_reader import read_topic
from pulse_shared.testing.waiting import eventually as poll
from tests.conftest import KEY, SCORING_TOKEN, Platform, applied

pytestmark = pytest.mark.e2e

SCORING_AUTH = {"Authorization": f"Bearer {SCORING_TOKEN}"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
ANSWER = {
    "response_id": "resp-e2e-1",
    "survey_type": "nps",
    "score": 3,
    "comment": "Exports keep timing out <!channel>",
    "account_id": "acme-42",
    "respondent_id": "user-7",
    "properties": {"plan": "enterprise"},
}


async def eventually(check: Callable[[], Awaitable[int]], *, what: str, expect: int, timeout: float = 30.0) -> None:
    """Poll an async count until it is ``expect`` (the shared poll with a deadline)."""
    async def matches() -> bool:
        return await check() == expect
    await poll(matches, timeout=timeout, what=f"{what} (expected {expect})")


async def test_a_detractor_answer_reaches_slack_and_hubspot_exactly_once(platform: Platform) -> None:
    company = platform.hubspot.add_company(name="Acme Corp", pulse_account_id="acme-42")
    async with httpx.AsyncClient(timeout=10) as client:
        accepted = await client.post(f"{platform.ingest}/v1/responses", json=ANSWER,
                                     headers={"X-Pulse-Key": KEY, "traceparent": TRACEPARENT})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["response_id"] == "resp-e2e-1"

    # On the responses topic, keyed by the account id.
    messages = await read_topic(platform.env["KAFKA_BOOTSTRAP_SERVERS"], platform.topics.responses)
    assert [m.key for m in messages] == [b"acme-42"]
    assert dict(messages[0].headers)["event-type"] == b"response.submitted.v1"

    # Slack: one chat.postMessage to the default channel, survey text escaped.
    await poll(lambda: len(platform.slack.posts()) == 1, what="the Slack alert")
    post = platform.slack.posts()[0].body
    assert post["channel"] == "C0CSALERT1"
    assert post["metadata"] == {"event_type": "pulse_alert",
                                "event_payload": {"alert_id": "detractor:acme-42:resp-e2e-1"}}
    assert "acme-42" in post["text"]
    assert "&lt;!channel&gt;" in str(post["blocks"])
    assert "<!channel>" not in str(post["blocks"])

    # HubSpot: batch updates of the existing company (the answer and its scores, together or one after the
    # other), carrying the NPS with its sample size and interval.
    stored = platform.hubspot.companies[company]
    await poll(lambda: stored.get("pulse_nps_30d") == "-100", what="the HubSpot update")
    updates = platform.hubspot.batch_calls()
    assert 1 <= len(updates) <= 2
    assert all(c.path.endswith("/batch/update") for c in updates)
    items = [item for c in updates for item in c.body["inputs"]]
    assert {(i["id"], i["idProperty"]) for i in items} == {("acme-42", "pulse_account_id")}
    assert stored["pulse_nps_30d_n"] == "1"
    assert stored["pulse_last_score"] == "3"
    assert platform.slack.violations == []
    assert platform.hubspot.violations == []
    assert len(platform.hubspot.companies) == 1, "crm-sync created a company"
    assert platform.hubspot.companies[company]["pulse_nps_30d"] == "-100"

    async with httpx.AsyncClient(timeout=10) as client:
        scores = (await client.get(f"{platform.scoring}/v1/accounts/acme-42/scores?window=30d",
                                   headers=SCORING_AUTH)).json()
    assert scores["scores"]["nps"]["n"] == 1
    assert scores["scores"]["nps"]["value"] == -100.0
    assert scores["scores"]["nps"]["counts"]["detractors"] == 1

    # The same answer again: acknowledged, and nothing changes downstream.
    async with httpx.AsyncClient(timeout=10) as client:
        again = await client.post(f"{platform.ingest}/v1/responses", json=ANSWER, headers={"X-Pulse-Key": KEY})
    assert again.status_code == 202
    # Nothing more happens, checked all the way down instead of after a pause: every stage has taken all
    # that is upstream of it and has nothing left to do; only then are the calls downstream counted.
    bootstrap = platform.env["KAFKA_BOOTSTRAP_SERVERS"]
    answers = len(await read_topic(bootstrap, platform.topics.responses))
    assert answers == 2
    responses, scores = platform.topics.responses, platform.topics.scores
    for schema in ("scoring", "alerts", "crm_sync"):
        await eventually(lambda s=schema: applied(platform.database_url, s, responses), what=f"{schema} to consume",
                         expect=answers)
    await eventually(lambda: pending(platform, "scoring.account_state", "version > published_version"),
                     what="scoring's score-event outbox to empty", expect=0)
    score_events = len(await read_topic(bootstrap, scores))
    for schema in ("alerts", "crm_sync"):
        await eventually(lambda s=schema: applied(platform.database_url, s, scores),
                         what=f"{schema} to take the scores", expect=score_events)
    await eventually(lambda: pending(platform, "crm_sync.crm_writes", "status = 'pending'"),
                     what="crm-sync's writes to drain", expect=0)
    await eventually(lambda: pending(platform, "alerts.alerts", "status IN ('pending', 'update_pending')"),
                     what="alerts' deliveries to drain", expect=0)
    assert len(platform.slack.posts()) == 1
    calls = platform.hubspot.batch_calls()
    assert len(calls) == len(updates), [(c.body["inputs"][0]["properties"], c.at) for c in calls] + [
        platform.services["scoring"].tail(30), platform.services["crm_sync"].tail(30)]
    async with httpx.AsyncClient(timeout=10) as client:
        scores = (await client.get(f"{platform.scoring}/v1/accounts/acme-42/scores", headers=SCORING_AUTH)).json()
    assert scores["scores"]["nps"]["n"] == 1

    # One trace id follows the answer from the ingest request to the Slack post and the CRM call.
    for service, message in (("ingest", "answer accepted"), ("scoring", "responses stored and counts updated"),
                             ("scoring", "score event published"), ("alerts", "alert posted to Slack"),
                             ("crm_sync", "CRM updated")):
        lines = [json.loads(line) for line in platform.services[service].logs().splitlines() if line.startswith("{")]
        assert any(line.get("msg") == message and line.get("trace_id") == TRACE_ID for line in lines), (
            f"{service}: no {message!r} line with trace {TRACE_ID}")

    # Every service drains and exits cleanly on SIGTERM (and flushes its spans).
    for name, service in platform.services.items():
        started = time.monotonic()
        assert service.terminate(timeout=25) == 0, f"{name} exited badly:\n{service.tail()}"
        assert time.monotonic() - started < 25

    # The same trace was exported over OTLP as spans by all four services.
    spans = {(s.service, s.name) for s in platform.collector.spans if s.trace_id == TRACE_ID}
    for expected in (("pulse-ingest", "ingest.submit_response"), ("pulse-scoring", "scoring.apply_batch"),
                     ("pulse-scoring", "scoring.publish_score_event"), ("pulse-alerts", "alerts.deliver"),
                     ("pulse-crm-sync", "crm_sync.hubspot.write")):
        assert expected in spans, f"no span {expected} in trace {TRACE_ID}: {sorted(spans)}"
    ingest_span = next(s for s in platform.collector.spans if s.name == "ingest.submit_response"
                       and s.trace_id == TRACE_ID)
    assert ingest_span.parent_span_id == "00f067aa0ba902b7"  # a child of the caller's span


async def pending(platform: Platform, table: str, condition: str) -> int:
    """Rows of ``table`` meeting ``condition`` (work a service still has to do)."""
    conn = await asyncpg.connect(plain_database_url(platform.database_url))
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {condition}"))
    finally:
        await conn.close()
