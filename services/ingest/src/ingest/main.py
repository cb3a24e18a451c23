"""Composition root of ingest: settings, producer, routes, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ingest.api import responses
from ingest.publisher import ResponsePublisher
from ingest.settings import IngestSettings
from pulse_shared.http import create_app
from pulse_shared.producer import EventProducer
from pulse_shared.runtime import Runtime, Worker


def build_app(settings: IngestSettings) -> tuple[FastAPI, Runtime]:
    """The ingest app and its runtime, wired from ``settings``."""
    runtime = Runtime("ingest", grace_seconds=settings.shutdown_grace_seconds)
    producer = EventProducer(settings, client_id="ingest")

    @asynccontextmanager
    async def resources(_stop: asyncio.Event) -> AsyncIterator[Sequence[Worker]]:
        await producer.start()
        runtime.health.add_check("kafka", producer.ping)
        try:
            yield []
        finally:
            await producer.stop()

    app = create_app(
        title="Pulse ingest",
        description="Survey answers in: the response API, the widget and survey-tool webhooks.",
        health=runtime.health,
        lifespan=runtime.lifespan(resources),
    )
    app.state.publisher = ResponsePublisher(
        producer=producer, topic=settings.topics.responses, retry_after_seconds=settings.retry_after_seconds
    )
    app.include_router(responses.router)
    return app, runtime
