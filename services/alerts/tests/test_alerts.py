"""Alerts delivery against the Slack fake and a real PostgreSQL: exactly once, routed, held, edited, paced."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text, update

from alerts.domain.message import AlertFacts
from alerts.slack import SlackClient
from alerts.store import NOTIFY_CHANNEL
from alerts.tables import alerts
from alerts.wakeup import Wakeup
from alerts_fixtures import CHANNEL, Harness, answer, dispatcher, drain_until, settle
from pulse_shared.db import plain_database_url
from pulse_shared.events import AccountOwnerChanged, RespondentErased
from pulse_shared.outbox import claim_due, fenced
from pulse_shared.testing.fake_slack import FakeSlack


async def test_one_alert_per_detractor_answer_posted_once(harness: Harness, slack: SlackClient,
                                                         fake_slack: FakeSlack) -> None:
    await harness.feed(answer("r1", 3), answer("r2", 9), answer("r3", 2, survey="csat"), answer("r1", 3))
    await harness.feed(answer("r1", 3))  # a redelivery on a later offset
    assert [r.alert_id for r in await harness.rows()] == ["detractor:acme:r1", "detractor:acme:r3"]
    await settle(harness, dispatcher(harness, slack))
    assert len(fake_slack.posts()) == 2
    assert fake_slack.violations == []
    assert {r.status for r in await harness.rows()} == {"sent"}
    for alert_id in ("detractor:acme:r1", "detractor:acme:r3"):
        [(conversation, message)] = fake_slack.messages_for_alert(alert_id)
        assert conversation == CHANNEL
        assert message.metadata == {"event_type": "pulse_alert", "event_payload": {"alert_id": alert_id}}
        assert (await harness.row(alert_id)).slack_ts == message.ts


async def test_a_detractor_without_comment_waits_for_it_then_later_edits_update_the_message(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    harness.configure(hold=30)
    d = dispatcher(harness, slack)
    first = datetime.now(UTC)
    await harness.feed(answer("r1", 3, revised=first))
    await d.deliver_due()
    assert fake_slack.posts() == []  # held for the comment
    await harness.feed(answer("r1", 3, comment="Exports time out", revised=first + timedelta(seconds=5),
                              updated=True))
    await drain_until(d, lambda: len(fake_slack.posts()) == 1, what="the post once the comment came")
    assert "Exports time out" in str(fake_slack.posts()[0].body["blocks"])
    await settle(harness, d)
    await harness.feed(answer("r1", 2, comment="Exports time out, and support never answered",
                              revised=first + timedelta(seconds=9), updated=True))
    await settle(harness, d)
    assert [c.method for c in fake_slack.calls if c.method.startswith("chat.")] == ["chat.postMessage", "chat.update"]
    [(_, message)] = fake_slack.messages_for_alert("detractor:acme:r1")
    assert message.edits == 1
    assert "support never answered" in str(message.blocks)
    assert (await harness.row("detractor:acme:r1")).status == "sent"


async def test_the_hold_ends_with_a_post_when_no_comment_comes(harness: Harness, slack: SlackClient,
                                                              fake_slack: FakeSlack) -> None:
    harness.configure(hold=1.5)
    d = dispatcher(harness, slack)
    fed = time.monotonic()
    await harness.feed(answer("r1", 1))
    await drain_until(d, lambda: len(fake_slack.posts()) == 1, what="the post after the hold")
    assert fake_slack.posts()[0].at - fed >= 1.4
    assert "No comment yet" in str(fake_slack.posts()[0].body["blocks"])


async def test_an_older_revision_arriving_late_does_not_overwrite_a_newer_one(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    now = datetime.now(UTC)
    await harness.feed(answer("r1", 2, comment="newest", revised=now))
    await harness.feed(answer("r1", 3, comment="older", revised=now - timedelta(minutes=1)))
    await settle(harness, dispatcher(harness, slack))
    [post] = fake_slack.posts()
    assert "newest" in str(post.body["blocks"])
    assert fake_slack.updates() == []


async def test_a_post_whose_answer_was_lost_is_read_back_and_adopted_not_repeated(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    # Slack stores the post but its answer never arrives in time (the client gives up after 2 s).
    fake_slack.fail_next(CHANNEL, "lost_answer")
    await harness.feed(answer("r1", 2, comment="cancelling"))
    d = dispatcher(harness, slack)
    await d.deliver_due()
    row = await harness.row("detractor:acme:r1")
    assert (row.status, row.slack_ts, row.attempt_channel) == ("pending", None, CHANNEL)  # in doubt
    await settle(harness, d)
    [(conversation, message)] = fake_slack.messages_for_alert("detractor:acme:r1")
    row = await harness.row("detractor:acme:r1")
    assert (row.status, row.slack_ts, row.channel) == ("sent", message.ts, conversation)
    assert len([c for c in fake_slack.calls if c.method == "chat.postMessage"]) == 1
    [history] = [c for c in fake_slack.calls if c.method == "conversations.history"]
    assert history.body["channel"] == CHANNEL
    assert history.body["include_all_metadata"] == "true"
    assert float(history.body["oldest"]) < float(message.ts)


async def test_an_attempt_recorded_but_never_sent_is_posted_after_reading_back_nothing(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    await harness.feed(answer("r1", 2))
    # As if a replica recorded the attempt and died before the request left: its lease has expired.
    async with harness.engine.begin() as conn:
        await conn.execute(update(alerts).values(attempt_at=datetime.now(UTC), attempt_channel=CHANNEL,
                                                 lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    await settle(harness, dispatcher(harness, slack))
    assert [c.method for c in fake_slack.calls] == ["conversations.history", "chat.postMessage"]
    assert len(fake_slack.messages_for_alert("detractor:acme:r1")) == 1


async def test_a_worker_whose_lease_was_taken_over_cannot_record_an_outcome(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    await harness.feed(answer("r1", 2))
    [zombie] = await claim_due(harness.engine, alerts, pending=alerts.c.status == "pending", lease_seconds=60)
    # The zombie is stuck past its lease: the lease has expired (set in the past rather than waited for).
    await harness.sql("UPDATE alerts.alerts SET lease_until = now() - interval '1 second'")
    await settle(harness, dispatcher(harness, slack))
    row = await harness.row("detractor:acme:r1")
    assert row.status == "sent"
    assert row.lease_token is None
    async with harness.engine.begin() as conn:
        late = await conn.execute(update(alerts).where(fenced(alerts, alerts.c.alert_id == zombie.alert_id,
                                                              zombie.lease_token))
                                  .values(status="failed", last_error="zombie").returning(alerts.c.alert_id))
        assert late.all() == []
    assert (await harness.row("detractor:acme:r1")).status == "sent"


async def test_a_worker_that_lost_its_lease_before_recording_the_attempt_gives_the_channel_back(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    """It reserved the channel's budget, then found the row taken over: it posts nothing and the channel opens
    again after one interval (before, it stayed reserved until its reservation lapsed)."""
    await harness.feed(answer("r1", 2))
    [zombie] = await claim_due(harness.engine, alerts, pending=alerts.c.status == "pending", lease_seconds=60)
    await harness.sql("UPDATE alerts.alerts SET lease_until = now() - interval '1 second'")
    await claim_due(harness.engine, alerts, pending=alerts.c.status == "pending", lease_seconds=60)  # the new holder
    d = dispatcher(harness, slack)
    await d._post(zombie, AlertFacts.model_validate(zombie.facts), [])
    assert fake_slack.posts() == []
    async with harness.engine.connect() as conn:
        [budget] = (await conn.execute(text("SELECT in_flight, next_allowed_at - now() AS wait "
                                            "FROM alerts.channel_budget"))).all()
    assert budget.in_flight is False
    assert budget.wait <= timedelta(seconds=1)


async def test_alerts_go_to_the_owner_by_dm_and_follow_an_owner_change(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    fake_slack.users_by_email.update({"csm@example.com": "U123", "new-csm@example.com": "U456"})
    await harness.feed(AccountOwnerChanged(account_id="acme", owner_email="csm@example.com", crm="hubspot"))
    await harness.feed(answer("r1", 1), answer("r2", 0))
    await settle(harness, dispatcher(harness, slack))
    assert [p.body["channel"] for p in fake_slack.posts()] == ["D123", "D123"]
    assert "<@U123>" in str(fake_slack.posts()[0].body["blocks"])
    lookups = [c for c in fake_slack.calls if c.method == "users.lookupByEmail"]
    assert len(lookups) == 1  # cached for the second alert
    assert [c.body["users"] for c in fake_slack.calls if c.method == "conversations.open"] == ["U123"]

    await harness.feed(AccountOwnerChanged(account_id="acme", owner_email="new-csm@example.com", crm="hubspot"))
    await harness.feed(answer("r3", 2))
    await settle(harness, dispatcher(harness, slack))
    assert fake_slack.posts()[-1].body["channel"] == "D456"
    assert "<@U456>" in str(fake_slack.posts()[-1].body["blocks"])
    assert len(fake_slack.posts()) == 3


async def test_an_older_owner_event_does_not_replace_a_newer_owner(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    fake_slack.users_by_email.update({"old@example.com": "U111", "new@example.com": "U222"})
    now = datetime.now(UTC)
    await harness.feed(AccountOwnerChanged(account_id="acme", owner_email="new@example.com", crm="hubspot",
                                           occurred_at=now))
    await harness.feed(AccountOwnerChanged(account_id="acme", owner_email="old@example.com", crm="hubspot",
                                           occurred_at=now - timedelta(hours=1)))
    await harness.feed(answer("r1", 1))
    await settle(harness, dispatcher(harness, slack))
    assert [p.body["channel"] for p in fake_slack.posts()] == ["D222"]


async def test_a_transient_lookup_failure_waits_for_the_dm_and_never_uses_the_channel(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    fake_slack.users_by_email["csm@example.com"] = "U123"
    fake_slack.fail_next("users.lookupByEmail", "server_error", times=3)
    await harness.feed(AccountOwnerChanged(account_id="acme", owner_email="csm@example.com", crm="hubspot"))
    await harness.feed(answer("r1", 1))
    d = dispatcher(harness, slack, max_attempts=2)  # lookups are not delivery attempts: never failed by them
    # The resolver waits 5 s after a failed lookup; make each wait due at once so the test stays short.
    for _ in range(3):
        await d.deliver_due()
        row = await harness.row("detractor:acme:r1")
        assert (row.status, row.attempts) == ("pending", 0)
        await harness.sql("UPDATE alerts.alerts SET next_attempt_at = now()")
    await settle(harness, d)
    assert [p.body["channel"] for p in fake_slack.posts()] == ["D123"]
    assert len([c for c in fake_slack.calls if c.method == "users.lookupByEmail"]) == 4


async def test_an_owner_not_on_slack_falls_back_to_the_routes_channel_then_the_default(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    harness.configure("""
rules:
  - {name: detractor, type: detractor}
