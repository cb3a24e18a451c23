"""The alert buttons: Slack's request signature (its documented example), a click applied once (row 20 of
resilience.md), the message updated to show who did what, and the alert history showing it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select
from test_domain import assert_valid_blocks

from alerts.api import router as admin_router
from alerts.domain.handling import SNOOZE, Handling, apply, check_signature, signature
from alerts.domain.message import AlertFacts, render
from alerts.interactions import router
from alerts.slack import SlackClient
from alerts.tables import slack_interactions
from alerts.wakeup import Wakeup
from alerts_fixtures import CHANNEL, Harness, answer, dispatcher, drain_until, settle
from pulse_shared.testing.fake_slack import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALERT = "detractor:acme:r1"


def test_the_signature_is_slacks_documented_example() -> None:
    """Slack's "Verifying requests from Slack" example: this secret, timestamp and body sign to this value."""
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
            b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
            b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
            b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert signature(SECRET, "1531420618", body) == expected
    assert check_signature(SECRET, "1531420618", expected, body, now=1531420618 + 299) is None
    # Slack's own SDK agrees.
    verifier = SignatureVerifier(SECRET, clock=SimpleNamespace(now=lambda: 1531420618.0))  # type: ignore[arg-type]
    assert verifier.is_valid(body, "1531420618", expected)


@pytest.mark.parametrize(("timestamp", "given", "now", "reason"), [
    ("1531420618", None, 1531420618, "missing"),
    (None, "v0=00", 1531420618, "missing"),
    ("soon", "v0=00", 1531420618, "not a number"),
    ("1531420618", "v0=" + "0" * 64, 1531420618, "does not match"),
    ("1531420618", "signed", 1531420618 + 301, "more than 5 minutes"),
    ("1531420618", "signed", 1531420618 - 301, "more than 5 minutes"),
])
def test_unsigned_wrong_or_stale_requests_are_refused(timestamp: str | None, given: str | None, now: int,
                                                      reason: str) -> None:
    body = b"payload=%7B%7D"
    if given == "signed":
        given = signature(SECRET, str(timestamp), body)
    refused = check_signature(SECRET, timestamp, given, body, now=now)
    assert refused is not None
    assert reason in refused


def test_handling_is_a_pure_function_of_state_action_and_time() -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    acked = apply(Handling(), "ack", "U1", "jane", now)
    assert acked is not None
    assert (acked.ack_by, acked.ack_at) == ("U1", now)
    assert apply(acked, "ack", "U2", "bob", now + timedelta(minutes=1)) is None  # the first ack stands
    assigned = apply(acked, "assign", "U2", "bob", now)
    assert assigned is not None
    assert assigned.assignee == "U2"
    assert apply(assigned, "assign", "U2", "bob", now) is None
    snoozed = apply(assigned, "snooze", "U2", "bob", now)
    assert snoozed is not None
    assert snoozed.snoozed_until == now + SNOOZE


def test_buttons_and_what_was_done_are_valid_block_kit() -> None:
    facts = AlertFacts(account_id="acme", response_id="r1", survey_type="nps", score=2, scale_min=0, scale_max=10,
                       sentiment="detractor", comment="slow")
    _, fresh = render(facts, owner_mention=None, buttons_for=ALERT)
    assert_valid_blocks(fresh)
    actions = fresh[-1]
    assert actions["type"] == "actions"
    assert [b["action_id"] for b in actions["elements"]] == ["pulse_ack", "pulse_assign", "pulse_snooze"]
    assert {b["value"] for b in actions["elements"]} == {ALERT}
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    done = Handling(ack_by="U0JANE001", ack_at=at, assignee="U0BOB0001", assigned_at=at)
    _, handled = render(facts, owner_mention=None, handling=done, buttons_for=ALERT)
    assert_valid_blocks(handled)
    assert "Acknowledged by <@U0JANE001>" in str(handled)
    assert "Assigned to <@U0BOB0001>" in str(handled)
    assert [b["action_id"] for b in handled[-1]["elements"]] == ["pulse_assign", "pulse_snooze"]
    _, plain = render(facts, owner_mention=None)
    assert all(b["type"] != "actions" for b in plain), "no buttons without interactivity"
    # A long comment never pushes the buttons out of the 50-block limit.
    _, long = render(facts.model_copy(update={"comment": "word " * 40_000}), owner_mention=None, buttons_for=ALERT)
    assert len(long) <= 50
    assert long[-1]["type"] == "actions"


