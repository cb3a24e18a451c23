"""Composition root of crm-sync: settings, database, consumer, connector writers, admin API, lifecycle."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiokafka import ConsumerRecord
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.api import router
from crm_sync.connectors.base import Connector
from crm_sync.connectors.hubspot import HubSpotConnector, HubSpotOptions
from crm_sync.connectors.logonly import LogConnector
from crm_sync.connectors.salesforce import SalesforceConnector, SalesforceOptions
from crm_sync.connectors.webhook import WebhookConnector
from crm_sync.dispatcher import ConnectorWriter, WriterOptions
from crm_sync.leader import run_writer
from crm_sync.owners import OwnerSync
from crm_sync.settings import CrmSyncSettings
from crm_sync.store import CrmInput, StoreOptions, WriteStore
from crm_sync.tables import consumer_offsets
from crm_sync.writer_lock import WriterLock
from pulse_shared.consumer import ConsumerRunner, RunnerConfig
from pulse_shared.db import ping, service_engine
from pulse_shared.events import RESPONSE_EVENTS, SCORE_EVENTS, decode
from pulse_shared.http import create_app
from pulse_shared.offsets import DbOffsetStore
from pulse_shared.producer import EventProducer
from pulse_shared.runtime import Runtime, Worker
from pulse_shared.transactional import TransactionalHandler

log = logging.getLogger(__name__)


def connectors_for(settings: CrmSyncSettings) -> list[Connector]:
    """The configured CRMs; the log connector when there is none."""
    found: list[Connector] = []
    if settings.hubspot_access_token:
        found.append(HubSpotConnector(
            settings.hubspot_api_base_url, settings.hubspot_access_token.get_secret_value(),
            HubSpotOptions(id_property=settings.hubspot_id_property,
                           create_properties=settings.hubspot_create_properties,
                           create_companies=settings.hubspot_create_companies,
                           match_property=settings.hubspot_match_property,
                           write_comments=settings.write_comments),
            timeout=settings.crm_timeout_seconds,
        ))
    if settings.salesforce_login_url and settings.salesforce_client_id and settings.salesforce_client_secret:
        found.append(SalesforceConnector(SalesforceOptions(
            login_url=settings.salesforce_login_url, client_id=settings.salesforce_client_id,
            client_secret=settings.salesforce_client_secret.get_secret_value(),
            api_version=settings.salesforce_api_version, account_id_field=settings.salesforce_account_id_field,
            create_accounts=settings.salesforce_create_accounts, write_comments=settings.write_comments,
            fields=settings.salesforce_field_map, request_limit_pause=settings.salesforce_limit_pause_seconds,
        ), timeout=settings.crm_timeout_seconds))
    if settings.webhook_url and settings.webhook_secret:
        found.append(WebhookConnector(settings.webhook_url, settings.webhook_secret.get_secret_value(),
                                      timeout=settings.crm_timeout_seconds, concurrency=settings.webhook_concurrency))
    return found or [LogConnector()]


def store_options(settings: CrmSyncSettings) -> StoreOptions:
    """What the write path keeps, from the settings."""
    return StoreOptions(write_comments=settings.write_comments, match_from=settings.hubspot_match_from)


def writer_options(settings: CrmSyncSettings, connector: Connector) -> WriterOptions:
    """The writer's pacing for ``connector``: each connector has its own budget."""
    limit, window = {
        "hubspot": (settings.hubspot_rate_limit, settings.hubspot_rate_window_seconds),
        "salesforce": (settings.salesforce_rate_limit, settings.salesforce_rate_window_seconds),
        "webhook": (settings.webhook_rate_limit, 10.0),
    }.get(connector.name, (100, 10.0))
    return WriterOptions(
        flush_interval=settings.flush_interval_seconds, rate_limit=limit, rate_window=window,
        max_attempts=settings.crm_max_attempts, lease_seconds=settings.crm_lease_seconds,
        daily_reset_timezone=settings.hubspot_timezone if connector.name == "hubspot" else "UTC",
        owner_interval=settings.owner_sync_interval_seconds,
    )


def writers_for(settings: CrmSyncSettings, engine: AsyncEngine, connectors: Sequence[Connector],
                producer: EventProducer | None) -> list[ConnectorWriter]:
    """One writer per connector (owners are read from every connector but the log one)."""
    owners = OwnerSync(engine, producer, settings.topics.account_owners,
                       recheck_after=settings.owner_sync_interval_seconds)
    return [ConnectorWriter(engine, c, writer_options(settings, c),
                            owners=owners if c.name in ("hubspot", "salesforce") else None)
            for c in connectors]


def build_app(settings: CrmSyncSettings) -> tuple[FastAPI, Runtime]:
    """The crm-sync app and its runtime, wired from ``settings``."""
    runtime = Runtime("crm-sync", grace_seconds=settings.shutdown_grace_seconds)
    engine = service_engine(settings)
    producer = EventProducer(settings, client_id="crm-sync")  # dead letters and owner changes
    connectors = connectors_for(settings)
    topics = settings.topics
    options = store_options(settings)

    def decode_input(message: ConsumerRecord) -> CrmInput:
        if message.topic == topics.scores:
            return decode(SCORE_EVENTS, message.value)
        return decode(RESPONSE_EVENTS, message.value)

    runner: ConsumerRunner[CrmInput] = ConsumerRunner(
        settings,
        RunnerConfig.from_settings(settings, group_id=settings.consumer_group,
                                   topics=(topics.scores, topics.responses)),
        decoder=decode_input,
        handler=TransactionalHandler(engine, consumer_offsets, settings.consumer_group,
                                     WriteStore([c.name for c in connectors], options).apply,
                                     name="crm_sync.queue_batch", message="CRM writes queued"),
        producer=producer,
        offset_store=DbOffsetStore(engine, consumer_offsets),
    )
    writers = writers_for(settings, engine, connectors, producer)

    @asynccontextmanager
    async def resources(_stop: asyncio.Event) -> AsyncIterator[Sequence[Worker]]:
        await producer.start()
        runtime.health.add_check("database", functools.partial(ping, engine))
        runtime.health.add_check("consumer", runner.ping)
        workers = [Worker("crm-consumer", runner.run)]
        for writer in writers:
            name = writer.connector.name
            workers.append(Worker(f"{name}-writer", functools.partial(run_writer, writer=writer,
                                                                       lock=WriterLock(engine, name))))
        log.info("crm-sync configured", extra={
            "connectors": [c.name for c in connectors], "flush_interval_s": settings.flush_interval_seconds,
            "create_companies": settings.hubspot_create_companies, "match_property": settings.hubspot_match_property,
            "write_comments": settings.write_comments})
        try:
            yield workers
        finally:
            for connector in connectors:
                await connector.close()
            await producer.stop()
            await engine.dispose()

    app = create_app(
        title="Pulse crm-sync",
        description="Scores with sample sizes and intervals onto existing CRM accounts (HubSpot), owners back to "
        "alerts; unmatched accounts, dead letters and reconcile in the admin API.",
        health=runtime.health,
        lifespan=runtime.lifespan(resources),
    )
    app.state.settings = settings
    app.include_router(router(engine, [c.name for c in connectors], options))
    return app, runtime
