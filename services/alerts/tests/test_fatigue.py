"""Against fatigue: silences, quiet hours and cooldowns as one pure decision with an injected clock, then
through the dispatcher and the silences API."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import httpx
import pytest

from alerts.config import ConfigError, parse_config
from alerts.domain.fatigue import Candidate, Post, QuietHours, Silence, Silenced, Suppressed, Wait, decide
from alerts.domain.routing import route
from alerts.slack import SlackClient
from alerts_fixtures import Harness, answer, dispatcher, drain_until, settle
from pulse_shared.testing.fake_slack import FakeSlack

NOW = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)  # 22:30 in Berlin
NIGHT = QuietHours(time(20, 0), time(8, 0), "Europe/Berlin")


def candidate(**kw: object) -> Candidate:
    options: dict[str, object] = {"account_id": "acme", "rule": "detractor", "labels": {"plan": "enterprise"}}
    options.update(kw)
    return Candidate(**options)  # type: ignore[arg-type]


def test_a_matching_active_silence_wins() -> None:
    hour = timedelta(hours=1)
    by_account = Silence(1, NOW - hour, NOW + hour, account_id="acme")
    assert decide(candidate(), silences=[by_account], last_posted_at=None, now=NOW) == Silenced(1)
    by_labels = Silence(2, NOW - hour, NOW + hour, labels={"plan": "Enterprise"})
    assert decide(candidate(), silences=[by_labels], last_posted_at=None, now=NOW) == Silenced(2)
    other_rule = Silence(3, NOW - hour, NOW + hour, rule="keywords")
    ended = Silence(4, NOW - 2 * hour, NOW - hour, account_id="acme")
    not_yet = Silence(5, NOW + hour, NOW + 2 * hour, account_id="acme")
    assert decide(candidate(), silences=[other_rule, ended, not_yet], last_posted_at=None, now=NOW) == Post()


@pytest.mark.parametrize(("now", "until"), [
    (NOW, datetime(2026, 12, 2, 7, 0, tzinfo=UTC)),  # 22:30 Berlin → 08:00 Berlin (07:00 UTC)
    (datetime(2026, 12, 2, 5, 0, tzinfo=UTC), datetime(2026, 12, 2, 7, 0, tzinfo=UTC)),  # 06:00 Berlin
    (datetime(2026, 12, 2, 7, 0, tzinfo=UTC), None),  # 08:00 Berlin: over
    (datetime(2026, 12, 2, 12, 0, tzinfo=UTC), None),
])
def test_quiet_hours_hold_alerts_until_they_end_across_midnight(now: datetime, until: datetime | None) -> None:
    decision = decide(candidate(quiet_hours=NIGHT), silences=[], last_posted_at=None, now=now)
    assert decision == (Wait(until) if until else Post())


def test_a_daytime_window_and_the_cooldown() -> None:
    lunch = QuietHours(time(12, 0), time(13, 0), "UTC")
    assert decide(candidate(quiet_hours=lunch), silences=[], last_posted_at=None,
                  now=datetime(2026, 12, 1, 12, 30, tzinfo=UTC)) == Wait(datetime(2026, 12, 1, 13, 0, tzinfo=UTC))
    cooled = candidate(cooldown=timedelta(minutes=30))
    assert decide(cooled, silences=[], last_posted_at=NOW - timedelta(minutes=10), now=NOW) == Suppressed(
        NOW - timedelta(minutes=10))
    assert decide(cooled, silences=[], last_posted_at=NOW - timedelta(minutes=31), now=NOW) == Post()
    assert decide(cooled, silences=[], last_posted_at=None, now=NOW) == Post()


def test_quiet_hours_and_cooldown_are_route_settings_with_clear_errors() -> None:
    config = parse_config("""
routes:
  receivers: [owner]
  quiet_hours: {start: "20:00", end: "08:00", tz: Europe/Berlin}
  cooldown: 30m
