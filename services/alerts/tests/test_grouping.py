"""Grouping (group_wait, group_interval per account and rule): the pure placement, the group message, and
bursts through the store and the dispatcher against the Slack fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from test_domain import assert_valid_blocks

from alerts.config import ConfigError, parse_config
from alerts.domain.grouping import Join, Lead, Leader, is_open, place
from alerts.domain.message import MAX_GROUP_ITEMS, AlertFacts, render
from alerts.domain.routing import route
from alerts.slack import SlackClient
from alerts_fixtures import Harness, answer, dispatcher, drain_until, settle
from pulse_shared.events import RespondentErased
from pulse_shared.testing.fake_slack import FakeSlack

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WAIT = timedelta(seconds=30)
FIVE_MIN = timedelta(minutes=5)
GROUPING = """
routes:
  receivers: [owner]
  group_wait: 30s
  group_interval: 5m
"""


# --- the pure placement ---------------------------------------------------------------------------------

def test_the_first_alert_leads_and_waits_for_group_wait() -> None:
    assert place(NOW, group_wait=WAIT, leaders=[], now=NOW) == Lead(NOW + WAIT)
    # A comment hold longer than the wait keeps its own due time.
    assert place(NOW + timedelta(seconds=60), group_wait=WAIT, leaders=[], now=NOW) == Lead(NOW + timedelta(
        seconds=60))


def test_later_alerts_join_a_waiting_group_or_a_posted_one_within_group_interval() -> None:
    waiting = Leader("a1", "pending", None, FIVE_MIN)
    assert place(NOW, group_wait=WAIT, leaders=[waiting], now=NOW) == Join("a1")
    posted = Leader("a2", "sent", NOW - timedelta(minutes=4), FIVE_MIN)
    assert place(NOW, group_wait=WAIT, leaders=[posted], now=NOW) == Join("a2")
    for status in ("update_pending", "logged"):
        assert is_open(Leader("a", status, NOW - timedelta(minutes=1), FIVE_MIN), NOW)
    # After group_interval the next alert leads a new group.
    stale = Leader("a3", "sent", NOW - timedelta(minutes=5), FIVE_MIN)
    assert place(NOW, group_wait=WAIT, leaders=[stale], now=NOW) == Lead(NOW + WAIT)


@pytest.mark.parametrize("status", ["silenced", "suppressed", "failed", "withdrawn", "grouped"])
def test_a_group_whose_leader_did_not_go_out_takes_nobody(status: str) -> None:
    leader = Leader("a1", status, NOW - timedelta(seconds=5), FIVE_MIN)
    assert not is_open(leader, NOW)
    assert place(NOW, group_wait=WAIT, leaders=[leader], now=NOW) == Lead(NOW + WAIT)


def test_the_newest_open_group_is_joined() -> None:
    leaders = [Leader("old-but-closed", "failed", None, FIVE_MIN), Leader("newest-open", "sent", NOW, FIVE_MIN),
               Leader("older-open", "pending", None, FIVE_MIN)]
    assert place(NOW, group_wait=WAIT, leaders=leaders, now=NOW) == Join("newest-open")


def test_grouping_is_a_route_setting_inherited_with_a_default_interval() -> None:
    config = parse_config("""
routes:
  receivers: [owner]
  group_wait: 30s
  routes:
    - match: {rule: detractor}
      receivers: ["channel:C0TEAM0001"]
      group_interval: 10m
