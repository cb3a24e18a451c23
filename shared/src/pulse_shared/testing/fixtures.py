"""Pytest plugin: real infrastructure for component and end-to-end tests.

- ``kafka_bootstrap``: ``TEST_KAFKA_BOOTSTRAP_SERVERS`` if set, else a broker started for the session on free
  ports: Apache Kafka from its jars (the broker production runs), or tansu with ``TEST_BROKER=tansu``.
- ``session_idempotence()`` / ``idempotence_env()``: whether producers under test use the idempotent producer:
  on for Apache Kafka (as in production), off for tansu (it has none); ``TEST_KAFKA_IDEMPOTENCE`` says for a
  given broker.
- ``apache_kafka``: Apache Kafka's bootstrap for the tests of its own behaviour: the session's broker when it
  is Apache Kafka, else one started for them.
- ``pg_server_url``: ``TEST_DATABASE_URL`` if set, else an embedded PostgreSQL in a temporary folder.
- ``database_url``: a fresh, uniquely named database for one test (dropped afterwards).
- ``topics``: a unique topic prefix for one test, with every Pulse topic created on the broker.
- ``fake_slack`` / ``fake_hubspot``: local servers checking the vendors' request shapes.

Nothing is skipped when a component is missing: the fixtures start what they need.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from pulse_shared.apache_kafka import KafkaBroker, KafkaUnavailable
from pulse_shared.db import plain_database_url
from pulse_shared.localinfra import (
    Broker,
    EmbeddedPostgres,
    create_topics,
    database_url_for,
    ensure_database,
)
from pulse_shared.testing.fake_hubspot import FakeHubSpot
from pulse_shared.testing.fake_slack import FakeSlack
from pulse_shared.topics import Topics

TEST_PARTITIONS = 3


def session_broker() -> str:
    """The broker the session tests on: ``kafka`` (Apache Kafka, the default) or ``tansu``."""
    kind = os.environ.get("TEST_BROKER", "kafka").strip().lower() or "kafka"
    if kind not in {"kafka", "tansu"}:
        raise pytest.UsageError(f"TEST_BROKER={kind!r}: use kafka (Apache Kafka) or tansu")
    return kind


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real Kafka-protocol broker for the test session."""
    given = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if given:
        yield given
        return
    broker: Broker | KafkaBroker
    if session_broker() == "tansu":
        broker = Broker(log_file=tmp_path_factory.mktemp("broker") / "tansu.log").start()
    else:
        try:
            broker = KafkaBroker(tmp_path_factory.mktemp("kafka")).start()
        except KafkaUnavailable as exc:
            pytest.exit(f"{exc}\n(or run the suite on tansu: TEST_BROKER=tansu)", returncode=3)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def session_idempotence() -> bool:
    """Whether producers on the session's broker are idempotent (``KAFKA_ENABLE_IDEMPOTENCE``)."""
    given = os.environ.get("TEST_KAFKA_IDEMPOTENCE", "").strip().lower()
    if given:
        return given in {"1", "true", "yes"}
    return not os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS") and session_broker() == "kafka"


def idempotence_env() -> str:
    """:func:`session_idempotence` as a service's ``KAFKA_ENABLE_IDEMPOTENCE`` value."""
    return "true" if session_idempotence() else "false"


@pytest.fixture(scope="session")
def apache_kafka(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Apache Kafka for the tests of its own behaviour (what tansu does not check): the session's broker when
    it is Apache Kafka, else one started for them (never a skip)."""
    if session_broker() == "kafka" and not os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS"):
        yield kafka_bootstrap
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("apache-kafka")).start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a real PostgreSQL server for the test session."""
    given = os.environ.get("TEST_DATABASE_URL", "").strip()
    if given:
        yield given
        return
    data_dir = Path(tempfile.mkdtemp(prefix="pulse-test-pg-"))
    server = EmbeddedPostgres(data_dir / "data", delete_on_stop=True)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh database of its own for one test."""
    name = f"pulse_test_{uuid.uuid4().hex[:12]}"
    url = await ensure_database(pg_server_url, name)
    try:
        yield url
    finally:
        conn = await asyncpg.connect(plain_database_url(database_url_for(pg_server_url, "postgres")))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def topics(kafka_bootstrap: str) -> Topics:
    """A unique set of topics for one test, created with several partitions."""
    resolved = Topics(prefix=f"t{uuid.uuid4().hex[:10]}.")
    await create_topics(kafka_bootstrap, resolved.all(), partitions=TEST_PARTITIONS)
    return resolved


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A local Slack Web API."""
    slack = FakeSlack().start()
    try:
        yield slack
    finally:
        slack.stop()


@pytest.fixture
def fake_hubspot() -> Iterator[FakeHubSpot]:
    """A local HubSpot CRM API."""
    hubspot = FakeHubSpot().start()
    try:
        yield hubspot
    finally:
        hubspot.stop()