routes:
  receivers: [owner]
  routes:
    - match: {labels: {plan: enterprise}}
      channel: C0ENTERPR1
""")
    await harness.feed(AccountOwnerChanged(account_id="acme", owner_email="gone@example.com", crm="hubspot"))
    await harness.feed(answer("r1", 1, properties={"plan": "enterprise"}), answer("r2", 1, properties={"plan": "free"}))
    await settle(harness, dispatcher(harness, slack))
    channels = {p.body["metadata"]["event_payload"]["alert_id"]: p.body["channel"] for p in fake_slack.posts()}
    assert channels == {"detractor:acme:r1": "C0ENTERPR1", "detractor:acme:r2": CHANNEL}


async def test_rules_and_routes_from_configuration(harness: Harness, slack: SlackClient, fake_slack: FakeSlack) -> None:
    harness.configure("""
rules:
  - {name: nps-detractor, type: detractor, surveys: [nps], severity: warning}
  - {name: churn-words, type: keywords, keywords: [cancel, switch, "refund*"], severity: critical}
  - {name: enterprise-unhappy, type: detractor, max_score: {nps: 7}, labels: {plan: enterprise}}
routes:
  receivers: [owner]
  routes:
    - match: {rule: churn-words}
      receivers: [owner, "channel:C0CHURN01"]
      continue: true
    - match: {severity: critical}
      receivers: ["channel:C0CRITIC1"]
