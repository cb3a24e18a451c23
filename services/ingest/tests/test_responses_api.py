"""The response API against the real broker: 202 only after the ack, clear 4xx, 503 when the log is gone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from ingest.main import build_app
from ingest.settings import IngestSettings
from pulse_shared.localinfra import Broker, create_topics
from pulse_shared.topics import Topics


async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


@pytest.fixture
async def ingest(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[httpx.AsyncClient]:
    settings = IngestSettings(kafka_bootstrap_servers=kafka_bootstrap, kafka_enable_idempotence=False,
                              kafka_topic_prefix=topics.prefix)
    app, _runtime = build_app(settings)
    async for client in client_for(app):
        yield client


async def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, dict[str, object]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=3000)
    finally:
        await consumer.stop()
    return [(m.key, json.loads(m.value)) for ms in batch.values() for m in ms]


async def test_an_answer_is_on_the_topic_keyed_by_account_when_202_comes_back(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    answer = {"response_id": "r-1", "survey_type": "csat", "score": 2, "account_id": "acme-42",
              "comment": "slow", "properties": {"plan": "pro", "seats": 12, "trial": False},
              "submitted_at": "2026-11-20T10:00:00+01:00"}
    response = await ingest.post("/v1/responses", json=answer, headers={"traceparent":
                                 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    assert response.status_code == 202
    assert response.json() == {"response_id": "r-1", "status": "accepted"}
    [(key, event)] = await read_all(kafka_bootstrap, topics.responses)
    assert key == b"acme-42"
    assert event["type"] == "response.submitted.v1"
    assert (event["score"], event["scale_min"], event["scale_max"]) == (2, 1, 5)
    assert event["properties"] == {"plan": "pro", "seats": 12, "trial": False}
    assert event["submitted_at"].startswith("2026-11-20T09:00:00")


async def test_idempotency_key_names_the_answer_when_no_response_id(ingest: httpx.AsyncClient) -> None:
    body = {"survey_type": "nps", "score": 9, "account_id": "acme"}
    first = await ingest.post("/v1/responses", json=body, headers={"Idempotency-Key": "k-123"})
    second = await ingest.post("/v1/responses", json=body, headers={"Idempotency-Key": "k-123"})
    assert first.json()["response_id"] == second.json()["response_id"] == "k-123"
    generated = await ingest.post("/v1/responses", json=body)
    assert generated.status_code == 202
    assert generated.json()["response_id"] != "k-123"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"survey_type": "nps", "score": 11, "account_id": "a"}, "outside the NPS scale 0..10"),
        ({"survey_type": "ces", "score": 0, "account_id": "a"}, "outside the CES scale 1..7"),
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
    ],
)
async def test_bad_answers_get_a_422_that_names_the_problem(
    ingest: httpx.AsyncClient, body: dict[str, object], needle: str
) -> None:
    response = await ingest.post("/v1/responses", json=body)
    assert response.status_code == 422
    assert needle in response.text


async def test_malformed_json_is_a_client_error(ingest: httpx.AsyncClient) -> None:
    response = await ingest.post("/v1/responses", content=b'{"survey_type": ', headers={"content-type":
                                                                                         "application/json"})
    assert 400 <= response.status_code < 500


async def test_503_with_retry_after_when_the_broker_cannot_take_the_answer() -> None:
    broker = Broker().start()
    topics = Topics("x.")
    await create_topics(broker.bootstrap, topics.all(), partitions=1)
    settings = IngestSettings(kafka_bootstrap_servers=broker.bootstrap, kafka_enable_idempotence=False,
                              kafka_topic_prefix=topics.prefix, kafka_send_timeout_seconds=1.0)
    app, _runtime = build_app(settings)
    try:
        async for client in client_for(app):
            ok = await client.post("/v1/responses", json={"survey_type": "nps", "score": 9, "account_id": "a"})
            assert ok.status_code == 202
            broker.stop()
            refused = await client.post("/v1/responses", json={"survey_type": "nps", "score": 9, "account_id": "a"})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert "retry" in refused.json()["detail"]
    finally:
        broker.stop()
