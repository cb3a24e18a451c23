"""``make test-chaos``: the whole platform (two replicas of each service, Apache Kafka, PostgreSQL, the Slack
and HubSpot fakes) under one fault per scenario, while a seeded stream of answers (with updates and
duplicates) goes through the public API. Scenarios run in order on the same platform; the ground truth grows
with each (every acknowledged answer version, :mod:`tests.chaos.oracle`).

After each scenario, with the fault healed, everything is counted against the oracle:
- scoring's 30-day NPS counts equal the oracle's for every account;
- every answer whose last version is a detractor has exactly one Slack message, in its owner's DM, showing
  its last comment (edits allowed); no other answer has more than one, and only an answer that was a
  detractor at some point has one; no alert failed;
- HubSpot holds each account's final 30-day NPS and sample size;
- the dead-letter topic is empty (read to its end); no process died on its own; no request broke the
  vendors' contracts; ingest never answered other than 202 or 503 + Retry-After, and never hung.

One line per scenario is printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from pulse_shared.db import plain_database_url
from pulse_shared.testing.fake_slack import FakeSlack, SlackCall
from pulse_shared.testing.topic_reader import end_offsets, read_topic
from pulse_shared.testing.waiting import eventually
from tests.chaos.oracle import Oracle, Version
from tests.chaos.platform import ACCOUNTS, SEND_BOUND_SECONDS, Chaos, owner_user, running_platform
from tests.chaos.stream import Script, Stream, plan
from tests.conftest import SCORING_TOKEN, applied

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.timeout(900)]

ANSWERS_PER_SCENARIO = 250
SETTLE_SECONDS = 240.0
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Fault:
    """What breaks, for how long (while the stream goes on), and how it is healed."""

    name: str
    inject: Callable[[Chaos], Awaitable[object]]
    heal: Callable[[Chaos], Awaitable[object]]
    lasts: float = 3.0


def kill(service: str) -> Fault:
    async def inject(chaos: Chaos) -> None:
        chaos.replicas[service][0].kill()

    async def heal(chaos: Chaos) -> None:
        await chaos.restart(chaos.replicas[service][0])

    return Fault(f"kill -9 {service}", inject, heal)


def sigterm(service: str) -> Fault:
    async def inject(chaos: Chaos) -> None:
        code = await asyncio.to_thread(chaos.replicas[service][0].terminate, 40)
        assert code == 0, f"{service} exited {code} on SIGTERM:\n{chaos.replicas[service][0].tail()}"

    async def heal(chaos: Chaos) -> None:
        await chaos.restart(chaos.replicas[service][0])

    return Fault(f"SIGTERM {service}", inject, heal)


async def kafka_down(chaos: Chaos) -> None:
    chaos.broker.kill()


async def kafka_up(chaos: Chaos) -> None:
    await asyncio.to_thread(chaos.broker.start)  # same ports, same log


async def postgres_down(chaos: Chaos) -> None:
    await asyncio.to_thread(chaos.postgres.halt)


async def postgres_up(chaos: Chaos) -> None:
    await asyncio.to_thread(chaos.postgres.resume)


async def black_hole(chaos: Chaos) -> None:
    chaos.proxy.black_hole()


async def network_back(chaos: Chaos) -> None:
    chaos.proxy.up()


async def vendors_bad_minute(chaos: Chaos) -> None:
    for outage in (chaos.slack.outage, chaos.hubspot.outage):
        outage.begin(failing_for=10, then_late_for=50, late_seconds=10)


async def vendors_back(chaos: Chaos) -> None:
    chaos.slack.outage.end()
    chaos.hubspot.outage.end()


async def kill_alerts_after_a_post(chaos: Chaos) -> None:
    """kill -9 alerts the moment the fake has stored a post, before it answers: the worst moment, when the
    message is in Slack and alerts has no record of it. Both replicas die (the poster is surely among them)."""
    killed: list[int] = []

    def hook(_call: SlackCall) -> None:
        if killed:
            return
        for replica in chaos.replicas["alerts"]:
            if replica.process is not None and replica.process.poll() is None:
                os.kill(replica.process.pid, signal.SIGKILL)
                replica.process.wait()
                killed.append(replica.process.pid)

    chaos.slack.on_post = hook
    await eventually(lambda: bool(killed), timeout=60, what="a post for alerts to be killed after")
    chaos.slack.on_post = None
    for replica in chaos.replicas["alerts"]:
        replica.kill()  # closes its log handle (it is dead already)


async def alerts_back(chaos: Chaos) -> None:
    await asyncio.gather(*(chaos.restart(replica) for replica in chaos.replicas["alerts"]))


FAULTS = [
    None,
    *(kill(s) for s in ("ingest", "scoring", "alerts", "crm_sync")),
    *(sigterm(s) for s in ("ingest", "scoring", "alerts", "crm_sync")),
    Fault("kill -9 Kafka, restart with its log", kafka_down, kafka_up, lasts=5),
    Fault("PostgreSQL restarted", postgres_down, postgres_up, lasts=5),
    Fault("broker black-holed 30 s", black_hole, network_back, lasts=30),
    Fault("Slack and HubSpot 5xx 10 s, then 10 s late", vendors_bad_minute, vendors_back, lasts=60),
    Fault("alerts killed right after a Slack post", kill_alerts_after_a_post, alerts_back, lasts=1),
]


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    with running_platform(tmp_path_factory.mktemp("chaos")) as platform:
        yield platform


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: "no fault" if f is None else f.name)
async def test_scenario(chaos: Chaos, fault: Fault | None) -> None:
    tag = f"s{FAULTS.index(fault):02d}"
    if fault is None:  # the first: every account's owner known to alerts before any fault
        await Stream(chaos.ingest_urls, chaos.oracle).run(
            [Script(a, f"warm-{a}", (Version(10),), False) for a in ACCOUNTS])
        for account in ACCOUNTS:
            await eventually(lambda a=account: chaos.owner_known(a), timeout=120,  # type: ignore[misc]
                             what=f"alerts to learn {account}'s owner from HubSpot")
    scripts = plan(chaos.rng, ACCOUNTS, ANSWERS_PER_SCENARIO, tag)
    stream = Stream(chaos.ingest_urls, chaos.oracle)
    started = time.monotonic()
    sending = asyncio.create_task(stream.run(scripts))
    if fault is not None:
        await eventually(lambda: stream.posts >= ANSWERS_PER_SCENARIO // 3 or sending.done(), timeout=120,
                         what="a third of the stream before the fault")
        await fault.inject(chaos)
        await asyncio.sleep(fault.lasts)  # how long the fault lasts: the scenario's shape, not a wait
        await fault.heal(chaos)
    await sending
    sent = time.monotonic()
    figures = await check(chaos, stream)
    for vendor, outage in (("Slack", chaos.slack.outage), ("HubSpot", chaos.hubspot.outage)):
        if outage.failed or outage.late:
            figures += f"; {vendor} answered {outage.failed} calls 5xx and {outage.late} late"
            outage.failed = outage.late = 0
    print(f"\nchaos | {fault.name if fault else 'no fault':44} | {len(scripts)} answers, {stream.posts} calls "
          f"({stream.updates} updates, {stream.duplicates} duplicates, {stream.statuses[503]} x 503, "
          f"{stream.unreachable} unreachable, slowest {stream.slowest:.1f} s) | {figures} | "
          f"stream {sent - started:.0f} s, settled {time.monotonic() - sent:.0f} s")
    if fault is not None and fault.inject in (kafka_down, black_hole):
        assert stream.statuses[503] > 0, "ingest never answered 503 while the broker was out of reach"
    if fault is not None and fault.inject is vendors_bad_minute:
        assert "Slack answered" in figures, "Slack's outage met no call"
        assert "HubSpot answered" in figures, "HubSpot's outage met no call"


async def converge(what: str, mismatches: Callable[[], Awaitable[list[str]]]) -> None:
    """Poll ``mismatches`` until it finds none; fail with the last ones after :data:`SETTLE_SECONDS`."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while found := await mismatches():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {len(found)} mismatches after {SETTLE_SECONDS:g} s: {found[:8]}")
        await asyncio.sleep(POLL_SECONDS)