class Clicks:
    """Signed block_actions requests to the interactions endpoint."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def click(self, action_id: str, *, user: str = "U0JANE001", action_ts: str = "1733047200.000100",
                    alert_id: str = ALERT, timestamp: int | None = None, secret: str = SECRET) -> httpx.Response:
        payload = {"type": "block_actions", "user": {"id": user, "name": user.lower()},
                   "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1.000001"},
                   "trigger_id": "t1", "actions": [{"action_id": action_id, "block_id": "pulse_actions",
                                                    "value": alert_id, "action_ts": action_ts, "type": "button"}]}
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        ts = str(timestamp or int(time.time()))
        mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        return await self.client.post("/v1/slack/interactions", content=body, headers={
            "content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": ts,
            "x-slack-signature": f"v0={mac}"})


@pytest.fixture
async def clicks(harness: Harness) -> AsyncIterator[Clicks]:
    app = FastAPI()
    app.state.settings = SimpleNamespace(slack_signing_secret=SecretStr(SECRET), admin_token=SecretStr("admin"))
    app.include_router(router(harness.engine, Wakeup()))
    app.include_router(admin_router(harness.engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alerts") as client:
        yield Clicks(client)


async def posted(harness: Harness, slack: SlackClient, fake_slack: FakeSlack) -> Any:
    await harness.feed(answer("r1", 2, comment="Exports keep timing out"))
    d = dispatcher(harness, slack, interactive=True, channel_interval_seconds=0.05)
    await drain_until(d, lambda: len(fake_slack.posts()) == 1, what="the post")
    return d


async def test_a_click_is_applied_once_and_the_message_shows_it(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack, clicks: Clicks
) -> None:
    d = await posted(harness, slack, fake_slack)
    [post] = fake_slack.posts()
    assert post.body["blocks"][-1]["type"] == "actions"

    first = await clicks.click("pulse_ack")
    assert first.status_code == 200, first.text
    again = await clicks.click("pulse_ack")  # Slack delivers the same click twice (row 20)
    assert again.status_code == 200
    row = await harness.row(ALERT)
    assert row.handling["ack_by"] == "U0JANE001"
    assert row.handling_version == 1
    await settle(harness, d)
    [edit] = fake_slack.updates()
    assert "Acknowledged by <@U0JANE001>" in json.dumps(edit.body["blocks"])
    assert "pulse_ack" not in json.dumps(edit.body["blocks"])
    assert_valid_blocks(edit.body["blocks"])
    async with harness.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(slack_interactions))).scalar() == 1

    # Someone else acknowledges later: the first acknowledgement stands, nothing is edited.
    await clicks.click("pulse_ack", user="U0BOB0001", action_ts="1733047300.000200")
    assignment = await clicks.click("pulse_assign", user="U0BOB0001", action_ts="1733047400.000300")
    assert assignment.status_code == 200
    await settle(harness, d)
    assert len(fake_slack.updates()) == 2
    assert "Assigned to <@U0BOB0001>" in json.dumps(fake_slack.updates()[-1].body["blocks"])
    assert (await harness.row(ALERT)).status == "sent"

    # The alert history shows who did what.
    listed = (await clicks.client.get("/v1/alerts", headers={"Authorization": "Bearer admin"})).json()["alerts"]
    assert listed[0]["handling"]["ack_by"] == "U0JANE001"
    assert listed[0]["handling"]["assignee"] == "U0BOB0001"
    assert fake_slack.violations == []


async def test_unsigned_or_stale_clicks_get_401_and_change_nothing(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack, clicks: Clicks
) -> None:
    await posted(harness, slack, fake_slack)
    wrong = await clicks.click("pulse_ack", secret="not-the-secret")
    stale = await clicks.click("pulse_ack", timestamp=int(time.time()) - 600)
    assert (wrong.status_code, stale.status_code) == (401, 401)
    assert "does not match" in wrong.text
    bare = await clicks.client.post("/v1/slack/interactions", content=b"payload=%7B%7D")
    assert bare.status_code == 401
    row = await harness.row(ALERT)
    assert row.handling == {}
    assert row.status == "sent"
    async with harness.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(slack_interactions))).scalar() == 0


async def test_an_edit_made_while_a_click_arrives_is_made_again(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack, clicks: Clicks
) -> None:
    d = await posted(harness, slack, fake_slack)
    # The comment changes (an edit is due) and, while that edit is claimed, a click arrives.
    await harness.feed(answer("r1", 2, comment="Exports keep timing out, and support is slow",
                              revised=datetime.now(UTC) + timedelta(seconds=1)))
    [claimed] = await d._claim(1)  # the edit's claim, made before the click
    await clicks.click("pulse_snooze")
    await d._process(claimed)  # the edit, rendered before the click, completes after it
    assert (await harness.row(ALERT)).status == "update_pending", "the click's change would be lost"
    await settle(harness, d)
    assert "Snoozed by <@U0JANE001>" in json.dumps(fake_slack.updates()[-1].body["blocks"])