""")
    await harness.feed(
        answer("r1", 9, comment="We will CANCÉL unless refunds work"),  # a promoter using churn words
        answer("r2", 7, properties={"plan": "enterprise"}),  # 7 only fires the enterprise rule (max 7)
        answer("r3", 7, properties={"plan": "free"}, comment="switching is hard"),  # "switching" is not "switch"
        answer("r4", 2, survey="csat"),  # CSAT: not covered by the NPS-only rule
    )
    ids = sorted(r.alert_id for r in await harness.rows())
    assert ids == [
        "churn-words:acme:r1", "churn-words:acme:r1:channel:C0CHURN01", "churn-words:acme:r1:channel:C0CRITIC1",
        "enterprise-unhappy:acme:r2",
    ]
    await settle(harness, dispatcher(harness, slack))
    by_alert = {p.body["metadata"]["event_payload"]["alert_id"]: p.body for p in fake_slack.posts()}
    assert by_alert["churn-words:acme:r1:channel:C0CHURN01"]["channel"] == "C0CHURN01"
    assert by_alert["churn-words:acme:r1:channel:C0CRITIC1"]["channel"] == "C0CRITIC1"
    assert by_alert["churn-words:acme:r1"]["channel"] == CHANNEL  # no owner known: the default channel
    blocks = str(by_alert["churn-words:acme:r1"]["blocks"])
    assert "`cancel`" in blocks
    assert "`refund*`" in blocks
    assert "churn-words" in blocks


async def test_a_changed_answer_withdraws_a_pending_alert_and_edits_a_posted_one(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    harness.configure(hold=60)
    now = datetime.now(UTC)
    await harness.feed(answer("r1", 3, revised=now))  # held
    await harness.feed(answer("r1", 9, revised=now + timedelta(seconds=1), updated=True))
    assert (await harness.row("detractor:acme:r1")).status == "withdrawn"

    harness.configure(hold=0)
    await harness.feed(answer("r2", 3, comment="bad", revised=now))
    d = dispatcher(harness, slack)
    await settle(harness, d)
    await harness.feed(answer("r2", 10, comment="sorry, misclicked", revised=now + timedelta(seconds=1),
                              updated=True))
    await settle(harness, d)
    assert len(fake_slack.posts()) == 1
    [(_, message)] = fake_slack.messages_for_alert("detractor:acme:r2")
    assert message.edits == 1
    assert "no longer fires" in str(message.blocks)
    assert fake_slack.messages_for_alert("detractor:acme:r1") == []


async def test_erasure_removes_personal_fields_and_edits_the_posted_message(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    d = dispatcher(harness, slack)
    await harness.feed(answer("r1", 2, comment="Call me on 555-0100", respondent="jane"))
    await settle(harness, d)
    assert "555-0100" in str(fake_slack.posts()[0].body["blocks"])
    await harness.feed(RespondentErased(account_id="acme", respondent_id="jane"))
    await settle(harness, d)
    [(_, message)] = fake_slack.messages_for_alert("detractor:acme:r1")
    assert message.edits == 1
    for personal in ("555-0100", "jane"):
        assert personal not in str(message.blocks)
        assert personal not in (message.text or "")
    row = await harness.row("detractor:acme:r1")
    assert [row.facts[k] for k in ("comment", "respondent_id", "respondent_email")] == [None, None, None]
    # A replay of the topic does not bring the personal fields back, nor edit the message again.
    await harness.feed(answer("r1", 2, comment="Call me on 555-0100", respondent="jane"))
    row = await harness.row("detractor:acme:r1")
    assert (row.facts["comment"], row.facts["erased"]) == (None, True)
    await settle(harness, d)
    assert fake_slack.messages_for_alert("detractor:acme:r1")[0][1].edits == 1


async def test_permanent_errors_fail_at_once_and_transient_ones_are_retried(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(CHANNEL, "channel_not_found")
    await harness.feed(answer("r1", 1))
    await settle(harness, dispatcher(harness, slack))
    row = (await harness.rows())[0]
    assert (row.status, row.last_error) == ("failed", "channel_not_found")
    assert len([c for c in fake_slack.calls if c.method == "chat.postMessage"]) == 1

    fake_slack.fail_next(CHANNEL, "invalid_auth")
    await harness.feed(answer("r2", 1))
    await settle(harness, dispatcher(harness, slack))
    assert (await harness.row("detractor:acme:r2")).status == "failed"
    assert len([c for c in fake_slack.calls if c.method == "chat.postMessage"]) == 2

    fake_slack.fail_next(CHANNEL, "server_error", times=2)
    await harness.feed(answer("r3", 1))
    await settle(harness, dispatcher(harness, slack, channel_interval_seconds=0.01))
    assert (await harness.row("detractor:acme:r3")).status == "sent"
    # A 500 may have been posted: each retry reads back first, and exactly one message exists.
    assert len(fake_slack.messages_for_alert("detractor:acme:r3")) == 1
    assert len(fake_slack.posts()) == 1


async def test_a_timed_out_post_is_retried_without_a_duplicate(harness: Harness, fake_slack: FakeSlack) -> None:
    fast = SlackClient(fake_slack.url, fake_slack.token, timeout=0.5)
    try:
        fake_slack.fail_next(CHANNEL, "timeout")  # never answered: not stored either
        await harness.feed(answer("r1", 1))
        await settle(harness, dispatcher(harness, fast, channel_interval_seconds=0.01))
    finally:
        await fast.close()
    assert (await harness.row("detractor:acme:r1")).status == "sent"
    assert len(fake_slack.messages_for_alert("detractor:acme:r1")) == 1
    assert [c.method for c in fake_slack.calls] == ["chat.postMessage", "conversations.history", "chat.postMessage"]


async def test_transient_failures_give_up_after_the_bounded_attempts(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(CHANNEL, "server_error", times=10)
    await harness.feed(answer("r1", 1))
    await settle(harness, dispatcher(harness, slack, max_attempts=3, channel_interval_seconds=0.01))
    row = await harness.row("detractor:acme:r1")
    assert (row.status, row.attempts) == ("failed", 3)
    assert len([c for c in fake_slack.calls if c.method == "chat.postMessage"]) == 3


async def test_rate_limits_wait_for_retry_after(harness: Harness, slack: SlackClient, fake_slack: FakeSlack) -> None:
    fake_slack.fail_next(CHANNEL, "ratelimited", retry_after=1)
    await harness.feed(answer("r1", 1))
    await settle(harness, dispatcher(harness, slack))
    attempts = [c.at for c in fake_slack.calls if c.method == "chat.postMessage"]
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.95
    assert len(fake_slack.posts()) == 1


async def test_row_18_a_rate_limited_channel_is_paced_and_others_are_unaffected(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    """100 alerts in a burst: 10 to a channel answering 429 Retry-After 3, 90 to 30 healthy channels."""
    harness.configure("""