async def check(chaos: Chaos, stream: Stream) -> str:
    """Everything counted against the oracle; returns the figures for the scenario's line."""
    assert stream.unexpected == [], f"ingest answered other than 202/503: {stream.unexpected[:5]}"
    assert stream.retry_after_missing == 0, "a 503 without Retry-After"
    assert stream.slowest < SEND_BOUND_SECONDS + 5, f"a call took {stream.slowest:.1f} s: ingest hung"
    oracle = chaos.oracle
    served: dict[str, dict[str, Any]] = {}

    async def scoring_mismatches() -> list[str]:
        wrong = []
        async with httpx.AsyncClient(timeout=10) as client:
            for account in ACCOUNTS:
                nps = await scoring_nps(client, chaos, account)
                if nps is None:
                    wrong.append(f"{account}: scoring answered 503")
                    continue
                served[account] = nps
                got = (nps.get("n", 0), nps.get("counts", {}).get("promoters", 0),
                       nps.get("counts", {}).get("detractors", 0))
                if got != oracle.counts(account):
                    wrong.append(f"{account}: scoring {got} != oracle {oracle.counts(account)}")
        return wrong

    await converge("scoring equal to the oracle", scoring_mismatches)

    async def crm_mismatches() -> list[str]:
        wrong = []
        for account in ACCOUNTS:
            company = chaos.hubspot.company(pulse_account_id=account) or {}
            n, value = served[account].get("n"), served[account].get("value")
            got = (company.get("pulse_nps_30d_n"), company.get("pulse_nps_30d"))
            if got[0] != str(n) or value is None or got[1] is None or float(got[1]) != float(value):
                wrong.append(f"{account}: HubSpot {got} != scores (n={n}, value={value})")
        return wrong

    await converge("HubSpot holding every account's final scores", crm_mismatches)
    await converge("alerts settled", lambda: alerts_unsettled(chaos))
    figures = slack_counted(chaos.slack, oracle)
    dead = await read_topic(chaos.bootstrap, chaos.topics.dead_letter)
    assert dead == [], f"{len(dead)} records on the dead-letter topic: {dead[0].value[:300]!r}"
    for name, process in chaos.processes():
        assert process.process is not None
        assert process.process.poll() is None, f"{name} died:\n{process.tail()}"
    assert chaos.slack.violations == []
    assert chaos.hubspot.violations == []
    return f"{len(ACCOUNTS)} accounts = oracle ({oracle.answers()} answers in all), {figures}, HubSpot current"


