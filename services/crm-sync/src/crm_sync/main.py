"""Composition root of crm-sync: settings, database, consumer, CRM dispatchers, lifecycle."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiokafka import ConsumerRecord
from fastapi import FastAPI

from crm_sync.connectors.base import Connector
from crm_sync.connectors.hubspot import HubSpotConnector
from crm_sync.connectors.logonly import LogConnector
from crm_sync.dispatcher import WriteDispatcher
from crm_sync.settings import CrmSyncSettings
from crm_sync.store import WriteStore
from crm_sync.tables import consumer_offsets
from pulse_shared.consumer import ConsumerRunner, RunnerConfig
from pulse_shared.db import ping, service_engine
from pulse_shared.events import SCORE_EVENTS, ScoreUpdated, decode
from pulse_shared.http import create_app
from pulse_shared.loops import run_until_stopped
from pulse_shared.offsets import DbOffsetStore
from pulse_shared.producer import EventProducer
from pulse_shared.runtime import Runtime, Worker
from pulse_shared.transactional import TransactionalHandler


def decode_score(message: ConsumerRecord) -> ScoreUpdated:
    """Decode a scores-topic message (raises InvalidEvent for the dead-letter topic)."""
    return decode(SCORE_EVENTS, message.value)


def connectors_for(settings: CrmSyncSettings) -> list[Connector]:
    """The configured CRMs; the log connector when there is none."""
    found: list[Connector] = []
    if settings.hubspot_access_token:
        found.append(HubSpotConnector(
            settings.hubspot_api_base_url, settings.hubspot_access_token.get_secret_value(),
            id_property=settings.hubspot_id_property, create_properties=settings.hubspot_create_properties,
            timeout=settings.crm_timeout_seconds,
        ))
    return found or [LogConnector()]


def build_app(settings: CrmSyncSettings) -> tuple[FastAPI, Runtime]:
    """The crm-sync app and its runtime, wired from ``settings``."""
    runtime = Runtime("crm-sync", grace_seconds=settings.shutdown_grace_seconds)
    engine = service_engine(settings)
    producer = EventProducer(settings, client_id="crm-sync")  # dead letters (and, later, owner events)
    connectors = connectors_for(settings)
    runner: ConsumerRunner[ScoreUpdated] = ConsumerRunner(
        settings,
        RunnerConfig.from_settings(settings, group_id=settings.consumer_group, topics=(settings.topics.scores,)),
        decoder=decode_score,
        handler=TransactionalHandler(engine, consumer_offsets, settings.consumer_group,
                                     WriteStore([c.name for c in connectors]).apply,
                                     name="crm_sync.queue_batch", message="CRM writes queued"),
        producer=producer,
        offset_store=DbOffsetStore(engine, consumer_offsets),
    )
    dispatchers = [WriteDispatcher(engine, c, max_attempts=settings.crm_max_attempts) for c in connectors]

    @asynccontextmanager
    async def resources(_stop: asyncio.Event) -> AsyncIterator[Sequence[Worker]]:
        await producer.start()
        runtime.health.add_check("database", functools.partial(ping, engine))
        runtime.health.add_check("consumer", runner.ping)
        workers = [Worker("scores-consumer", runner.run)]
        for connector, dispatcher in zip(connectors, dispatchers, strict=True):
            workers.append(Worker(
                f"{connector.name}-dispatcher",
                functools.partial(_dispatch_loop, dispatcher=dispatcher, name=f"{connector.name}-dispatcher"),
            ))
        try:
            yield workers
        finally:
            for connector in connectors:
                await connector.close()
            await producer.stop()
            await engine.dispose()

    app = create_app(
        title="Pulse crm-sync",
        description="Scores with sample sizes and intervals onto CRM accounts (HubSpot, Salesforce).",
        health=runtime.health,
        lifespan=runtime.lifespan(resources),
    )
    return app, runtime


async def _dispatch_loop(stop: asyncio.Event, *, dispatcher: WriteDispatcher, name: str) -> None:
    await run_until_stopped(stop, dispatcher.deliver_due, name=name)
