"""Fixtures for ingest's tests: a migrated database, a seeded catalog, the app in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from ingest.domain.catalog import Survey, WriteKey
from ingest.main import build_app
from ingest.settings import IngestSettings
from ingest.tables import SCHEMA
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.testing.fixtures import session_idempotence
from pulse_shared.topics import Topics

KEY = "pk_test_product_nps_0000000001"
OTHER_KEY = "pk_test_product_nps_0000000002"
CSAT_KEY = "pk_test_support_csat_000000001"
ADMIN = "admin-token-for-tests"


@dataclass
class Ingest:
    client: httpx.AsyncClient
    app: FastAPI
    topics: Topics
    bootstrap: str


async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


@pytest.fixture
async def ingest(kafka_bootstrap: str, topics: Topics, database_url: str) -> AsyncIterator[Ingest]:
    await asyncio.to_thread(upgrade_to_head, "ingest.migrations", database_url, SCHEMA)
    settings = IngestSettings(kafka_bootstrap_servers=kafka_bootstrap, kafka_enable_idempotence=session_idempotence(),
                              kafka_topic_prefix=topics.prefix, database_url=database_url,
                              INGEST_ADMIN_TOKEN=ADMIN)  # type: ignore[call-arg]
    app, _runtime = build_app(settings)
    async for client in running(app):
        catalog = app.state.catalog
        await catalog.upsert_survey(Survey(survey_id="product-nps", name="Product NPS", survey_type="nps"))
        await catalog.upsert_survey(Survey(survey_id="support-csat", name="Support CSAT", survey_type="csat"))
        await catalog.upsert_key(WriteKey(key=KEY, survey_id="product-nps",
                                          allowed_origins=("https://app.example.com",), rate_per_minute=6000))
        await catalog.upsert_key(WriteKey(key=OTHER_KEY, survey_id="product-nps", rate_per_minute=6000))
        await catalog.upsert_key(WriteKey(key=CSAT_KEY, survey_id="support-csat", rate_per_minute=6000))
        yield Ingest(client, app, topics, kafka_bootstrap)
