"""End to end, with real processes: a detractor reaches its owner's DM exactly once, even when alerts is
killed -9 the moment Slack accepted the post (resilience row 26), and with two alerts replicas.

ingest → responses topic → alerts (PostgreSQL outbox) → the Slack fake. The fake kills the alerts process
from inside its ``chat.postMessage`` handler, after storing the message and before answering: the worst
moment, when the post exists in Slack and alerts has no record of it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pulse_shared.testing.fake_slack import SlackCall
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.testing.waiting import eventually
from tests.conftest import KEY, PlatformFactory

pytestmark = pytest.mark.e2e

ADMIN = "alerts-admin-token"
ALERTS_ENV = {
    "ALERTS_ADMIN_TOKEN": ADMIN,
    "ALERTS_LEASE_SECONDS": "6",  # a killed replica's alerts are taken over after 6 s
    "SLACK_TIMEOUT_SECONDS": "1",
    "ALERTS_COMMENT_HOLD_SECONDS": "0",
}


async def set_owner(alerts: ServiceProcess, account: str, email: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        done = await client.put(f"{alerts.url}/v1/accounts/{account}/owner", json={"email": email},
                                headers={"Authorization": f"Bearer {ADMIN}"})
    assert done.status_code == 200, done.text


async def submit(ingest: str, answers: list[dict[str, object]]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for answer in answers:
            done = await client.post(f"{ingest}/v1/responses", json=answer, headers={"X-Pulse-Key": KEY})
            assert done.status_code == 202, done.text


def kill_on_post(target: ServiceProcess, *, after: int = 1) -> Callable[[SlackCall], None]:
    """An ``on_post`` hook that kill -9s ``target`` when the fake has stored its ``after``-th post."""
    seen = 0

    def hook(_call: SlackCall) -> None:
        nonlocal seen
        seen += 1
        if seen == after and target.process is not None and target.process.poll() is None:
            os.kill(target.process.pid, signal.SIGKILL)
            target.process.wait()

    return hook


def log_lines(service: ServiceProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]


async def test_alerts_killed_right_after_slack_accepted_the_post_still_posts_once(
    platform_factory: PlatformFactory,
) -> None:
    platform = platform_factory.start(("ingest", "alerts"), **ALERTS_ENV)
    alerts = platform.services["alerts"]
    slack = platform.slack
    slack.users_by_email["csm@example.com"] = "U0CSM0001"
    await set_owner(alerts, "acme-42", "csm@example.com")
    slack.on_post = kill_on_post(alerts)

    await submit(platform.ingest, [{"response_id": "r-kill", "survey_type": "nps", "score": 2, "account_id": "acme-42",
                                    "comment": "We are evaluating a switch", "respondent_id": "u9"}])
    await eventually(lambda: alerts.process is not None and alerts.process.poll() is not None,
                     what="alerts to be killed by the fake")
    [(conversation, message)] = slack.messages_for_alert("detractor:acme-42:r-kill")
    assert conversation == "D0CSM0001"  # the owner's DM

    slack.on_post = None
    alerts.start()  # the same settings, database and consumer group
    await eventually(lambda: any(line.get("msg", "").startswith("alert in doubt found in Slack")  # type: ignore[union-attr]
                                 for line in log_lines(alerts)), timeout=40, what="the read-back after restart")
    assert slack.messages_for_alert("detractor:acme-42:r-kill") == [(conversation, message)]
    assert len(slack.posts()) == 1
    history = [c for c in slack.calls if c.method == "conversations.history"]
    assert [c.body["channel"] for c in history] == ["D0CSM0001"]
    assert slack.violations == []


async def test_two_replicas_and_a_kill_deliver_every_alert_exactly_once(platform_factory: PlatformFactory) -> None:
    platform = platform_factory.start(("ingest", "alerts"), **ALERTS_ENV)
    first = platform.services["alerts"]
    second = platform_factory.service("alerts", **ALERTS_ENV).start()
    slack = platform.slack
    accounts = [f"acct-{i}" for i in range(12)]
    for i, account in enumerate(accounts):
        slack.users_by_email[f"csm{i}@example.com"] = f"U0CSM{i:04d}"
        await set_owner(first, account, f"csm{i}@example.com")
    # The 10th post kills the replica that made it, the moment Slack stored it; the other carries on.
    killed: list[ServiceProcess] = []

    def hook(call: SlackCall) -> None:
        if len(slack.posts()) != 10:
            return
        for replica in (first, second):
            if replica.process is not None and call.user_agent.endswith(f"pid/{replica.process.pid}"):
                os.kill(replica.process.pid, signal.SIGKILL)
                replica.process.wait()
                killed.append(replica)

    slack.on_post = hook
    answers: list[dict[str, object]] = [
        {"response_id": f"r{n}", "survey_type": "nps", "score": n % 7, "account_id": accounts[n % len(accounts)],
         "comment": f"answer {n}", "respondent_id": f"u{n}"} for n in range(48)
    ]
    answers += [{"response_id": f"p{n}", "survey_type": "nps", "score": 9, "account_id": accounts[n % 12]}
                for n in range(12)]  # promoters: no alert
    await submit(platform.ingest, answers)
    await eventually(lambda: bool(killed), what="a replica to be killed")
    killed[0].start()
    expected = {f"detractor:{accounts[n % len(accounts)]}:r{n}" for n in range(48)}
    await eventually(lambda: {aid for aid in expected if slack.messages_for_alert(aid)} == expected, timeout=90,
                     what="every detractor in Slack")
    for alert_id in sorted(expected):
        found = slack.messages_for_alert(alert_id)
        assert len(found) == 1, (alert_id, found)
        account = alert_id.split(":")[1]
        assert found[0][0] == f"D0CSM{int(account.split('-')[1]):04d}"
    # Nothing more arrives once both replicas are idle (every row settled as sent).
    async with httpx.AsyncClient(timeout=10) as client:
        async def settled() -> bool:
            page = (await client.get(f"{second.url if second.process and second.process.poll() is None else first.url}"
                                     "/v1/alerts", params={"limit": 200},
                                     headers={"Authorization": f"Bearer {ADMIN}"})).json()
            return len(page["alerts"]) == 48 and {a["status"] for a in page["alerts"]} == {"sent"}

        await eventually(settled, timeout=30, what="every alert to settle as sent")
    assert len(slack.posts()) == 48
    assert slack.violations == []


async def test_row_24_an_erasure_edits_the_posted_alert_within_a_minute(platform_factory: PlatformFactory) -> None:
    platform = platform_factory.start(("ingest", "alerts"), INGEST_ADMIN_TOKEN="ingest-admin", **ALERTS_ENV)
    slack = platform.slack
    await submit(platform.ingest, [{"response_id": "r-erase", "survey_type": "nps", "score": 1,
                                    "account_id": "acme-42", "respondent_id": "jane-7",
                                    "comment": "Call me on 555-0100, Jane"}])
    await eventually(lambda: len(slack.posts()) == 1, what="the alert")
    assert "555-0100" in str(slack.posts()[0].body["blocks"])
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as client:
        erased = await client.delete(f"{platform.ingest}/v1/respondents/jane-7", params={"account_id": "acme-42"},
                                     headers={"Authorization": "Bearer ingest-admin"})
    assert erased.status_code == 202, erased.text
    await eventually(lambda: slack.messages_for_alert("detractor:acme-42:r-erase")[0][1].edits == 1, timeout=60,
                     what="the message edited")
    assert time.monotonic() - started < 60
    [(_, message)] = slack.messages_for_alert("detractor:acme-42:r-erase")
    for personal in ("555-0100", "jane-7", "Jane"):
        assert personal not in str(message.blocks) + (message.text or "")
    async with httpx.AsyncClient(timeout=10) as client:
        listed = (await client.get(f"{platform.services['alerts'].url}/v1/alerts", params={"account_id": "acme-42"},
                                   headers={"Authorization": f"Bearer {ADMIN}"})).json()
    [alert] = listed["alerts"]
    assert (alert["facts"]["comment"], alert["facts"]["respondent_id"], alert["facts"]["erased"]) == (None, None, True)
    assert len(slack.posts()) == 1


async def test_a_burst_for_one_account_is_one_message_even_when_alerts_is_killed_at_the_post(
    platform_factory: PlatformFactory, tmp_path: Path,
) -> None:
    config = tmp_path / "alerts.yaml"
    config.write_text("routes:\n  receivers: [owner]\n  group_wait: 3s\n  group_interval: 5m\n", encoding="utf-8")
    platform = platform_factory.start(("ingest", "alerts"), ALERTS_CONFIG_FILE=str(config), **ALERTS_ENV)
    alerts = platform.services["alerts"]
    slack = platform.slack
    slack.users_by_email["csm@example.com"] = "U0CSM0001"
    await set_owner(alerts, "acme-42", "csm@example.com")
    slack.on_post = kill_on_post(alerts)
    # Twenty detractors for one account within the group's wait (one message), then alerts dies at the post.
    await submit(platform.ingest, [{"response_id": f"r{n:02d}", "survey_type": "nps", "score": n % 7,
                                    "account_id": "acme-42", "comment": f"burst {n}", "respondent_id": f"u{n}"}
                                   for n in range(20)])
    await eventually(lambda: alerts.process is not None and alerts.process.poll() is not None,
                     what="alerts to be killed by the fake")
    slack.on_post = None
    alerts.start()

    async with httpx.AsyncClient(timeout=10) as client:
        async def settled() -> bool:
            page = (await client.get(f"{alerts.url}/v1/alerts", params={"account_id": "acme-42", "limit": 200},
                                     headers={"Authorization": f"Bearer {ADMIN}"})).json()
            statuses = sorted(a["status"] for a in page["alerts"])
            return statuses == ["grouped"] * 19 + ["sent"]

        await eventually(settled, timeout=60, what="the group to settle as one sent message")
    [(conversation, message)] = slack.messages_for_alert("detractor:acme-42:r00")
    assert conversation == "D0CSM0001"
    assert all(f"burst {n}" in str(message.blocks) for n in range(20))
    assert len(slack.posts()) == 1
    assert slack.violations == []