async def scoring_nps(client: httpx.AsyncClient, chaos: Chaos, account: str) -> dict[str, Any] | None:
    """The account's 30-day NPS as scoring serves it; None while scoring answers 503 (its database is back
    only just now)."""
    url = chaos.replicas["scoring"][1].url
    found = await client.get(f"{url}/v1/accounts/{account}/scores", params={"window": "30d"},
                             headers={"Authorization": f"Bearer {SCORING_TOKEN}"})
    if found.status_code == 404:
        return {}
    if found.status_code == 503:
        assert "retry-after" in found.headers, found.text
        return None
    assert found.status_code == 200, found.text
    return dict((found.json().get("scores") or {}).get("nps") or {})


async def alerts_unsettled(chaos: Chaos) -> list[str]:
    """Alerts has applied the whole responses topic and has nothing left to post or edit."""
    ends = sum((await end_offsets(chaos.bootstrap, chaos.topics.responses)).values())
    done = await applied(chaos.database_url, "alerts", chaos.topics.responses)
    conn = await asyncpg.connect(plain_database_url(chaos.database_url))
    try:
        rows = await conn.fetch("SELECT alert_id, status, last_error FROM alerts.alerts "
                                "WHERE status IN ('pending', 'update_pending', 'failed')")
    finally:
        await conn.close()
    failed = [f"{r['alert_id']} failed: {r['last_error']}" for r in rows if r["status"] == "failed"]
    assert not failed, failed[:5]
    wrong = [f"{r['alert_id']} {r['status']} ({r['last_error']})" for r in rows]
    if done != ends:
        wrong.append(f"alerts applied {done} of {ends} responses")
    return wrong


def slack_counted(slack: FakeSlack, oracle: Oracle) -> str:
    """Exactly one message per answer whose last version is a detractor, in its owner's DM, showing its last
    comment; at most one for an answer that was a detractor once; none for any other."""
    by_alert: dict[str, list[tuple[str, Any]]] = {}
    for conversation, message in slack.all_messages():
        alert_id = ((message.metadata or {}).get("event_payload") or {}).get("alert_id")
        by_alert.setdefault(str(alert_id), []).append((conversation, message))
    doubled = {a: len(m) for a, m in by_alert.items() if len(m) > 1}
    assert not doubled, f"answers with more than one message: {list(doubled.items())[:5]}"
    ever = {f"detractor:{a}:{r}" for a, r in oracle.ever_detractor}
    stray = sorted(set(by_alert) - ever)
    assert not stray, f"messages for answers that never were detractors: {stray[:5]}"
    final = oracle.final_detractors()
    missing, misplaced, stale = [], [], []
    for (account, response_id), version in final.items():
        found = by_alert.get(f"detractor:{account}:{response_id}")
        if not found:
            missing.append(response_id)
            continue
        [(conversation, message)] = found
        if conversation != FakeSlack.dm_id(owner_user(account)):
            misplaced.append(f"{response_id} in {conversation}")
        if version.comment is not None and version.comment not in json.dumps([message.text, message.blocks]):
            stale.append(response_id)
    assert not missing, f"{len(missing)} detractors without a message: {missing[:5]}"
    assert not misplaced, f"not in the owner's DM: {misplaced[:5]}"
    assert not stale, f"messages not showing the answer's last comment: {stale[:5]}"
    edits = sum(m.edits for ms in by_alert.values() for _c, m in ms)
    return f"{len(final)} detractors with one message each ({len(by_alert)} messages, {edits} edits)"