rules: [{name: detractor, type: detractor}]
routes:
  receivers: [owner]
  routes:
    - match: {labels: {team: limited}}
      receivers: ["channel:C0LIMITED"]
""")
    fake_slack.fail_next("C0LIMITED", "ratelimited", retry_after=3)
    events = [answer(f"lim{i}", 1, account=f"acc-lim{i}", properties={"team": "limited"}) for i in range(10)]
    for i in range(90):
        events.append(answer(f"ok{i}", 1, account=f"acc{i % 30}"))
    for i in range(30):
        await harness.feed(AccountOwnerChanged(account_id=f"acc{i}", owner_email=f"csm{i}@example.com", crm="t"))
        fake_slack.users_by_email[f"csm{i}@example.com"] = f"U{i:04d}X"
    started = time.monotonic()
    await harness.feed(*events)
    d = dispatcher(harness, slack, concurrency=32)
    stop = asyncio.Event()
    runner = asyncio.create_task(d.run(stop))
    try:
        await drain_until_count(fake_slack, 100, timeout=40)
    finally:
        stop.set()
        await runner
    posts = fake_slack.posts()
    limited = sorted(p.at for p in posts if p.body["channel"] == "C0LIMITED")
    assert len(limited) == 10
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(limited))
    refused = [c.at for c in fake_slack.calls if c.body.get("channel") == "C0LIMITED" and not c.body.get("_ok")]
    assert len(refused) == 1
    assert limited[0] - refused[0] >= 2.95  # Retry-After honoured
    healthy = [p.at for p in posts if p.body["channel"] != "C0LIMITED"]
    assert len(healthy) == 90
    assert max(healthy) - started < 6  # 3 posts per channel at 1/s: not held up by the limited channel
    for conversation in {p.body["_conversation"] for p in posts}:
        times = sorted(p.at for p in posts if p.body["_conversation"] == conversation)
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
        assert all(gap >= 1.0 for gap in gaps), (conversation, gaps)
    ids = [p.body["metadata"]["event_payload"]["alert_id"] for p in posts]
    assert len(ids) == len(set(ids)) == 100
    assert {r.status for r in await harness.rows()} == {"sent"}


async def drain_until_count(fake: FakeSlack, count: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(fake.posts()) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(fake.posts())} of {count} posts after {timeout}s")


async def test_two_dispatchers_on_one_database_post_each_alert_once(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    harness.configure("""
rules: [{name: detractor, type: detractor}]
routes: {receivers: [owner]}
""")
    for i in range(20):
        await harness.feed(AccountOwnerChanged(account_id=f"acc{i}", owner_email=f"csm{i}@example.com", crm="t"))
        fake_slack.users_by_email[f"csm{i}@example.com"] = f"U{i:04d}Y"
    await harness.feed(*[answer(f"r{i}", 1, account=f"acc{i % 20}") for i in range(60)])
    first, second = dispatcher(harness, slack, concurrency=8), dispatcher(harness, slack, concurrency=8)
    stop = asyncio.Event()
    runners = [asyncio.create_task(first.run(stop)), asyncio.create_task(second.run(stop))]
    try:
        await drain_until_count(fake_slack, 60, timeout=30)
        await settle(harness, first)
    finally:
        stop.set()
        await asyncio.gather(*runners)
    ids = [p.body["metadata"]["event_payload"]["alert_id"] for p in fake_slack.posts()]
    assert len(ids) == len(set(ids)) == 60


async def test_without_slack_alerts_and_their_edits_are_logged_clearly(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    now = datetime.now(UTC)
    await harness.feed(answer("r1", 1, comment="bad", revised=now))
    d = dispatcher(harness, None)
    await settle(harness, d)
    assert (await harness.row("detractor:acme:r1")).status == "logged"
    await harness.feed(answer("r1", 1, comment="worse", revised=now + timedelta(seconds=1), updated=True))
    await settle(harness, d)
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("ALERT (Slack not configured") for m in messages) == 1
    assert sum(m.startswith("ALERT UPDATED") for m in messages) == 1
    assert (await harness.row("detractor:acme:r1")).status == "logged"


async def test_the_listen_connection_survives_the_database_closing_it(database_url: str) -> None:
    """A PostgreSQL restart closes the LISTEN connection under the listener: it reconnects (and wakes once, as
    notifications may have been missed), it does not die (it did, on "connection is closed", and took the
    process down with it: found by the chaos suite's PostgreSQL restart)."""
    wakeup = Wakeup()
    stop = asyncio.Event()
    listening = asyncio.create_task(wakeup.listen(stop, database_url, NOTIFY_CHANNEL))
    admin = await asyncpg.connect(plain_database_url(database_url))
    try:
        assert await wakeup.wait(10)
        terminated = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1')")
        assert terminated == 1
        assert await wakeup.wait(20), "no reconnect after the connection was closed"
        assert not listening.done(), listening.exception() if listening.done() else None
    finally:
        await admin.close()
        stop.set()
        await listening


async def test_a_committed_alert_wakes_every_replicas_dispatcher_through_notify(
    harness: Harness, database_url: str
) -> None:
    other_replica = Wakeup()
    stop = asyncio.Event()
    listening = asyncio.create_task(other_replica.listen(stop, database_url, NOTIFY_CHANNEL))
    try:
        assert await other_replica.wait(10)  # connected (a reconnect wakes once: notifications may have been missed)
        assert not await other_replica.wait(0.3)  # nothing committed: no wake-up
        await harness.feed(answer("r0", 9))  # a promoter writes no alert: no wake-up
        assert not await other_replica.wait(0.3)
        started = time.monotonic()
        await harness.feed(answer("r1", 2))
        assert await other_replica.wait(5)
        assert time.monotonic() - started < 1
    finally:
        stop.set()
        await listening
