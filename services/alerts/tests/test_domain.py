"""Alerts' pure core: configuration, rules, keywords, routing, messages and delivery decisions (no I/O)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from alerts.config import AlertsConfig, DetractorRule, DropRule, parse_config
from alerts.domain.delivery import Delivered, Failed, Paced, Retry, RowState, after_call, next_action
from alerts.domain.keywords import matched_keywords
from alerts.domain.message import AccountContext, AlertFacts, chunks, clip, escape, render
from alerts.domain.routing import route
from alerts.domain.rules import drop_transition, fired_for_answer, in_drop, is_detractor
from alerts.slack import SlackResult, find_alert
from alerts_fixtures import answer
from pulse_shared.events import ResponseSubmitted, ScoreSummary
from pulse_shared.settings import ConfigError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]


# --- configuration --------------------------------------------------------------------------------------

def test_without_a_file_detractors_go_to_the_owner() -> None:
    config = AlertsConfig()
    assert [(r.name, r.type) for r in config.rules] == [("detractor", "detractor")]
    assert route(config.routes, rule="detractor", severity="warning", labels={})[0].key == "owner"


def test_the_shipped_dev_file_is_valid() -> None:
    config = parse_config((ROOT / "deploy" / "dev" / "alerts.yaml").read_text())
    assert {r.type for r in config.rules} == {"detractor", "keywords", "significant_drop"}


@pytest.mark.parametrize(("text", "expected"), [
    ("rules:\n  - name: a\n    type: keywords\n    keywords: []\n",
     "alerts.yaml:4: rules[0].keywords: Tuple should have at least 1 item"),
    ("rules:\n  - name: a\n    type: detractor\n    severity: loud\n",
     "alerts.yaml:4: rules[0].severity: Input should be 'info', 'warning' or 'critical'"),
    ("rules:\n  - {name: a, type: sentiment}\n", "alerts.yaml:2: rules[0]: Input tag 'sentiment' found"),
    ("routes:\n  receivers: [owner]\n  channel: '#cs'\n", "alerts.yaml:3: routes.channel: Value error, '#cs' is not"),
    ("routes:\n  receivers: [owner]\n  routes:\n    - match: {rule: nope}\n      receivers: [owner]\n",
     "alerts.yaml:1: (top level): Value error, routes match unknown rules: nope"),
    ("rules:\n  - {name: a, type: detractor}\n  - {name: a, type: keywords, keywords: [x]}\n",
     "rule name 'a' is used twice"),
    ("routes:\n  receivers: [pager]\n", "alerts.yaml:2: routes.receivers: Value error, receiver 'pager'"),
    ("routes:\n  receivers: [owner]\n  contine: true\n", "alerts.yaml:3: routes.contine: Extra inputs"),
    ("rules: [\n", "alerts.yaml:2: not valid YAML"),
])
def test_a_bad_configuration_names_the_line_and_the_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="alerts.yaml")
    assert expected in str(caught.value)


def test_a_bad_configuration_file_stops_the_service_at_start_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text("rules:\n  - name: churn\n    type: keywords\n    keywords: [cancel]\n    severity: urgent\n")
    env = {"ALERTS_CONFIG_FILE": str(bad), "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
           "PATH": "/usr/bin:/bin"}
    for args in (["check-config"], []):
        done = subprocess.run([sys.executable, "-m", "alerts", *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 2, done.stderr
        assert f"{bad}:5: rules[0].severity: Input should be 'info', 'warning' or 'critical'" in done.stderr
        assert "Traceback" not in done.stderr
    good = tmp_path / "good.yaml"
    good.write_text("rules: [{name: d, type: detractor}]\n")
    done = subprocess.run([sys.executable, "-m", "alerts", "check-config"],
                          env={**env, "ALERTS_CONFIG_FILE": str(good)}, capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout.strip()) == (0, f"{good}: 1 rules (d), valid")


# --- rules ----------------------------------------------------------------------------------------------

def _scaled(survey: str, score: int, lo: int, hi: int) -> ResponseSubmitted:
    return ResponseSubmitted(response_id="r", account_id="a", survey_type=survey, score=score,  # type: ignore[arg-type]
                             scale_min=lo, scale_max=hi, submitted_at=NOW, revised_at=NOW)


@pytest.mark.parametrize(("survey", "lo", "hi", "alerting", "quiet"), [
    ("nps", 0, 10, [0, 6], [7, 10]),
    ("csat", 1, 5, [1, 2], [3, 5]),
    ("ces", 1, 7, [1, 3], [4, 7]),
    ("csat", 1, 10, [1, 4], [6, 10]),  # another scale: the standard categories, scaled
])
def test_default_detractor_thresholds_are_scale_aware(survey: str, lo: int, hi: int, alerting: list[int],
                                                      quiet: list[int]) -> None:
    rule = DetractorRule(name="d", type="detractor")
    for score in alerting:
        assert is_detractor(rule, _scaled(survey, score, lo, hi)), (survey, score)
    for score in quiet:
        assert not is_detractor(rule, _scaled(survey, score, lo, hi)), (survey, score)


def test_configured_thresholds_are_on_the_default_scale_and_rescaled() -> None:
    rule = DetractorRule(name="d", type="detractor", max_score={"csat": 2, "nps": 4})
    assert is_detractor(rule, _scaled("csat", 2, 1, 5))
    assert not is_detractor(rule, _scaled("csat", 3, 1, 5))
    # CSAT 2 of 1-5 is a quarter up the scale: 3.25 of 1-10.
    assert is_detractor(rule, _scaled("csat", 3, 1, 10))
    assert not is_detractor(rule, _scaled("csat", 4, 1, 10))
    assert not is_detractor(rule, _scaled("nps", 5, 0, 10))


KEYWORDS = ("cancel", "cancel*", "résilier", "refund", "switch", "moving to")


@pytest.mark.parametrize(("comment", "found"), [
    ("I want to CANCEL my plan", ("cancel", "cancel*")),
    ("On va résilier si ça continue", ("résilier",)),
    ("RESILIER", ("résilier",)),  # accents ignored both ways
    ("Cancellation is the only option", ("cancel*",)),  # "cancel" is a whole word, "cancel*" a prefix
    ("Please process my refund; we'll switch vendors", ("refund", "switch")),
    ("switchboard issues", ()),
    ("moving\n  to a competitor soon", ("moving to",)),
    ("", ()),
])
def test_keywords_match_whole_words_ignoring_case_and_accents(comment: str, found: tuple[str, ...]) -> None:
    assert matched_keywords(KEYWORDS, comment) == found


def test_rules_limited_by_segment_labels() -> None:
    config = parse_config("""
