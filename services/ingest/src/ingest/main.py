"""Composition root of ingest: settings, producer, catalog, protection, routes, lifecycle."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from ingest import seed
from ingest.api import admin, fastpath, preflight, responses, webhooks, widget
from ingest.catalog import CatalogStore
from ingest.contacts import ContactStore
from ingest.protection import BodyLimitMiddleware, RateLimiter
from ingest.publisher import ResponsePublisher
from ingest.settings import IngestSettings
from pulse_shared.db import ping, service_engine
from pulse_shared.http import create_app
from pulse_shared.loops import run_until_stopped
from pulse_shared.producer import EventProducer
from pulse_shared.runtime import Runtime, Worker

log = logging.getLogger(__name__)


def build_app(settings: IngestSettings) -> tuple[FastAPI, Runtime]:
    """The ingest app and its runtime, wired from ``settings``."""
    runtime = Runtime("ingest", grace_seconds=settings.shutdown_grace_seconds)
    producer = EventProducer(settings, client_id="ingest")
    engine = service_engine(settings)
    catalog = CatalogStore(engine)
    seeds = seed.parse(Path(settings.seed_file)) if settings.seed_file else None  # a bad file stops the start here

    @asynccontextmanager
    async def resources(_stop: asyncio.Event) -> AsyncIterator[Sequence[Worker]]:
        await producer.start()
        try:
            if seeds is not None:
                drift = await seed.apply(catalog, seeds, mode=settings.seed_mode)
                if drift:
                    log.warning("the seed file differs from the catalog; kept the catalog's (INGEST_SEED_MODE="
                                "replace makes the file win)" if settings.seed_mode == "create" else
                                "the seed file replaced catalog items changed since", extra={"drift": drift})
            await catalog.refresh()
            runtime.health.add_check("kafka", producer.ping)
            runtime.health.add_check("database", functools.partial(ping, engine))

            async def refresh_catalog() -> bool:
                await catalog.refresh()
                return False  # nothing more to do until the next interval

            yield [Worker("catalog-refresh", lambda stop: run_until_stopped(
                stop, refresh_catalog, name="catalog-refresh", idle_seconds=settings.catalog_refresh_seconds))]
        finally:
            await producer.stop()
            await engine.dispose()

    app = create_app(
        title="Pulse ingest",
        description="Survey answers in: the response API, the widget and survey-tool webhooks. Every accepted "
                    "answer is on the responses topic before the caller hears 202.",
        health=runtime.health,
        lifespan=runtime.lifespan(resources),
    )
    app.add_middleware(BodyLimitMiddleware, default=settings.max_body_bytes,
                       limits={"/v1/responses/batch": settings.max_batch_body_bytes,
                               # Survey tools send whole payloads (definitions, all answers): allow more.
                               "/v1/webhooks/": settings.max_batch_body_bytes})
    app.state.settings = settings
    app.state.engine = engine
    app.state.catalog = catalog
    app.state.contacts = ContactStore(engine)
    app.state.limiter = RateLimiter()
    app.state.publisher = ResponsePublisher(
        producer=producer, topic=settings.topics.responses, raw_topic=settings.topics.raw_webhooks,
        retry_after_seconds=settings.retry_after_seconds,
    )
    app.include_router(preflight.router)
    app.include_router(responses.router)
    app.include_router(webhooks.router)
    app.include_router(widget.router)
    app.include_router(admin.router)
    fastpath.install(app, responses.router)
    return app, runtime

