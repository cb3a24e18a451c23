"""The response API against the real broker and PostgreSQL: 202 only after the ack, clear 4xx, 503."""

from __future__ import annotations

import json

import pytest

from ingest.main import build_app
from ingest.settings import IngestSettings
from ingest_fixtures import CSAT_KEY, KEY, Ingest, running
from pulse_shared.localinfra import Broker, create_topics
from pulse_shared.testing.topic_reader import read_topic
from pulse_shared.topics import Topics

H = {"X-Pulse-Key": KEY}


async def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, dict[str, object]]]:
    """Every record of the topic (read to its end offsets): key and decoded value."""
    return [(m.key, json.loads(m.value)) for m in await read_topic(bootstrap, topic)]


async def test_an_answer_is_on_the_topic_keyed_by_account_when_202_comes_back(ingest: Ingest) -> None:
    answer = {"response_id": "r-1", "survey_type": "csat", "score": 2, "account_id": "acme-42",
              "comment": "slow", "properties": {"plan": "pro", "seats": 12, "trial": False},
              "submitted_at": "2026-11-20T10:00:00+01:00"}
    response = await ingest.client.post("/v1/responses", json=answer, headers={
        "X-Pulse-Key": CSAT_KEY, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    assert response.status_code == 202
    assert response.json() == {"response_id": "r-1", "status": "accepted"}
    assert "location" not in response.headers  # ingest serves no per-answer resource to point at
    assert response.headers["content-type"] == "application/json"
    assert response.headers["vary"] == "Origin"
    metrics = (await ingest.client.get("/metrics")).text  # counted under its route, like every endpoint
    assert 'pulse_http_requests_total{method="POST",route="/v1/responses",status="202"}' in metrics
    [(key, event)] = await read_all(ingest.bootstrap, ingest.topics.responses)
    assert key == b"acme-42"
    assert event["type"] == "response.submitted.v1"
    assert (event["score"], event["scale_min"], event["scale_max"], event["survey_id"]) == (2, 1, 5, "support-csat")
    assert event["properties"] == {"plan": "pro", "seats": 12, "trial": False}
    assert event["submitted_at"].startswith("2026-11-20T09:00:00")


async def test_a_whole_number_sent_as_a_float_is_the_integer_score(ingest: Ingest) -> None:
    # Some survey tools serialise every number as a float: 9.0 is the score 9 (9.5, "9" and true stay refused).
    answer = {"response_id": "r-float", "survey_type": "nps", "score": 9.0, "account_id": "acme-42"}
    response = await ingest.client.post("/v1/responses", json=answer, headers=H)
    assert response.status_code == 202, response.text
    [(_key, event)] = await read_all(ingest.bootstrap, ingest.topics.responses)
    assert event["score"] == 9
    assert isinstance(event["score"], int)


async def test_idempotency_key_names_the_answer_when_no_response_id(ingest: Ingest) -> None:
    body = {"survey_type": "nps", "score": 9, "account_id": "acme"}
    first = await ingest.client.post("/v1/responses", json=body, headers={**H, "Idempotency-Key": "k-123"})
    second = await ingest.client.post("/v1/responses", json=body, headers={**H, "Idempotency-Key": "k-123"})
    assert first.json()["response_id"] == second.json()["response_id"] == "k-123"
    generated = await ingest.client.post("/v1/responses", json=body, headers=H)
    assert generated.status_code == 202
    assert generated.json()["response_id"] != "k-123"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"survey_type": "nps", "score": 11, "account_id": "a"}, "outside the NPS scale 0..10"),
        ({"survey_type": "csat", "score": 4, "account_id": "a"}, "does not match the survey's type 'nps'"),
        ({"survey_type": "nps", "score": True, "account_id": "a"}, "score"),
        ({"survey_type": "nps", "score": 9.5, "account_id": "a"}, "score"),
        ({"survey_type": "nps", "score": "9", "account_id": "a"}, "score"),
        ({"survey_type": "nps", "score": 9}, "account_id"),
        ({"survey_type": "stars", "score": 4, "account_id": "a"}, "survey_type"),
        ({"survey_type": "nps", "score": 9, "account_id": "a", "comment": "x" * 5001}, "comment"),
        ({"survey_type": "nps", "score": 9, "account_id": "a", "properties": {"k": {"nested": 1}}}, "properties"),
        ({"survey_type": "nps", "score": 9, "account_id": "a",
          "properties": {f"p{i}": i for i in range(51)}}, "at most 50"),
        ({"survey_type": "nps", "score": 9, "account_id": "a", "submitted_at": "2026-11-20T10:00:00"},
         "submitted_at"),
        ({"survey_type": "nps", "score": 9, "account_id": "a", "surprise": 1}, "surprise"),
        ({"survey_type": "nps", "score": 9, "account_id": "a", "comment": "bad\x00byte"}, "NUL"),
        ({"survey_type": "nps", "score": 9, "account_id": "a", "properties": {"plan\x00": "pro"}}, "NUL"),
        ({"survey_type": "nps", "score": 9, "account_id": "a\x00"}, "account_id"),
    ],
)
async def test_bad_answers_get_a_422_that_names_the_problem(ingest: Ingest, body: dict[str, object],
                                                           needle: str) -> None:
    response = await ingest.client.post("/v1/responses", json=body, headers=H)
    assert response.status_code == 422
    assert needle in response.text