""")
    [team] = route(config.routes, rule="detractor", severity="warning", labels={})
    assert (team.group_wait, team.group_interval) == (30, 600)
    plain = parse_config("routes: {receivers: [owner]}")
    [owner] = route(plain.routes, rule="detractor", severity="warning", labels={})
    assert (owner.group_wait, owner.group_interval) == (None, None)
    defaulted = parse_config("routes: {receivers: [owner], group_wait: 1m}")
    assert route(defaulted.routes, rule="detractor", severity="warning", labels={})[0].group_interval == 300
    with pytest.raises(ConfigError, match=r"alerts config:4: routes.group_wait: .*is not a duration"):
        parse_config("routes:\n  receivers: [owner]\n\n  group_wait: soon\n")


# --- the group message ----------------------------------------------------------------------------------

def facts(i: int, **kw: object) -> AlertFacts:
    options: dict[str, object] = {
        "account_id": "acme", "account_name": "Acme & Co", "response_id": f"r{i}", "survey_type": "nps",
        "score": i % 7, "scale_min": 0, "scale_max": 10, "sentiment": "detractor", "comment": f"Problem <{i}>",
        "respondent_email": f"user{i}@acme.example", "labels": {"plan": "enterprise"}}
    options.update(kw)
    return AlertFacts(**options)  # type: ignore[arg-type]


def test_a_group_message_lists_every_alert_escaped_within_slack_limits() -> None:
    items = [facts(i) for i in range(5)]
    text, blocks = render(items[0], owner_mention="<@U0OWNER01>", members=items[1:], buttons_for="detractor:acme:r0")
    assert_valid_blocks(blocks)
    assert blocks[0]["text"]["text"] == "5 detractor answers: Acme & Co"
    assert text == "5 detractor answers: Acme &amp; Co, latest: “Problem &lt;4&gt;”"
    body = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b)
    for i in range(5):
        assert f"user{i}@acme.example" in body
        assert f"“Problem &lt;{i}&gt;”" in body
        assert f"Response `r{i}`" in body
    assert blocks[-1]["type"] == "actions"
    assert any("5 alerts grouped" in e["text"] for b in blocks if b["type"] == "context" for e in b["elements"])


def test_a_huge_group_counts_what_it_cannot_list_and_marks_changed_answers() -> None:
    items = [facts(i, comment="é" * 5000) for i in range(80)]
    items[3] = facts(3, withdrawn=True)
    _text, blocks = render(items[0], owner_mention=None, members=items[1:], buttons_for="detractor:acme:r0")
    assert_valid_blocks(blocks)
    listed = [b for b in blocks if b["type"] == "section" and "text" in b and "Response `" in b["text"]["text"]]
    assert len(listed) == MAX_GROUP_ITEMS
    assert any("…and 50 more" in e["text"] for b in blocks if b["type"] == "context" for e in b["elements"])
    assert "no longer fires" in listed[3]["text"]["text"]
    # Every alert withdrawn: the message says so at the top.
    gone = [facts(i, withdrawn=True) for i in range(3)]
    _text, blocks = render(gone[0], owner_mention=None, members=gone[1:])
    assert "no longer fire this rule" in blocks[1]["text"]["text"]


# --- through the store and the dispatcher ------------------------------------------------------------------

async def test_twenty_detractors_in_ten_seconds_become_one_message_and_later_ones_edit_it(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack, admin: httpx.AsyncClient
) -> None:
    harness.configure(GROUPING)
    # Twenty answers over ten seconds, placed in time by the store's clock (their group_wait is over now).
    start = datetime.now(UTC) - timedelta(seconds=45)
    for i in range(20):
        harness.now = start + timedelta(seconds=i * 0.5)
        await harness.feed(answer(f"r{i:02d}", i % 7, comment=f"Issue {i}", respondent=f"u{i}",
                                  revised=harness.now))
    d = dispatcher(harness, slack)
    await settle(harness, d)
    [post] = fake_slack.posts()
    assert post.body["text"].startswith("20 detractor answers: acme")
    rows = {r.alert_id: r for r in await harness.rows()}
    leader = rows["detractor:acme:r00"]
    assert leader.status == "sent"
    assert sorted(r.status for r in rows.values()).count("grouped") == 19
    assert {r.group_leader for r in rows.values() if r.status == "grouped"} == {"detractor:acme:r00"}
    [(_channel, message)] = fake_slack.messages_for_alert("detractor:acme:r00")
    assert sum("Issue " in str(b) for b in message.blocks or []) == 20

    # One more within group_interval (a minute after the post): the message is edited, never a second post.
    harness.now = datetime.now(UTC) + timedelta(minutes=1)
    await harness.feed(answer("r20", 3, comment="Issue 20", respondent="u20", revised=harness.now))
    await drain_until(d, lambda: len(fake_slack.updates()) >= 1, what="the edit listing the 21st")
    await settle(harness, d)
    assert len(fake_slack.posts()) == 1
    [(_channel, message)] = fake_slack.messages_for_alert("detractor:acme:r00")
    assert message.text
    assert message.text.startswith("21 detractor answers")
    # The history shows each grouped alert in its leader's message.
    listed = (await admin.get("/v1/alerts", params={"status": "grouped", "limit": 200})).json()["alerts"]
    assert len(listed) == 20
    assert {(a["grouped_into"], a["channel"], a["slack_ts"]) for a in listed} == {
        ("detractor:acme:r00", leader.channel, leader.slack_ts)}

    # After group_interval a new group starts: it waits its own group_wait before going out.
    harness.now = datetime.now(UTC) + timedelta(minutes=6)
    await harness.feed(answer("r21", 2, comment="Still broken", respondent="u21", revised=harness.now))
    new = await harness.row("detractor:acme:r21")
    assert (new.status, new.group_leader) == ("pending", None)
    assert new.next_attempt_at >= harness.now + WAIT - timedelta(seconds=1)
    await d.deliver_due()
    assert len(fake_slack.posts()) == 1


async def test_other_accounts_and_rules_group_apart(harness: Harness, slack: SlackClient,
                                                    fake_slack: FakeSlack) -> None:
    harness.configure("""
