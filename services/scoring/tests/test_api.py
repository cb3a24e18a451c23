"""The scoring query API over answers stored through the real write path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import TopicPartition

from pulse_shared.consumer import Record
from pulse_shared.db import create_engine
from pulse_shared.events import ResponseSubmitted
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.transactional import TransactionalHandler
from scoring.main import build_app
from scoring.settings import ScoringSettings
from scoring.store import ResponseEvent, ResponseStore
from scoring.tables import SCHEMA, consumer_offsets

TOKEN = "scoring-test-token"
NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def answer(rid: str, score: int, *, days_ago: int = 0, account: str = "acme", respondent: str | None = None,
           plan: str = "pro", survey: str = "nps", comment: str | None = None) -> ResponseSubmitted:
    lo, hi = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}[survey]
    at = NOW - timedelta(days=days_ago)
    return ResponseSubmitted(response_id=rid, account_id=account, survey_type=survey, score=score,  # type: ignore[arg-type]
                             scale_min=lo, scale_max=hi, respondent_id=respondent, properties={"plan": plan},
                             comment=comment, submitted_at=at, revised_at=at)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await asyncio.to_thread(upgrade_to_head, "scoring.migrations", database_url, SCHEMA)
    events: list[ResponseEvent] = []
    # Previous 30 days: 100 answers (33 promoters, 34 passives, 33 detractors), NPS 0.
    # Current 30 days: 100 answers, NPS +40, plus a respondent answering twice.
    for i in range(100):
        events.append(answer(f"old-{i}", [10, 8, 2][i % 3] if i < 99 else 8, days_ago=40))
    for i in range(100):
        events.append(answer(f"new-{i}", 10 if i < 60 else (8 if i < 80 else 2), days_ago=i % 20,
                             plan="pro" if i % 2 else "free"))
    events.append(answer("rep-1", 0, days_ago=5, respondent="u1", comment="first"))
    events.append(answer("rep-2", 10, days_ago=1, respondent="u1", comment="later"))
    events.append(answer("c-1", 5, survey="csat", days_ago=2))
    events.append(answer("e-1", 7, survey="ces", account="globex", days_ago=2, plan="free"))
    events.append(answer("e-2", 2, survey="ces", account="globex", days_ago=2, plan="free"))
    events.append(answer("other-1", 3, account="globex", days_ago=3, plan="free"))
    engine = create_engine(database_url, pool_size=2)
    handler = TransactionalHandler(engine, consumer_offsets, "scoring", ResponseStore(["plan"]).apply, name="t",
                                   message="stored")
    records = [Record("r", 0, i, b"k", e, (), 0) for i, e in enumerate(events)]
    await handler.handle(TopicPartition("r", 0), records, len(records))
    await engine.dispose()
    app, _ = build_app(ScoringSettings(database_url=database_url, segment_properties="plan",
                                       SCORING_API_TOKENS=f"old-token, {TOKEN}"))  # type: ignore[call-arg]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scoring",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client
    await app.state.engine.dispose()


async def test_account_scores_with_interval_and_a_significant_change(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/accounts/acme/scores", params={"window": "30d"})).json()
    nps = body["scores"]["nps"]
    # 60 promoters + rep-2, 20 passives, 20 detractors + rep-1 -> n 102, NPS (61 - 21) / 102.
    assert nps["n"] == 102
    assert nps["value"] == pytest.approx(100 * 40 / 102, abs=0.01)
    assert nps["ci_low"] < nps["value"] < nps["ci_high"]
    assert nps["change"]["previous_n"] == 100
    assert nps["change"]["previous_value"] == 0.0
    assert nps["change"]["significant"] is True
    assert nps["change"]["ci_low"] > 0
    csat = body["scores"]["csat"]
    assert (csat["n"], csat["value"], csat["small_sample"]) == (1, 100.0, True)
    assert body["scores"]["ces"]["n"] == 0
    assert body["scores"]["ces"]["value"] is None
    assert body["scores"]["ces"]["small_sample"] is True  # no answers at all is the smallest sample
    assert nps["small_sample"] is False


async def test_latest_answer_per_respondent_method(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/accounts/acme/scores", params={"method": "latest_per_respondent"})).json()
    nps = body["scores"]["nps"]
    assert body["method"] == "latest_per_respondent"
    assert nps["n"] == 101  # u1 counts once, with the promoter answer
    assert nps["counts"]["detractors"] == 20


async def test_timeseries_has_every_bucket(api: httpx.AsyncClient) -> None:
    today = NOW.date()
    body = (await api.get("/v1/accounts/acme/timeseries", params={
        "metric": "nps", "bucket": "day", "from": (today - timedelta(days=45)).isoformat(),
        "to": today.isoformat()})).json()
    assert len(body["points"]) == 46
    assert sum(p["n"] for p in body["points"]) == 202
    assert body["points"][0]["n"] == 0
    assert body["points"][0]["value"] is None


async def test_segments_and_the_whole_base(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/segments/plan/scores", params={"window": "30d"})).json()
    rows = {r["value"]: r["scores"]["nps"]["n"] for r in body["rows"]}
    assert rows == {"free": 51, "pro": 52}
    assert (await api.get("/v1/segments/region/scores")).status_code == 404
    base = (await api.get("/v1/scores", params={"window": "30d"})).json()
    assert base["accounts"] == 2
    assert base["scores"]["nps"]["n"] == 103


async def test_recent_detractors_page_by_cursor(api: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"account_id": "acme", "category": "detractor", "limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/responses", params=params)).json()
        seen.extend(i["response_id"] for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 20 + 33 + 1  # current, previous window, rep-1
    first = (await api.get("/v1/responses", params={"limit": 1})).json()["items"][0]
    assert first["submitted_at"] >= NOW.isoformat()[:10]


async def test_ces_answers_have_their_own_category_names_in_filter_output_and_counts(api: httpx.AsyncClient) -> None:
    async def ids(category: str) -> list[str]:
        page = (await api.get("/v1/responses", params={"category": category})).json()
        return [(i["response_id"], i["category"]) for i in page["items"] if i["survey_type"] != "nps"]

    assert await ids("easy") == [("e-1", "easy")]
    assert await ids("difficult") == [("e-2", "difficult")]
    assert await ids("satisfied") == [("c-1", "satisfied")]  # a CSAT answer; the easy CES one is not "satisfied"
    ces = (await api.get("/v1/accounts/globex/scores", params={"window": "30d"})).json()["scores"]["ces"]
    assert ces["counts"] == {"easy": 1, "neutral": 0, "difficult": 1}
    refused = await api.get("/v1/responses", params={"category": "not_easy"})
    assert refused.status_code == 422
    assert "easy" in refused.text


@pytest.mark.parametrize(
    ("path", "needle", "status"),
    [
        ("/v1/accounts/nobody/scores", "nobody", 404),
        ("/v1/accounts/acme/scores?window=31d", "window", 422),
        ("/v1/accounts/acme/scores?method=mean", "method", 422),
        ("/v1/accounts/acme/timeseries?bucket=hour", "bucket", 422),
        ("/v1/accounts/acme/timeseries?from=2026-12-01&to=2026-01-01", "from", 422),
        ("/v1/accounts/acme/timeseries?bucket=day&from=2000-01-01&to=2026-01-01", "buckets", 422),
        ("/v1/responses?cursor=bm9wZQ", "cursor", 422),
        ("/v1/responses?limit=0", "limit", 422),
    ],
)
async def test_bad_parameters_are_named(api: httpx.AsyncClient, path: str, needle: str, status: int) -> None:
    response = await api.get(path)
    assert response.status_code == status
    assert needle in response.text


async def test_an_unknown_window_lists_the_valid_ones(api: httpx.AsyncClient) -> None:
    refused = await api.get("/v1/accounts/acme/scores?window=2w")
    assert refused.status_code == 422
    for valid in ("7d", "30d", "90d", "365d", "month", "quarter"):
        assert f"'{valid}'" in refused.text


@pytest.mark.parametrize(("empty", "given"), [
    ("/v1/accounts/acme/scores?window=&method=", "/v1/accounts/acme/scores"),
    ("/v1/accounts/acme/timeseries?metric=nps&from=&to=&bucket=", "/v1/accounts/acme/timeseries?metric=nps"),
    ("/v1/responses?account_id=acme&limit=&cursor=&category=", "/v1/responses?account_id=acme"),
])
async def test_parameters_sent_empty_mean_not_given(api: httpx.AsyncClient, empty: str, given: str) -> None:
    answered = await api.get(empty)
    assert answered.status_code == 200, answered.text
    expected = (await api.get(given)).json()
    assert answered.json() == expected


@pytest.mark.parametrize("path", ["/v1/accounts/acme/scores", "/v1/accounts/acme/timeseries?metric=nps",
                                  "/v1/segments/plan/scores", "/v1/scores", "/v1/responses?account_id=acme"])
async def test_every_api_route_needs_a_token_and_health_stays_open(api: httpx.AsyncClient, path: str) -> None:
    assert (await api.get(path)).status_code == 200
    for header in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        refused = await api.get(path, headers=header)
        assert refused.status_code == 401, (path, header)
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "comment" not in refused.text
    # During a rotation both tokens work.
    assert (await api.get(path, headers={"Authorization": "Bearer old-token"})).status_code == 200
    for open_path in ("/livez", "/metrics", "/openapi.json"):
        assert (await api.get(open_path, headers={"Authorization": ""})).status_code == 200


async def test_the_openapi_declares_the_token_on_every_data_route(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["ScoringToken"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        if path.startswith("/v1/"):
            for operation in operations.values():
                assert {"ScoringToken": []} in operation["security"], path
                assert {"401", "503"} <= set(operation["responses"]), path


async def test_without_tokens_the_api_is_off_not_open(database_url: str) -> None:
    app, _ = build_app(ScoringSettings(database_url=database_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scoring") as client:
        off = await client.get("/v1/scores")
    assert off.status_code == 503
    assert "SCORING_API_TOKENS" in off.text
    await app.state.engine.dispose()
