"""Escalation: an alert nobody acknowledged within its route's limit escalates exactly once (to a team channel
or PagerDuty, checked by the Events v2 fake), not when acknowledged, not while snoozed, and resolves on ack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from test_interactions import ALERT, SECRET, Clicks, clicks

from alerts.config import ConfigError, parse_config
from alerts.domain.routing import route
from alerts.escalation import PagerDutySender, count_open, escalate_due
from alerts.slack import SlackClient
from alerts_fixtures import Harness, answer, dispatcher, drain_until, settle
from pulse_shared.testing.fake_pagerduty import FakePagerDuty
from pulse_shared.testing.fake_slack import FakeSlack

__all__ = ["SECRET", "clicks"]  # the clicks fixture, shared with the interactions tests

TEAM = "C0TEAM0001"
CONFIG = f"""
rules:
  - {{name: detractor, type: detractor}}
routes:
  receivers: [owner]
  escalate_to: "channel:{TEAM}"
  escalate_after: 4h
  routes:
    - match: {{labels: {{plan: enterprise}}}}
      escalate_to: pagerduty
      escalate_after: 30m
"""


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    fake = FakePagerDuty().start()
    yield fake
    fake.stop()


def test_escalation_is_configured_per_route_and_inherited() -> None:
    config = parse_config(CONFIG)
    [owner] = route(config.routes, rule="detractor", severity="warning", labels={})
    assert (owner.escalate_to, owner.escalate_after) == (f"channel:{TEAM}", 4 * 3600)
    [paged] = route(config.routes, rule="detractor", severity="warning", labels={"plan": "enterprise"})
    assert (paged.escalate_to, paged.escalate_after) == ("pagerduty", 1800)
    for bad, message in (("escalate_to: '#cs'", "use 'pagerduty' or 'channel:<channel id>'"),
                         ("escalate_after: soon", "is not a duration")):
        with pytest.raises(ConfigError, match=message):
            parse_config(f"routes:\n  receivers: [owner]\n  escalate_to: pagerduty\n  {bad}\n")


async def delivered(harness: Harness, slack: SlackClient, fake_slack: FakeSlack, **properties: str) -> datetime:
    harness.configure(CONFIG)
    await harness.feed(answer("r1", 2, comment="Exports keep timing out", properties=properties))
    d = dispatcher(harness, slack, interactive=True, channel_interval_seconds=0.05)
    await drain_until(d, lambda: len(fake_slack.posts()) == 1, what="the alert")
    return datetime.now(UTC)


async def test_an_unacknowledged_alert_escalates_to_the_team_channel_once(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    posted = await delivered(harness, slack, fake_slack)
    assert await escalate_due(harness.engine, posted + timedelta(hours=3, minutes=59)) == 0
    later = posted + timedelta(hours=4, seconds=5)
    assert await escalate_due(harness.engine, later) == 1
    assert await escalate_due(harness.engine, later + timedelta(hours=1)) == 0  # once, whoever runs it again
    d = dispatcher(harness, slack, interactive=True, channel_interval_seconds=0.05)
    await settle(harness, d)
    escalations = fake_slack.messages_for_alert(f"{ALERT}:escalated")
    assert [conversation for conversation, _ in escalations] == [TEAM]
    assert "Escalated:* nobody acknowledged this alert within 4 h" in json.dumps(escalations[0][1].blocks)
    assert (await harness.row(ALERT)).escalated_at is not None
    assert fake_slack.violations == []


async def test_acknowledging_the_escalated_copy_acknowledges_the_alert_and_edits_both_messages(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack, clicks: Clicks
) -> None:
    posted = await delivered(harness, slack, fake_slack)
    assert await escalate_due(harness.engine, posted + timedelta(hours=4, seconds=5)) == 1
    d = dispatcher(harness, slack, interactive=True, channel_interval_seconds=0.05)
    await settle(harness, d)
    assert (await clicks.click("pulse_ack", alert_id=f"{ALERT}:escalated", user="U0LEAD001")).status_code == 200
    await settle(harness, d)
    for alert_id in (ALERT, f"{ALERT}:escalated"):
        assert (await harness.row(alert_id)).handling["ack_by"] == "U0LEAD001"
        [(_c, message)] = fake_slack.messages_for_alert(alert_id)
        assert message.edits == 1
        assert "Acknowledged by <@U0LEAD001>" in json.dumps(message.blocks)
        assert "pulse_ack" not in json.dumps(message.blocks)
    assert await count_open(harness.engine, datetime.now(UTC)) == 0


async def test_open_unacknowledged_alerts_are_counted(harness: Harness, slack: SlackClient, fake_slack: FakeSlack,
                                                      clicks: Clicks) -> None:
    posted = await delivered(harness, slack, fake_slack)
    assert await count_open(harness.engine, posted) == 1
    assert await count_open(harness.engine, posted + timedelta(days=8)) == 0  # a week old: out of the count
    await clicks.click("pulse_ack")
    assert await count_open(harness.engine, posted) == 0


async def test_an_acknowledged_or_snoozed_alert_does_not_escalate(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack, clicks: Clicks
) -> None:
    posted = await delivered(harness, slack, fake_slack)
    await clicks.click("pulse_snooze")
    assert await escalate_due(harness.engine, posted + timedelta(hours=5)) == 0  # snoozed for 24 h
    assert await escalate_due(harness.engine, posted + timedelta(hours=25)) == 1  # the snooze ended
    fake_slack.calls.clear()

    await harness.feed(answer("r2", 1, comment="Still slow"))
    d = dispatcher(harness, slack, interactive=True, channel_interval_seconds=0.05)
    await settle(harness, d)
    await clicks.click("pulse_ack", alert_id="detractor:acme:r2", action_ts="1733047999.000900")
    assert await escalate_due(harness.engine, datetime.now(UTC) + timedelta(days=2)) == 0


async def test_a_paged_alert_triggers_pagerduty_once_and_resolves_on_ack(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack, clicks: Clicks, pagerduty: FakePagerDuty
) -> None:
    posted = await delivered(harness, slack, fake_slack, plan="enterprise")
    sender = PagerDutySender(harness.engine, url=pagerduty.url, routing_key=pagerduty.routing_key, timeout=2)
    try:
        assert await escalate_due(harness.engine, posted + timedelta(minutes=31)) == 1
        pagerduty.fail_next(500)  # PagerDuty hiccups once: the trigger is sent again, same dedup key
        assert await sender.send_due() == 0
        await harness.sql("UPDATE alerts.pagerduty_events SET next_attempt_at = now()")
        assert await sender.send_due() == 1
        [trigger] = pagerduty.events
        assert trigger["event_action"] == "trigger"
        assert trigger["dedup_key"] == ALERT
        assert trigger["payload"]["severity"] == "warning"
        assert trigger["payload"]["custom_details"]["account_id"] == "acme"
        assert "Exports" not in json.dumps(trigger), "no comment (personal data) goes to PagerDuty"
        assert pagerduty.incidents == {ALERT: "triggered"}

        assert (await clicks.click("pulse_ack")).status_code == 200
        assert await sender.send_due() == 1
        assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"]
        assert pagerduty.incidents == {ALERT: "resolved"}
        assert await sender.send_due() == 0
        assert pagerduty.violations == []
    finally:
        await sender.close()
