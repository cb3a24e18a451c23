"""What alerts knows about accounts: score summaries, significant drops, owners set by the admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from alerts.main import build_app
from alerts.settings import AlertsSettings
from alerts.slack import SlackClient
from alerts_fixtures import CHANNEL, Harness, answer, dispatcher, settle
from pulse_shared.events import ScoreSummary, ScoreUpdated
from pulse_shared.testing.fake_slack import FakeSlack

DROP_CONFIG = """
rules:
  - {name: detractor, type: detractor}
  - {name: nps-drop, type: significant_drop, metric: nps, window: 30d, min_n: 20}
routes: {receivers: [owner]}
"""


def scores(version: int, *, delta: float | None, significant: bool, n: int = 40, account: str = "acme",
           value: float = 10.0) -> ScoreUpdated:
    summaries = (
        ScoreSummary(metric="nps", window="30d", n=n, value=value, ci_low=value - 15, ci_high=value + 15,
                     delta=delta, significant=significant),
        ScoreSummary(metric="nps", window="90d", n=n * 3, value=value + 5, ci_low=value - 5, ci_high=value + 15,
                     delta=-1.0, significant=False),
    )
    return ScoreUpdated(account_id=account, version=version, computed_at=datetime.now(UTC), scores=summaries)


async def test_a_significant_drop_fires_once_per_drop_and_not_on_noise(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    harness.configure(DROP_CONFIG)
    await harness.feed(scores(1, delta=-4.0, significant=False))  # noise
    await harness.feed(scores(2, delta=-25.0, significant=True, n=12))  # too few answers
    assert await harness.rows() == []
    await harness.feed(scores(3, delta=-25.0, significant=True), scores(4, delta=-27.0, significant=True))
    await harness.feed(scores(4, delta=-27.0, significant=True))  # a redelivery
    await harness.feed(scores(5, delta=-30.0, significant=True))  # the same drop, deeper
    assert [r.alert_id for r in await harness.rows()] == ["nps-drop:acme:drop-v3"]
    await harness.feed(scores(6, delta=-2.0, significant=False))  # recovered
    await harness.feed(scores(7, delta=-22.0, significant=True))  # a new drop
    assert [r.alert_id for r in await harness.rows()] == ["nps-drop:acme:drop-v3", "nps-drop:acme:drop-v7"]
    await settle(harness, dispatcher(harness, slack))
    assert sorted(p.body["text"] for p in fake_slack.posts()) == ["NPS drop: acme \u221222 over 30d",
                                                                  "NPS drop: acme \u221225 over 30d"]


async def test_an_old_score_event_cannot_start_a_drop_again(harness: Harness) -> None:
    harness.configure(DROP_CONFIG)
    await harness.feed(scores(5, delta=-25.0, significant=True), scores(6, delta=0.0, significant=False))
    await harness.feed(scores(5, delta=-25.0, significant=True))  # replayed out of order
    assert [r.alert_id for r in await harness.rows()] == ["nps-drop:acme:drop-v5"]


async def test_the_message_carries_the_accounts_latest_90_day_nps(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    await harness.feed(scores(1, delta=None, significant=False, value=20.0))
    await harness.feed(answer("r1", 2, properties={"account_name": "Acme Inc", "plan": "pro"}))
    await settle(harness, dispatcher(harness, slack, crm_url_template="https://crm.example/a/{account_id}"))
    blocks = str(fake_slack.posts()[0].body["blocks"])
    assert "Account NPS, 90 days" in blocks
    assert "+25 (n = 120, 95 % CI +15 to +35)" in blocks
    assert "Acme Inc (`acme`)" in blocks
    assert "<https://crm.example/a/acme|Open in CRM>" in blocks
    assert "plan: pro" in blocks


@pytest.fixture
async def admin_api(harness: Harness, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = AlertsSettings(DATABASE_URL=database_url, ALERTS_ADMIN_TOKEN="s3cret")  # type: ignore[call-arg]
    app, _runtime = build_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alerts") as client:
        yield client


async def test_the_admin_api_sets_an_owner_that_routes_the_next_alert(
    harness: Harness, admin_api: httpx.AsyncClient, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    assert (await admin_api.put("/v1/accounts/acme/owner", json={"email": "csm@example.com"})).status_code == 401
    wrong = await admin_api.put("/v1/accounts/acme/owner", json={"email": "csm@example.com"},
                                headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    bad = await admin_api.put("/v1/accounts/acme/owner", json={"email": "not-an-email"}, headers=auth)
    assert bad.status_code == 422
    assert "not an email address" in bad.text
    assert (await admin_api.get("/v1/accounts/acme/owner", headers=auth)).status_code == 404
    put = await admin_api.put("/v1/accounts/acme/owner", json={"email": "csm@example.com", "name": "Casey"},
                              headers=auth)
    assert put.status_code == 200, put.text
    got = (await admin_api.get("/v1/accounts/acme/owner", headers=auth)).json()
    assert (got["email"], got["name"], got["source"]) == ("csm@example.com", "Casey", "admin")

    fake_slack.users_by_email["csm@example.com"] = "U777"
    await harness.feed(answer("r1", 1))
    await settle(harness, dispatcher(harness, slack))
    assert [p.body["channel"] for p in fake_slack.posts()] == ["D777"]

    listed = (await admin_api.get("/v1/alerts", params={"account_id": "acme", "status": "sent"}, headers=auth)).json()
    assert [(a["alert_id"], a["channel"], a["receiver"]) for a in listed["alerts"]] == [
        ("detractor:acme:r1", "D777", "owner")]
    assert (await admin_api.get("/v1/alerts", params={"cursor": "garbage"}, headers=auth)).status_code == 400


async def test_the_alert_list_pages_with_a_cursor(harness: Harness, admin_api: httpx.AsyncClient) -> None:
    await harness.feed(*[answer(f"r{i}", 1) for i in range(5)])
    auth = {"Authorization": "Bearer s3cret"}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await admin_api.get("/v1/alerts", params=params, headers=auth)).json()
        seen.extend(a["alert_id"] for a in page["alerts"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"detractor:acme:r{i}" for i in range(5))
    assert len(seen) == 5


def test_the_default_channel_must_be_an_id() -> None:
    with pytest.raises(ValueError, match="is not a Slack channel id"):
        AlertsSettings(SLACK_DEFAULT_CHANNEL="#cs-alerts")  # type: ignore[call-arg]
    assert AlertsSettings(SLACK_DEFAULT_CHANNEL=CHANNEL).slack_default_channel == CHANNEL  # type: ignore[call-arg]