rules:
  - {name: ent, type: detractor, labels: {plan: Enterprise}}
  - {name: words, type: keywords, keywords: [refund], labels: {region: eu}}
""")
    hits = fired_for_answer(config.rules, answer("r", 3, comment="refund", properties={"plan": "enterprise"}))
    assert [h.rule for h in hits] == ["ent"]
    hits = fired_for_answer(config.rules, answer("r", 9, comment="refund", properties={"region": "eu"}))
    assert [(h.rule, h.keywords) for h in hits] == [("words", ("refund",))]


def _summary(delta: float | None, *, significant: bool, n: int = 50, window: str = "30d") -> ScoreSummary:
    return ScoreSummary(metric="nps", window=window, n=n, value=10.0, ci_low=-5.0, ci_high=25.0, delta=delta,
                        delta_ci_low=None, delta_ci_high=None, significant=significant)


def test_a_significant_drop_needs_a_fall_significance_and_enough_answers() -> None:
    rule = DropRule(name="drop", type="significant_drop", min_n=30)
    assert in_drop(rule, [_summary(-20, significant=True)]) is not None
    assert in_drop(rule, [_summary(-20, significant=False)]) is None  # noise
    assert in_drop(rule, [_summary(+20, significant=True)]) is None  # a rise
    assert in_drop(rule, [_summary(-20, significant=True, n=29)]) is None
    assert in_drop(rule, [_summary(-20, significant=True, window="90d")]) is None
    assert drop_transition(False, True) == (True, True)
    assert drop_transition(True, True) == (False, True)
    assert drop_transition(True, False) == (False, False)


# --- routing ----------------------------------------------------------------------------------------------

def test_the_route_tree_first_match_wins_unless_continue_and_channels_are_inherited() -> None:
    config = parse_config("""
