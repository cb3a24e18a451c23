"""Composition root of alerts: settings, rules, database, consumer, Slack dispatcher, admin API, lifecycle."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiokafka import ConsumerRecord, TopicPartition
from fastapi import FastAPI

from alerts.api import router
from alerts.config import AlertsConfig, Route, load_config
from alerts.dispatcher import AlertDispatcher
from alerts.escalation import PagerDutySender, run_escalations
from alerts.interactions import router as interactions_router
from alerts.settings import AlertsSettings
from alerts.slack import SlackClient
from alerts.store import NOTIFY_CHANNEL, AlertInput, AlertStore
from alerts.tables import consumer_offsets
from alerts.wakeup import Wakeup
from pulse_shared.consumer import ConsumerRunner, Record, RunnerConfig
from pulse_shared.db import ping, service_engine
from pulse_shared.events import OWNER_EVENTS, RESPONSE_EVENTS, SCORE_EVENTS, decode
from pulse_shared.http import create_app
from pulse_shared.offsets import DbOffsetStore
from pulse_shared.producer import EventProducer
from pulse_shared.runtime import Runtime, Worker
from pulse_shared.settings import ConfigError
from pulse_shared.transactional import TransactionalHandler

log = logging.getLogger(__name__)


class WakingHandler:
    """The transactional handler, waking the local dispatcher once a batch that wrote alerts committed."""

    def __init__(self, handler: TransactionalHandler[AlertInput], store: AlertStore, wakeup: Wakeup) -> None:
        self._handler = handler
        self._store = store
        self._wakeup = wakeup

    async def handle(self, tp: TopicPartition, records: Sequence[Record[AlertInput]], next_offset: int) -> None:
        """Apply and commit, then wake the dispatcher if alerts were written."""
        self._store.wrote_alerts = False
        await self._handler.handle(tp, records, next_offset)
        if self._store.wrote_alerts:
            self._wakeup.notify()


def _pages(node: Route) -> bool:
    return node.escalate_to == "pagerduty" or any(_pages(child) for child in node.routes)


def build_app(settings: AlertsSettings, config: AlertsConfig | None = None) -> tuple[FastAPI, Runtime]:
    """The alerts app and its runtime, wired from ``settings`` (rules from ``ALERTS_CONFIG_FILE``)."""
    config = config or load_config(settings.config_file)
    runtime = Runtime("alerts", grace_seconds=settings.shutdown_grace_seconds)
    engine = service_engine(settings)
    producer = EventProducer(settings, client_id="alerts")  # for the dead-letter topic
    topics = settings.topics
    wakeup = Wakeup()
    store = AlertStore(config, hold_seconds=settings.comment_hold_seconds)

    def decode_input(message: ConsumerRecord) -> AlertInput:
        if message.topic == topics.account_owners:
            return decode(OWNER_EVENTS, message.value)
        if message.topic == topics.scores:
            return decode(SCORE_EVENTS, message.value)
        return decode(RESPONSE_EVENTS, message.value)

    handler = TransactionalHandler(engine, consumer_offsets, settings.consumer_group, store.apply,
                                   name="alerts.record_batch", message="alerts recorded")
    runner: ConsumerRunner[AlertInput] = ConsumerRunner(
        settings,
        dataclasses.replace(
            RunnerConfig.from_settings(settings, group_id=settings.consumer_group,
                                       topics=(topics.responses, topics.account_owners, topics.scores)),
            fetch_max_wait_ms=settings.fetch_max_wait_ms),
        decoder=decode_input,
        handler=WakingHandler(handler, store, wakeup),
        producer=producer,
        offset_store=DbOffsetStore(engine, consumer_offsets),
    )
    slack = (
        SlackClient(settings.slack_api_base_url, settings.slack_bot_token.get_secret_value(),
                    timeout=settings.slack_timeout_seconds)
        if settings.slack_bot_token else None
    )
    # The dispatcher retries every step on transient errors, so it skips the pool's pre-ping (three round trips
    # per checkout, on the latency path of every alert); a dead connection fails one step and is replaced.
    # Each row in flight holds at most one connection, and the loop one more: a pool that size (opened as
    # needed), no overflow (connections opened and closed under load cost a PostgreSQL backend each).
    dispatch_engine = service_engine(settings, pre_ping=False, pool_size=settings.concurrency + 2, max_overflow=0)
    dispatcher = AlertDispatcher(
        dispatch_engine, slack, default_channel=settings.slack_default_channel, max_attempts=settings.max_attempts,
        lease_seconds=settings.lease_seconds, concurrency=settings.concurrency,
        retry_base_seconds=settings.retry_base_seconds, channel_interval_seconds=settings.channel_interval_seconds,
        read_back_margin_seconds=settings.read_back_margin_seconds, crm_url_template=settings.crm_url_template,
        interactive=settings.slack_signing_secret is not None, wakeup=wakeup,
    )
    database_url = settings.require_database_url()
    if _pages(config.routes) and settings.pagerduty_routing_key is None:
        raise ConfigError("a route escalates to pagerduty: set PAGERDUTY_ROUTING_KEY (the Events API v2 key)")
    pagerduty = (PagerDutySender(dispatch_engine, url=settings.pagerduty_events_url,
                                 routing_key=settings.pagerduty_routing_key.get_secret_value())
                 if settings.pagerduty_routing_key else None)

    @asynccontextmanager
    async def resources(_stop: asyncio.Event) -> AsyncIterator[Sequence[Worker]]:
        await producer.start()
        runtime.health.add_check("database", functools.partial(ping, engine))
        runtime.health.add_check("consumer", runner.ping)
        log.info("alerts configured", extra={
            "rules": [f"{r.name} ({r.type})" for r in config.rules], "slack": slack is not None,
            "default_channel": settings.slack_default_channel, "comment_hold_s": settings.comment_hold_seconds})
        try:
            yield [
                Worker("alerts-consumer", runner.run),
                Worker("slack-dispatcher", dispatcher.run),
                Worker("alerts-wakeup", lambda stop: wakeup.listen(stop, database_url, NOTIFY_CHANNEL)),
                Worker("alerts-escalations", functools.partial(
                    run_escalations, engine=dispatch_engine, sender=pagerduty,
                    interval=settings.escalation_check_seconds)),
            ]
        finally:
            if slack is not None:
                await slack.close()
            if pagerduty is not None:
                await pagerduty.close()
            await producer.stop()
            await engine.dispose()
            await dispatch_engine.dispose()

    app = create_app(
        title="Pulse alerts",
        description="Detractor, keyword and score-drop alerts to the account owner in Slack, exactly once.",
        health=runtime.health,
        lifespan=runtime.lifespan(resources),
    )
    app.state.settings = settings
    app.include_router(router(engine))
    app.include_router(interactions_router(engine, wakeup))
    return app, runtime
