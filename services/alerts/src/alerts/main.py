"""Composition root of alerts: settings, database, consumer, Slack dispatcher, lifecycle."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiokafka import ConsumerRecord
from fastapi import FastAPI

from alerts.dispatcher import AlertDispatcher
from alerts.settings import AlertsSettings
from alerts.slack import SlackClient
from alerts.store import AlertInput, AlertStore
from alerts.tables import consumer_offsets
from pulse_shared.consumer import ConsumerRunner, RunnerConfig
from pulse_shared.db import ping, service_engine
from pulse_shared.events import OWNER_EVENTS, RESPONSE_EVENTS, decode
from pulse_shared.http import create_app
from pulse_shared.loops import run_until_stopped
from pulse_shared.offsets import DbOffsetStore
from pulse_shared.producer import EventProducer
from pulse_shared.runtime import Runtime, Worker
from pulse_shared.transactional import TransactionalHandler


def build_app(settings: AlertsSettings) -> tuple[FastAPI, Runtime]:
    """The alerts app and its runtime, wired from ``settings``."""
    runtime = Runtime("alerts", grace_seconds=settings.shutdown_grace_seconds)
    engine = service_engine(settings)
    producer = EventProducer(settings, client_id="alerts")  # for the dead-letter topic
    owners_topic = settings.topics.account_owners

    def decode_input(message: ConsumerRecord) -> AlertInput:
        if message.topic == owners_topic:
            return decode(OWNER_EVENTS, message.value)
        return decode(RESPONSE_EVENTS, message.value)

    runner: ConsumerRunner[AlertInput] = ConsumerRunner(
        settings,
        RunnerConfig.from_settings(
            settings, group_id=settings.consumer_group, topics=(settings.topics.responses, owners_topic)
        ),
        decoder=decode_input,
        handler=TransactionalHandler(engine, consumer_offsets, settings.consumer_group, AlertStore().apply,
                                     name="alerts.record_batch", message="alerts recorded"),
        producer=producer,
        offset_store=DbOffsetStore(engine, consumer_offsets),
    )
    slack = (
        SlackClient(settings.slack_api_base_url, settings.slack_bot_token.get_secret_value(),
                    timeout=settings.slack_timeout_seconds)
        if settings.slack_bot_token else None
    )
    dispatcher = AlertDispatcher(engine, slack, default_channel=settings.slack_default_channel,
                                 max_attempts=settings.max_attempts)

    @asynccontextmanager
    async def resources(_stop: asyncio.Event) -> AsyncIterator[Sequence[Worker]]:
        await producer.start()
        runtime.health.add_check("database", functools.partial(ping, engine))
        runtime.health.add_check("consumer", runner.ping)
        try:
            yield [
                Worker("alerts-consumer", runner.run),
                Worker("slack-dispatcher", lambda stop: run_until_stopped(stop, dispatcher.deliver_due,
                                                                          name="slack-dispatcher")),
            ]
        finally:
            if slack is not None:
                await slack.close()
            await producer.stop()
            await engine.dispose()

    app = create_app(
        title="Pulse alerts",
        description="Detractor alerts to the account owner in Slack.",
        health=runtime.health,
        lifespan=runtime.lifespan(resources),
    )
    return app, runtime