rules:
  - {name: detractor, type: detractor}
  - {name: churn, type: keywords, keywords: [cancel]}
routes:
  receivers: [owner]
  group_wait: 30s
""")
    harness.now = datetime.now(UTC) - timedelta(seconds=40)
    await harness.feed(answer("r1", 2, comment="We will cancel"), answer("r2", 1, comment="Bad"),
                       answer("r3", 2, comment="Bad too", account="globex"))
    await settle(harness, dispatcher(harness, slack))
    heads = sorted(p.body["text"].split(",")[0] for p in fake_slack.posts())
    # acme's two detractors in one message; acme's keyword alert and globex's detractor each on their own.
    assert heads == ["2 detractor answers: acme", "Detractor: globex gave NPS 2/10: “Bad too”",
                     "Keywords: acme gave NPS 2/10: “We will cancel”"]


async def test_a_changed_or_erased_member_edits_the_group_and_a_withdrawn_leader_still_carries_it(
    harness: Harness, slack: SlackClient, fake_slack: FakeSlack
) -> None:
    harness.configure(GROUPING)
    harness.now = datetime.now(UTC) - timedelta(seconds=40)
    await harness.feed(answer("r1", 2, comment="Slow", respondent="u1", revised=harness.now),
                       answer("r2", 3, comment="Crashes", respondent="u2", revised=harness.now))
    # The leader's answer is changed to a promoter before the group goes out: the member still goes out.
    await harness.feed(answer("r1", 9, comment="Fine now", respondent="u1", updated=True,
                              revised=datetime.now(UTC) - timedelta(seconds=35)))
    d = dispatcher(harness, slack)
    await settle(harness, d)
    [post] = fake_slack.posts()
    assert "no longer fires" in str(post.body["blocks"])
    assert "Crashes" in str(post.body["blocks"])
    # The member's respondent is erased: the group message is edited to drop them.
    await harness.feed(RespondentErased(account_id="acme", respondent_id="u2"))
    await drain_until(d, lambda: len(fake_slack.updates()) == 1, what="the edit after the erasure")
    [(_c, message)] = fake_slack.messages_for_alert("detractor:acme:r1")
    assert "Crashes" not in str(message.blocks)
    assert "u2@customer.example" not in str(message.blocks)
    assert "erased on request" in str(message.blocks)
    await settle(harness, d)
    assert len(fake_slack.posts()) == 1


async def test_a_group_whose_alerts_are_all_withdrawn_is_never_posted(harness: Harness, slack: SlackClient,
                                                                       fake_slack: FakeSlack) -> None:
    harness.configure(GROUPING)
    harness.now = datetime.now(UTC) - timedelta(seconds=40)
    await harness.feed(answer("r1", 2, comment="Slow", revised=harness.now),
                       answer("r2", 3, comment="Crashes", respondent="u2", revised=harness.now))
    later = datetime.now(UTC) - timedelta(seconds=35)
    await harness.feed(answer("r1", 9, comment="ok", updated=True, revised=later),
                       answer("r2", 10, comment="ok", respondent="u2", updated=True, revised=later))
    await settle(harness, dispatcher(harness, slack))
    assert (await harness.row("detractor:acme:r1")).status == "withdrawn"
    assert fake_slack.posts() == []


async def test_a_group_is_logged_once_and_its_edits_are_logged_in_log_only_mode(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.configure(GROUPING)
    harness.now = datetime.now(UTC) - timedelta(seconds=40)
    await harness.feed(answer("r1", 2, comment="Slow"), answer("r2", 3, comment="Crashes", respondent="u2"))
    d = dispatcher(harness, None)
    with caplog.at_level("INFO"):
        await settle(harness, d)
        harness.now = datetime.now(UTC)
        await harness.feed(answer("r3", 1, comment="Down", respondent="u3"))
        await settle(harness, d)
    logged = [r for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert [(r.getMessage().split(" (")[0], getattr(r, "grouped", None)) for r in logged] == [
        ("ALERT", 2), ("ALERT UPDATED", 3)]