@pytest.mark.parametrize("content", [b'{"survey_type": ', b"[" * 10_000 + b"]" * 10_000, b"\xff\xfe\x00garbage"])
async def test_unparseable_bodies_are_client_errors(ingest: Ingest, content: bytes) -> None:
    response = await ingest.client.post("/v1/responses", content=content,
                                        headers={**H, "content-type": "application/json"})
    assert 400 <= response.status_code < 500


async def test_batch_gives_each_answer_its_own_result(ingest: Ingest) -> None:
    good = [{"response_id": f"b-{i}", "survey_type": "nps", "score": i % 11, "account_id": f"acct-{i % 7}"}
            for i in range(120)]
    bad = [{"response_id": "bad-1", "survey_type": "nps", "score": 12, "account_id": "x"},
           {"response_id": "bad-2", "survey_type": "nps", "account_id": "x"}]
    response = await ingest.client.post("/v1/responses/batch", json={"responses": good[:60] + bad + good[60:]},
                                        headers=H)
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"], body["unavailable"]) == (120, 2, 0)
    assert body["results"][60]["status"] == "rejected"
    assert "outside the NPS scale" in body["results"][60]["reason"]
    # A rejected answer carries the id it was sent with; the reason is words, the problems are beside it.
    assert [body["results"][i]["response_id"] for i in (60, 61)] == ["bad-1", "bad-2"]
    assert body["results"][61]["reason"] == "score: Field required"
    assert body["results"][61]["errors"][0]["loc"] == ["score"]
    assert body["results"][62] == {"index": 62, "status": "accepted", "response_id": "b-60", "reason": None}
    events = await read_all(ingest.bootstrap, ingest.topics.responses)
    assert sorted(e["response_id"] for _, e in events) == sorted(a["response_id"] for a in good)
    too_many = await ingest.client.post("/v1/responses/batch", json={"responses": good * 5}, headers=H)
    assert too_many.status_code == 422


async def test_503_with_retry_after_when_the_broker_cannot_take_the_answer(database_url: str) -> None:
    import asyncio

    from ingest.domain.catalog import Survey, WriteKey
    from ingest.tables import SCHEMA
    from pulse_shared.migrations import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, "ingest.migrations", database_url, SCHEMA)
    broker = Broker().start()
    topics = Topics("x.")
    await create_topics(broker.bootstrap, topics.all(), partitions=1)
    settings = IngestSettings(kafka_bootstrap_servers=broker.bootstrap, kafka_enable_idempotence=False,
                              kafka_topic_prefix=topics.prefix, kafka_send_timeout_seconds=1.0,
                              database_url=database_url)
    app, _runtime = build_app(settings)
    try:
        async for client in running(app):
            await app.state.catalog.upsert_survey(Survey(survey_id="s", name="S", survey_type="nps"))
            await app.state.catalog.upsert_key(WriteKey(key=KEY, survey_id="s"))
            body = {"survey_type": "nps", "score": 9, "account_id": "a"}
            ok = await client.post("/v1/responses", json=body, headers=H)
            assert ok.status_code == 202
            broker.stop()
            refused = await client.post("/v1/responses", json=body, headers=H)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert "retry" in refused.json()["detail"]
            batch = await client.post("/v1/responses/batch", json={"responses": [body, body]}, headers=H)
            assert batch.status_code == 503
            assert batch.headers["retry-after"] == "5"
    finally:
        broker.stop()
