"""crm-sync's pure core: properties, change detection, pacing, and HubSpot's answers read as decisions."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from crm_sync.connectors.hubspot_answers import batch_answer, pause_for
from crm_sync.domain.pacing import Circuit, RollingBudget, next_daily_reset
from crm_sync.domain.properties import (
    LAST_COMMENT,
    LastAnswer,
    answer_properties,
    changed,
    desired_properties,
    digest,
    property_defs,
    score_properties,
)
from crm_sync.main import build_app
from crm_sync.settings import CrmSyncSettings
from pulse_shared.cli import service_main
from pulse_shared.events import ScoreSummary, ScoreUpdated


def scores(nps: float | None = 20.0, n: int = 10, detractors: int = 2, delta: float | None = 5.0,
           significant: bool = False) -> ScoreUpdated:
    return ScoreUpdated(
        account_id="acme", version=3, computed_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        scores=(
            ScoreSummary(metric="nps", window="30d", n=n, value=nps, ci_low=None if nps is None else nps - 30,
                         ci_high=None if nps is None else nps + 30,
                         counts={"promoters": 4, "passives": 4, "detractors": detractors},
                         delta=delta, delta_ci_low=-10.0, delta_ci_high=20.0, significant=significant),
            ScoreSummary(metric="csat", window="90d", n=0, value=None, ci_low=None, ci_high=None,
                         counts={"satisfied": 0, "neutral": 0, "dissatisfied": 0}),
        ),
    )


def test_score_properties_carry_value_sample_size_interval_and_change() -> None:
    props = score_properties(scores(nps=-12.5, n=37, delta=-20.0, significant=True))
    assert props["pulse_nps_30d"] == "-12.5"
    assert props["pulse_nps_30d_n"] == "37"
    assert props["pulse_nps_30d_ci_low"] == "-42.5"
    assert props["pulse_nps_30d_ci_high"] == "17.5"
    assert props["pulse_nps_30d_change"] == "-20"
    assert props["pulse_nps_30d_change_significant"] == "true"
    # No answers: the score is cleared, not 0; the sample size says 0.
    assert props["pulse_csat_90d"] == ""
    assert props["pulse_csat_90d_n"] == "0"
    assert props["pulse_scores_updated_at"] == str(int(datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp() * 1000))


@pytest.mark.parametrize(("detractors", "expected"), [(0, "false"), (1, "true")])
def test_open_detractor_follows_the_30_day_window(detractors: int, expected: str) -> None:
    assert score_properties(scores(detractors=detractors))["pulse_open_detractor"] == expected


def test_every_written_property_is_defined_once_in_its_type() -> None:
    defs = property_defs("pulse_account_id", write_comments=True)
    names = [d.name for d in defs]
    assert len(names) == len(set(names))
    written = {**score_properties(scores()), **answer_properties(
        LastAnswer("r1", "nps", 3, datetime(2026, 11, 1, tzinfo=UTC), "slow"), write_comments=True)}
    assert set(written) <= set(names)
    types = {d.name: d.type for d in defs}
    assert types["pulse_nps_30d_change_significant"] == "bool"
    assert types["pulse_last_response_at"] == "datetime"
    assert types["pulse_last_survey"] == "enumeration"
    labels = [d.label for d in defs]
    assert len(labels) == len(set(labels)), "two properties a CRM user could not tell apart"
    assert "Pulse NPS 95% interval low (30 days)" in labels
    assert next(d for d in defs if d.name == "pulse_account_id").unique
    assert LAST_COMMENT not in {d.name for d in property_defs("pulse_account_id", write_comments=False)}


def test_the_comment_is_written_only_when_comments_may_be() -> None:
    last = LastAnswer("r1", "nps", 3, datetime(2026, 11, 1, tzinfo=UTC), "Support never answers")
    assert LAST_COMMENT not in desired_properties({}, last, write_comments=False)
    assert desired_properties({}, last, write_comments=True)[LAST_COMMENT] == "Support never answers"
    assert desired_properties({"a": "1", "b": "2"}, None, write_comments=False, excluded=frozenset({"b"})) == {"a": "1"}


def test_only_changed_values_are_sent_and_sent_values_are_kept_as_digests() -> None:
    sent = {"pulse_nps_30d": digest("20"), "pulse_nps_30d_n": digest("10")}
    assert changed({"pulse_nps_30d": "20", "pulse_nps_30d_n": "11", "new": ""}, sent) == {
        "pulse_nps_30d_n": "11", "new": ""}
    assert changed({"pulse_nps_30d": "20"}, sent) == {}
    assert "Support" not in digest("Support never answers")


def test_the_rolling_budget_never_lets_more_than_the_limit_into_any_window() -> None:
    budget = RollingBudget(limit=10, window=10.0, margin=0.0)
    rng = random.Random(7)
    now, calls = 0.0, []
    for _ in range(500):
        now += rng.expovariate(3.0)  # callers arrive at 3/s, above the 1/s the budget allows
        wait = budget.wait(now)
        now += wait
        assert budget.wait(now) == 0
        budget.take(now)
        calls.append(now)
    worst = max(sum(1 for c in calls if start <= c < start + 10.0) for start in calls)
    assert worst == 10
    # A token bucket of 10 with a refill of 1/s would have allowed 20 in the first window here.
    fresh = RollingBudget(limit=10, window=10.0)
    for _ in range(10):
        fresh.take(0.0)
    # Each call counts a little longer than the window (2 %): arrivals can bunch up on the network.
    assert fresh.wait(0.0) == pytest.approx(10.2)
    assert fresh.wait(10.19) == pytest.approx(0.01)
    assert RollingBudget(limit=1, window=1.0).span == pytest.approx(1.05)


def test_spending_the_window_waits_one_full_window() -> None:
    budget = RollingBudget(limit=100, window=10.0, margin=0.0)
    budget.take(1.0)
    budget.spend_all(5.0)
    assert budget.wait(5.0) == pytest.approx(10.0)
    assert budget.wait(15.0) == 0
    assert budget.used(15.0) == 0


def test_the_circuit_opens_for_a_doubling_bounded_time_and_closes_on_success() -> None:
    circuit = Circuit(base=2.0, ceiling=30.0)
    assert circuit.allows(0.0)
    assert [circuit.failed(0.0) for _ in range(6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert not circuit.allows(29.0)
    assert circuit.allows(30.0)
    circuit.succeeded()
    assert circuit.allows(0.0)
    assert circuit.failed(0.0) == 2.0


@pytest.mark.parametrize(("now", "zone", "reset"), [
    (datetime(2026, 12, 1, 13, 0, tzinfo=UTC), "UTC", datetime(2026, 12, 2, 0, 1, tzinfo=UTC)),
    # 04:30 UTC is 23:30 the day before in New York: the reset is half an hour later (05:01 UTC), not a day.
    (datetime(2026, 12, 2, 4, 30, tzinfo=UTC), "America/New_York", datetime(2026, 12, 2, 5, 1, tzinfo=UTC)),
    (datetime(2026, 12, 1, 22, 59, tzinfo=UTC), "Europe/Berlin", datetime(2026, 12, 1, 23, 1, tzinfo=UTC)),
])
def test_the_daily_limit_resets_at_the_portals_midnight(now: datetime, zone: str, reset: datetime) -> None:
    assert next_daily_reset(now, zone) == reset


IDS = ["a", "b", "c", "d"]


def test_a_207_splits_found_not_found_invalid_and_retryable_inputs() -> None:
    payload = {
        "status": "COMPLETE", "numErrors": 3, "results": [{"id": "1001"}],
        "errors": [
            {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some COMPANY objects",
             "context": {"ids": ["b"]}},
            {"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid",
             "context": {"ids": ["c", "not-in-this-batch"]}},
            {"status": "error", "category": "INTERNAL_ERROR", "message": "try again", "context": {"ids": ["d"]}},
        ],
    }
    answer = batch_answer(207, payload, IDS)
    assert answer.outcome.written == {"a"}
    assert answer.not_found == ["b"]
    assert set(answer.outcome.failed) == {"c"}
    assert answer.outcome.failed["c"].reason == "invalid_value"
    assert answer.outcome.retry == {"d": "try again"}
    assert answer.outcome.pause is None


@pytest.mark.parametrize(("policy", "kind"), [("TEN_SECONDLY_ROLLING", "rate_limit"), ("DAILY", "daily_limit")])
def test_429_pauses_by_policy_and_keeps_every_write(policy: str, kind: str) -> None:
    body = {"status": "error", "errorType": "RATE_LIMIT", "policyName": policy, "message": "limit",
            "correlationId": "c-1"}
    answer = batch_answer(429, body, IDS)
    assert answer.outcome.pause is not None
    assert answer.outcome.pause.kind == kind
    assert "c-1" in answer.outcome.pause.message
    assert set(answer.outcome.retry) == set(IDS)
    assert not answer.outcome.written


@pytest.mark.parametrize(("status", "kind"), [(401, "auth"), (403, "auth"), (500, "outage"), (503, "outage")])
def test_refused_tokens_and_outages_pause_the_connector(status: int, kind: str) -> None:
    pause = pause_for(status, {"message": "no"})
    assert pause is not None
    assert pause.kind == kind
    assert pause_for(200, {}) is None
    assert pause_for(404, {}) is None


def test_a_batch_refused_for_a_value_is_split_and_a_single_input_is_a_dead_letter() -> None:
    body = {"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid"}
    assert batch_answer(400, body, IDS).split
    single = batch_answer(400, body, ["a"])
    assert not single.split
    assert single.outcome.failed["a"].reason == "invalid_value"
    other = batch_answer(409, {"message": "conflict"}, ["a"])
    assert other.outcome.retry == {"a": "HubSpot 409: conflict"}


@pytest.mark.parametrize(("env", "message"), [
    ({"CRM_WEBHOOK_URL": "https://hooks.example", "CRM_WEBHOOK_SECRET": "not base64 at all!"},
     "CRM_WEBHOOK_SECRET must be whsec_ followed by base64"),
    ({"CRM_WEBHOOK_URL": "https://hooks.example"}, "CRM_WEBHOOK_URL and CRM_WEBHOOK_SECRET go together"),
    ({"SALESFORCE_LOGIN_URL": "https://login.salesforce.com"}, "needs SALESFORCE_CLIENT_ID"),
    ({"SALESFORCE_FIELD_MAP": '{"pulse_bogus": "X__c"}'}, "'pulse_bogus' is not a property Pulse writes"),
    ({"SALESFORCE_FIELD_MAP": '{"pulse_nps_30d": "bad name"}'}, "is not a Salesforce field API name"),
    ({"HUBSPOT_MATCH_PROPERTY": "domain"}, "HUBSPOT_MATCH_PROPERTY and HUBSPOT_MATCH_FROM go together"),
    ({"HUBSPOT_TIMEZONE": "Mars/Olympus"}, "unknown time zone"),
])
def test_a_configuration_mistake_stops_crm_sync_with_a_line_naming_it(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = service_main(service="crm-sync", settings_class=CrmSyncSettings, build_app=build_app,
                        port=lambda s: s.port, argv=["serve"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("crm-sync: configuration error: ")
    assert message in err
    assert "Traceback" not in err