""")
    [owner] = route(config.routes, rule="detractor", severity="warning", labels={})
    assert owner.cooldown == 1800
    assert owner.quiet_hours is not None
    assert owner.quiet_hours.tz == "Europe/Berlin"
    for bad, message in (('quiet_hours: {start: "25:00", end: "08:00"}', "is not a time of day"),
                         ('quiet_hours: {start: "20:00", end: "08:00", tz: Mars/Base}', "unknown time zone"),
                         ("cooldown: forever", "is not a duration")):
        with pytest.raises(ConfigError, match=message):
            parse_config(f"routes:\n  receivers: [owner]\n  {bad}\n")


async def test_a_silenced_alert_is_stored_visible_and_never_posted(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack, admin: httpx.AsyncClient
) -> None:
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    made = await admin.post("/v1/silences", json={"account_id": "acme", "ends_at": until, "author": "jane",
                                                 "comment": "migration weekend, we know"})
    assert made.status_code == 201, made.text
    silence = made.json()
    for bad, why in (({"ends_at": until, "author": "j", "comment": "c"}, "at least one matcher"),
                     ({"rule": "x", "ends_at": "2020-01-01T00:00:00Z", "author": "j", "comment": "c"}, "after"),
                     ({"rule": "x", "author": "j", "comment": "c"}, "either ends_at or duration"),
                     ({"rule": "x", "ends_at": until, "duration": "2h", "author": "j", "comment": "c"}, "either"),
                     ({"rule": "x", "duration": "2 hours", "author": "j", "comment": "c"}, "not a duration")):
        refused = await admin.post("/v1/silences", json=bad)
        assert refused.status_code == 422, bad
        assert why in refused.text, refused.text
    # A duration instead of an end: two hours from now.
    timed = await admin.post("/v1/silences", json={"rule": "nps-drop", "duration": "2h", "author": "j", "comment": "c"})
    assert timed.status_code == 201, timed.text
    window = datetime.fromisoformat(timed.json()["ends_at"]) - datetime.fromisoformat(timed.json()["starts_at"])
    assert window == timedelta(hours=2)
    assert (await admin.delete(f"/v1/silences/{timed.json()['id']}")).status_code == 200
    await harness.feed(answer("r1", 2, comment="Broken again"), answer("r2", 2, comment="Other", account="globex"))
    d = dispatcher(harness, slack)
    await settle(harness, d)
    assert [p.body["metadata"]["event_payload"]["alert_id"] for p in fake_slack.posts()] == ["detractor:globex:r2"]
    silenced = (await admin.get("/v1/alerts", params={"status": "silenced"})).json()["alerts"]
    assert [a["alert_id"] for a in silenced] == ["detractor:acme:r1"]
    assert silenced[0]["last_error"] == f"silence {silence['id']}"
    assert [s["id"] for s in (await admin.get("/v1/silences")).json()] == [silence["id"]]
    assert (await admin.delete(f"/v1/silences/{silence['id']}")).status_code == 200
    assert (await admin.get("/v1/silences")).json() == []
    assert len((await admin.get("/v1/silences", params={"all": "true"})).json()) == 2  # both ended, kept
    assert (await admin.delete("/v1/silences/999")).status_code == 404
    # After the silence, the account's alerts go out again.
    await harness.feed(answer("r3", 1, comment="Still broken"))
    await settle(harness, d)
    assert len(fake_slack.posts()) == 2


async def test_quiet_hours_delay_and_the_cooldown_suppresses(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    now = datetime.now(UTC)
    start, end = (now - timedelta(minutes=5)).time(), (now + timedelta(minutes=5)).time()
    harness.configure(f"""
routes:
  receivers: [owner]
  quiet_hours: {{start: "{start.strftime('%H:%M:%S')}", end: "{end.strftime('%H:%M:%S')}", tz: UTC}}
""")
    await harness.feed(answer("r1", 2, comment="Late at night"))
    d = dispatcher(harness, slack)
    await d.deliver_due()
    row = await harness.row("detractor:acme:r1")
    assert row.status == "pending"
    assert row.last_error == "quiet hours"
    assert abs((row.next_attempt_at - now.replace(microsecond=0) - timedelta(minutes=5)).total_seconds()) < 2
    assert fake_slack.posts() == []

    harness.configure("""
routes:
  receivers: [owner]
  cooldown: 1h
""")
    await harness.feed(answer("r2", 2, comment="First"), answer("r3", 1, comment="Second, a minute later"))
    await drain_until(d, lambda: len(fake_slack.posts()) == 1, what="the first post")
    # (r1 is still held by its quiet hours meanwhile.)
    async def one_suppressed() -> bool:
        statuses = {(await harness.row(f"detractor:acme:{r}")).status for r in ("r2", "r3")}
        return statuses == {"sent", "suppressed"}

    # Whichever of the two goes first is posted; the other falls in its cooldown.
    await drain_until(d, one_suppressed, what="one posted, one suppressed")
    await settle_except_quiet(harness, d)
    assert len(fake_slack.posts()) == 1


async def settle_except_quiet(harness: Harness, d: object) -> None:
    """Run the dispatcher until only the alert held by quiet hours is still pending."""
    async def quiet() -> bool:
        return [r.alert_id for r in await harness.rows() if r.status in ("pending", "update_pending")] == [
            "detractor:acme:r1"]

    await drain_until(d, quiet, what="everything but the quiet-hours alert to settle")  # type: ignore[arg-type]




async def test_silences_hold_in_log_only_mode_too(harness: Harness, admin: httpx.AsyncClient,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    made = await admin.post("/v1/silences", json={"rule": "detractor", "ends_at": until, "author": "jane",
                                                 "comment": "testing"})
    assert made.status_code == 201
    await harness.feed(answer("r1", 2, comment="Broken"))
    d = dispatcher(harness, None)
    with caplog.at_level("INFO"):
        await settle(harness, d)
    assert (await harness.row("detractor:acme:r1")).status == "silenced"
    assert not any(r.getMessage().startswith("ALERT") for r in caplog.records)
