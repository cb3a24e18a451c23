"""End to end, with real processes: the CSM set in HubSpot receives the account's next alert in Slack; crm-sync
killed -9 in the middle of a flush loses nothing and re-sends only what was in flight; the reconcile command
re-pushes every account when no crm-sync is running.

ingest → scoring → scores topic → crm-sync → the HubSpot fake (companies kept by record id); crm-sync reads
``hubspot_owner_id`` back → ``account.owner_changed.v1`` → alerts → the owner's Slack DM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from pulse_shared.events import ScoreSummary, ScoreUpdated
from pulse_shared.producer import EventProducer
from pulse_shared.settings import ServiceSettings
from pulse_shared.testing.fake_hubspot import HubSpotCall
from pulse_shared.testing.fixtures import session_idempotence
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.testing.waiting import eventually
from tests.conftest import Platform, PlatformFactory
from tests.test_alerts_exactly_once import ADMIN, submit

pytestmark = pytest.mark.e2e

ENV = {"ALERTS_ADMIN_TOKEN": ADMIN, "ALERTS_COMMENT_HOLD_SECONDS": "0", "HUBSPOT_RATE_WINDOW_SECONDS": "1"}


async def alerts_owner(alerts: ServiceProcess, account: str) -> str | None:
    async with httpx.AsyncClient(timeout=10) as client:
        found = await client.get(f"{alerts.url}/v1/accounts/{account}/owner",
                                 headers={"Authorization": f"Bearer {ADMIN}"})
    return found.json().get("email") if found.status_code == 200 else None


async def test_the_owner_set_in_hubspot_receives_the_next_alert(platform_factory: PlatformFactory) -> None:
    platform = platform_factory.start(("ingest", "scoring", "alerts", "crm_sync"), **ENV)
    hubspot, slack = platform.hubspot, platform.slack
    hubspot.add_owner("77", "jane@example.com", "Jane", "Doe")
    hubspot.add_owner("78", "bob@example.com", "Bob", "Roe")
    company = hubspot.add_company(name="Acme Corp", pulse_account_id="acme-42", hubspot_owner_id="77")
    slack.users_by_email |= {"jane@example.com": "U0JANE001", "bob@example.com": "U0BOB0001"}
    alerts = platform.services["alerts"]

    # A promoter answer: scores reach the company, and crm-sync reads its owner back.
    await submit(platform.ingest, [{"response_id": "r-happy", "survey_type": "nps", "score": 10,
                                    "account_id": "acme-42"}])
    await eventually(lambda: alerts_owner(alerts, "acme-42"), timeout=60, what="alerts to learn the owner")
    assert await alerts_owner(alerts, "acme-42") == "jane@example.com"

    # The account changes hands in HubSpot; the next detractor goes to the new CSM's DM.
    hubspot.companies[company]["hubspot_owner_id"] = "78"

    async def bob_owns() -> bool:
        return await alerts_owner(alerts, "acme-42") == "bob@example.com"

    await eventually(bob_owns, timeout=60, what="alerts to learn the new owner")
    await submit(platform.ingest, [{"response_id": "r-angry", "survey_type": "nps", "score": 1,
                                    "account_id": "acme-42", "comment": "Nobody called back"}])
    await eventually(lambda: slack.messages_for_alert("detractor:acme-42:r-angry"), timeout=60,
                     what="the alert")
    [(conversation, _message)] = slack.messages_for_alert("detractor:acme-42:r-angry")
    assert conversation == "D0BOB0001"
    await eventually(lambda: hubspot.companies[company]["pulse_nps_30d"] == "0", timeout=30,
                     what="the new NPS (one promoter, one detractor) on the company")
    assert len(hubspot.companies) == 1
    assert hubspot.violations == []
    assert slack.violations == []


def score_events(count: int, version: int = 1) -> list[tuple[str, ScoreUpdated]]:
    return [(f"acct-{i:03d}", ScoreUpdated(
        account_id=f"acct-{i:03d}", version=version, computed_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        scores=(ScoreSummary(metric="nps", window="30d", n=5, value=float(i % 100), ci_low=-50.0, ci_high=80.0,
                             counts={"promoters": 2, "passives": 2, "detractors": 1}),)))
        for i in range(count)]


async def publish_scores(platform: Platform, events: list[tuple[str, ScoreUpdated]]) -> None:
    """Score events on the scores topic, as scoring publishes them."""
    producer = EventProducer(ServiceSettings(kafka_bootstrap_servers=platform.env["KAFKA_BOOTSTRAP_SERVERS"],
                                             kafka_enable_idempotence=session_idempotence()), client_id="test-scoring")
    await producer.start()
    try:
        results = await producer.publish_many(platform.topics.scores, events)
        assert results == [None] * len(events)
    finally:
        await producer.stop()


def all_written(platform: Platform, count: int) -> bool:
    companies = platform.hubspot.companies.values()
    return sum(1 for c in companies if c.get("pulse_nps_30d")) == count


async def test_crm_sync_killed_in_the_middle_of_a_flush_loses_nothing(platform_factory: PlatformFactory) -> None:
    platform = platform_factory.start(("crm_sync",), **ENV)
    crm = platform.services["crm_sync"]
    hubspot = platform.hubspot
    for i in range(300):
        hubspot.add_company(pulse_account_id=f"acct-{i:03d}")
    in_flight: list[str] = []

    def kill_on_second_write(call: HubSpotCall) -> None:
        # HubSpot applied the batch; crm-sync dies before it hears the answer.
        if len(hubspot.batch_calls()) == 2 and crm.process is not None and crm.process.poll() is None:
            in_flight.extend(item["id"] for item in call.body["inputs"])
            os.kill(crm.process.pid, signal.SIGKILL)
            crm.process.wait()

    hubspot.on_write = kill_on_second_write
    await publish_scores(platform, score_events(300))
    await eventually(lambda: crm.process is not None and crm.process.poll() is not None, timeout=60,
                     what="crm-sync to be killed mid-flush")
    assert in_flight
    hubspot.on_write = None
    crm.start()
    await eventually(lambda: all_written(platform, 300), timeout=60, what="every account written after restart")
    sent = Counter(item["id"] for c in hubspot.batch_calls() for item in c.body["inputs"])
    assert len(sent) == 300
    assert {a for a, n in sent.items() if n > 1} <= set(in_flight), "re-sent more than was in flight"
    assert max(sent.values()) <= 2
    assert len(hubspot.companies) == 300
    assert hubspot.violations == []


def reconcile(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crm_sync", "reconcile", *args],
                          env={**os.environ, **platform.env}, capture_output=True, text=True, timeout=120,
                          check=False)


async def test_the_reconcile_command_re_pushes_every_account(platform_factory: PlatformFactory) -> None:
    platform = platform_factory.start(("crm_sync",), **ENV)
    hubspot = platform.hubspot
    for i in range(120):
        hubspot.add_company(pulse_account_id=f"acct-{i:03d}")
    await publish_scores(platform, score_events(130))  # 10 accounts no company holds
    await eventually(lambda: all_written(platform, 120), timeout=60, what="the first sync")
    assert platform.services["crm_sync"].terminate() == 0
    # Someone overwrote a value by hand; a company for an unmatched account appears.
    hubspot.company(pulse_account_id="acct-007")["pulse_nps_30d"] = "99"  # type: ignore[index]
    hubspot.add_company(pulse_account_id="acct-125")
    calls = len(hubspot.batch_calls())

    dry = await asyncio.to_thread(reconcile, platform, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would re-push 130 accounts to hubspot" in dry.stdout
    assert "10 unmatched" in dry.stdout
    assert len(hubspot.batch_calls()) == calls

    done = await asyncio.to_thread(reconcile, platform, "--connector", "hubspot")
    assert done.returncode == 0, done.stderr + done.stdout
    lines = done.stdout.splitlines()
    assert "this command writes" in done.stdout
    assert lines[-1].startswith("done: reconcile 1: 130/130 done (synced 121, unmatched 9, failed 0)"), lines
    assert hubspot.company(pulse_account_id="acct-007")["pulse_nps_30d"] == "7"  # type: ignore[index]
    assert hubspot.company(pulse_account_id="acct-125")["pulse_nps_30d"] == "25"  # type: ignore[index]
    assert [len(c.body["inputs"]) for c in hubspot.batch_calls()[calls:]][:2] == [100, 30]
    bad = await asyncio.to_thread(reconcile, platform, "--connector", "salesforce")
    assert bad.returncode == 2
    assert "unknown connector 'salesforce'" in bad.stderr