rules:
  - {name: d, type: detractor}
  - {name: k, type: keywords, keywords: [x], severity: critical}
routes:
  receivers: [owner]
  channel: C0ROOT001
  routes:
    - match: {labels: {plan: enterprise}}
      channel: C0ENTERP1
      routes:
        - match: {severity: critical}
          receivers: [owner, "channel:C0ESCAL01"]
    - match: {rule: k}
      receivers: ["channel:C0KEYWD01"]
      continue: true
    - match: {rule: k}
      receivers: ["channel:C0SECND01"]
    - match: {rule: k}
      receivers: ["channel:C0NEVER01"]
""")
    def keys(rule: str, severity: str, **labels: str) -> list[tuple[str, str | None]]:
        return [(r.key, r.channel) for r in route(config.routes, rule=rule, severity=severity, labels=labels)]

    assert keys("d", "warning") == [("owner", "C0ROOT001")]
    assert keys("d", "warning", plan="enterprise") == [("owner", "C0ENTERP1")]
    assert keys("k", "critical", plan="enterprise") == [("owner", "C0ENTERP1"), ("channel:C0ESCAL01", "C0ESCAL01")]
    assert keys("k", "critical") == [("channel:C0KEYWD01", "C0KEYWD01"), ("channel:C0SECND01", "C0SECND01")]


# --- messages ---------------------------------------------------------------------------------------------

def assert_valid_blocks(blocks: list[dict[str, Any]]) -> None:
    """Slack's own Block Kit models accept every block, within Slack's limits."""
    assert len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
        assert parsed.to_dict() == block
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000


FACTS = AlertFacts(account_id="acme-42", account_name="Acme <Corp>", response_id="r1", survey_type="nps", score=3,
                   scale_min=0, scale_max=10, sentiment="detractor",
                   comment="<!channel> see <https://evil|here> & more",
                   respondent_email="jane@acme.example", labels={"plan": "enterprise", "survey_type": "nps"})
CONTEXT = AccountContext(scores=(ScoreSummary(metric="nps", window="90d", n=48, value=12.4, ci_low=-4.2, ci_high=27.9,
                                              delta=-8.0, significant=True),),
                         crm_url="https://crm.example/accounts/acme-42")


def test_a_message_a_csm_can_act_on() -> None:
    text, blocks = render(FACTS, owner_mention="<@U123>", context=CONTEXT)
    assert_valid_blocks(blocks)
    flat = str(blocks)
    assert "<!channel>" not in flat
    assert "&lt;!channel&gt;" in flat
    assert "Acme &lt;Corp&gt;" in flat
    for expected in ("NPS 3 of 0", "Detractor", "jane@acme.example", "plan: enterprise",
                     "+12 (n = 48, 95 % CI \u22124 to +28), \u22128 vs the previous 90d (significant)",
                     "<https://crm.example/accounts/acme-42|Open in CRM>", "Rule `detractor`", "<@U123>"):
        assert expected in flat, expected
    assert text.startswith("Detractor: Acme <Corp> gave NPS 3/10") is False  # the fallback text is escaped too
    assert text.startswith("Detractor: Acme &lt;Corp&gt; gave NPS 3/10")


def test_a_ces_answer_is_named_in_the_api_s_words() -> None:
    ces = FACTS.model_copy(update={"survey_type": "ces", "score": 2, "scale_min": 1, "scale_max": 7,
                                   "sentiment": "dissatisfied"})
    text, blocks = render(ces, owner_mention=None, context=None)
    assert "Difficult" in str(blocks)
    assert "Dissatisfied" not in str(blocks)
    assert text.startswith("Difficult: ")


def test_a_long_comment_continues_over_sections_and_is_never_cut_inside_an_escape() -> None:
    comment = ("Support & billing <3 " * 240)[:5000]
    _, blocks = render(FACTS.model_copy(update={"comment": comment}), owner_mention=None, context=CONTEXT)
    assert_valid_blocks(blocks)
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    body = "".join(s.removeprefix("*Comment*\n") for s in sections if "Support" in s)
    assert body == escape(comment)  # nothing dropped, nothing clipped
    assert len([s for s in sections if "Support" in s]) >= 3
    for piece in chunks(escape(comment), 100):
        assert piece.count("&") == piece.count(";")


def test_clipping_never_leaves_half_an_escape() -> None:
    for limit in range(1, 30):
        clipped = clip(escape("a" * 10 + "&<>" * 10), limit)
        assert len(clipped) <= limit
        body = clipped.removesuffix("…")
        assert body.count("&") == body.count(";"), (limit, clipped)


def test_drop_and_erased_messages() -> None:
    drop = AlertFacts(kind="drop", rule="nps-drop", rule_type="significant_drop", account_id="acme",
                      drop=_summary(-22.0, significant=True), source="scoring")
    text, blocks = render(drop, owner_mention=None, context=CONTEXT)
    assert_valid_blocks(blocks)
    assert text == "NPS drop: acme \u221222 over 30d"
    erased = FACTS.model_copy(update={"comment": None, "respondent_email": None, "erased": True})
    _, blocks = render(erased, owner_mention=None, context=None)
    assert_valid_blocks(blocks)
    assert "jane" not in str(blocks)
    assert "erased on request" in str(blocks)


# --- delivery decisions ------------------------------------------------------------------------------------

def test_next_action() -> None:
    assert next_action(RowState("pending", None, None), slack_configured=False) == "log"
    assert next_action(RowState("pending", None, None), slack_configured=True) == "post"
    assert next_action(RowState("pending", NOW, None), slack_configured=True) == "read_back"
    assert next_action(RowState("update_pending", NOW, "1.2"), slack_configured=True) == "update"
    assert next_action(RowState("update_pending", None, None), slack_configured=True) == "post"  # logged before
    assert next_action(RowState("pending", None, None, withdrawn=True), slack_configured=True) == "withdraw"
    assert next_action(RowState("pending", NOW, None, withdrawn=True), slack_configured=True) == "read_back"


def test_what_a_slack_answer_means() -> None:
    def outcome(result: SlackResult, attempts: int = 0) -> object:
        return after_call(result, channel="C1", attempts=attempts, max_attempts=3, now=NOW, base_seconds=2)

    assert outcome(SlackResult(ok=True, ts="1.5", channel="D1")) == Delivered("1.5", "D1")
    assert outcome(SlackResult(ok=False, error="ratelimited", retry_after=3)) == Paced(NOW + timedelta(seconds=3))
    assert outcome(SlackResult(ok=False, error="channel_not_found")) == Failed("channel_not_found", "failed")
    assert outcome(SlackResult(ok=False, error="http_500", uncertain=True), 1) == Retry(
        NOW + timedelta(seconds=4), "http_500", in_doubt=True)
    assert outcome(SlackResult(ok=False, error="transport: ConnectError"), 2) == Failed("transport: ConnectError",
                                                                                        "gave_up")
    # An uncertain failure is never given up without reading back first.
    assert isinstance(outcome(SlackResult(ok=False, error="http_500", uncertain=True), 2), Retry)


def test_find_alert_reads_the_metadata() -> None:
    messages = [{"ts": "1.1", "metadata": {"event_type": "other", "event_payload": {"alert_id": "a"}}},
                {"ts": "1.2"},
                {"ts": "1.3", "metadata": {"event_type": "pulse_alert", "event_payload": {"alert_id": "a"}}}]
    assert find_alert(messages, "a") == "1.3"
    assert find_alert(messages, "b") is None
