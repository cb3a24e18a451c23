"""Composition root of scoring: settings, database, consumer, outbox publisher, routes, lifecycle."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import Depends, FastAPI

from pulse_shared.auth import bearer_guard
from pulse_shared.consumer import ConsumerRunner, RunnerConfig
from pulse_shared.db import ping, service_engine
from pulse_shared.events import RESPONSE_EVENTS, decode
from pulse_shared.http import create_app
from pulse_shared.loops import run_until_stopped
from pulse_shared.offsets import DbOffsetStore
from pulse_shared.producer import EventProducer
from pulse_shared.runtime import Runtime, Worker
from pulse_shared.transactional import TransactionalHandler
from scoring.api import responses, scores
from scoring.publisher import ScorePublisher
from scoring.settings import ScoringSettings
from scoring.store import ResponseEvent, ResponseStore, is_transient
from scoring.tables import consumer_offsets

#: Dependency: one of SCORING_API_TOKENS as a bearer token.
reader = bearer_guard("SCORING_API_TOKENS", lambda request: request.app.state.tokens, scheme_name="ScoringToken",
                      what="scoring")
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong token (Authorization: Bearer <one of SCORING_API_TOKENS>)."},
    503: {"description": "The API is off: SCORING_API_TOKENS is not set."},
}


def decode_response(message: ConsumerRecord) -> ResponseEvent:
    """Decode a responses-topic message (raises InvalidEvent for the dead-letter topic)."""
    return decode(RESPONSE_EVENTS, message.value)


def build_app(settings: ScoringSettings) -> tuple[FastAPI, Runtime]:
    """The scoring app and its runtime, wired from ``settings``."""
    runtime = Runtime("scoring", grace_seconds=settings.shutdown_grace_seconds)
    engine = service_engine(settings)
    producer = EventProducer(settings, client_id="scoring")
    store = ResponseStore(settings.segments)
    runner: ConsumerRunner[ResponseEvent] = ConsumerRunner(
        settings,
        RunnerConfig.from_settings(settings, group_id=settings.consumer_group, topics=(settings.topics.responses,)),
        decoder=decode_response,
        handler=TransactionalHandler(engine, consumer_offsets, settings.consumer_group, store.apply,
                                     name="scoring.apply_batch", message="responses stored and counts updated"),
        producer=producer,
        offset_store=DbOffsetStore(engine, consumer_offsets),
        transient=is_transient,
    )
    publisher = ScorePublisher(engine, producer, settings.topics.scores, method=settings.nps_method)

    @asynccontextmanager
    async def resources(_stop: asyncio.Event) -> AsyncIterator[Sequence[Worker]]:
        await producer.start()
        runtime.health.add_check("database", functools.partial(ping, engine))
        runtime.health.add_check("kafka", producer.ping)
        runtime.health.add_check("consumer", runner.ping)
        try:
            yield [
                Worker("responses-consumer", runner.run),
                Worker("score-publisher", lambda stop: run_until_stopped(stop, publisher.publish_due,
                                                                         name="score-publisher")),
            ]
        finally:
            await producer.stop()
            await engine.dispose()

    app = create_app(
        title="Pulse scoring",
        description="Rolling NPS, CSAT and CES per account and segment, with sample sizes and 95 % intervals.",
        health=runtime.health,
        lifespan=runtime.lifespan(resources),
    )
    app.state.engine = engine
    app.state.segments = settings.segments
    app.state.default_method = settings.nps_method
    app.state.tokens = settings.tokens
    # Every /v1 route serves customer data (comments, respondent ids): a bearer token, always.
    for api in (scores.router, responses.router):
        app.include_router(api, dependencies=[Depends(reader)], responses=REFUSALS)
    return app, runtime
