"""Fixtures for end-to-end tests: the four services as real processes on the real broker and database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from pulse_shared.db import plain_database_url
from pulse_shared.localinfra import free_port
from pulse_shared.testing.fake_hubspot import FakeHubSpot
from pulse_shared.testing.fake_otlp import FakeOtlpCollector
from pulse_shared.testing.fake_slack import FakeSlack
from pulse_shared.testing.fixtures import idempotence_env
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.topics import Topics

STATEFUL = ("ingest", "scoring", "alerts", "crm_sync")
SEED = Path(__file__).resolve().parent.parent / "deploy" / "dev" / "seed.yaml"
KEY = "pk_dev_product_nps_local_0001"
CRM_ADMIN_TOKEN = "crm-admin-e2e-token"
SCORING_TOKEN = "scoring-e2e-token"


@dataclass
class Platform:
    """The running platform of one test."""

    env: dict[str, str]
    services: dict[str, ServiceProcess]
    slack: FakeSlack
    hubspot: FakeHubSpot
    collector: FakeOtlpCollector
    topics: Topics
    database_url: str

    @property
    def ingest(self) -> str:
        return self.services["ingest"].url

    @property
    def scoring(self) -> str:
        return self.services["scoring"].url


async def applied(database_url: str, schema: str, topic: str) -> int:
    """How many of ``topic``'s records the service whose schema is ``schema`` has applied: the sum of the next
    offsets it stored with its effects."""
    conn = await asyncpg.connect(plain_database_url(database_url))
    try:
        value = await conn.fetchval(f"SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM {schema}.consumer_offsets "
                                    "WHERE topic = $1", topic)
    finally:
        await conn.close()
    return int(value)


def migrate(module: str, env: dict[str, str]) -> None:
    """``python -m <module> migrate`` with ``env`` (on top of this process's environment)."""
    done = subprocess.run([sys.executable, "-m", module, "migrate"], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{module} migrate failed:\n{done.stdout}\n{done.stderr}"


PORT_VARIABLES = {"ingest": "INGEST_PORT", "scoring": "SCORING_PORT", "alerts": "ALERTS_PORT",
                  "crm_sync": "CRM_SYNC_PORT"}


@dataclass
class PlatformFactory:
    """Starts chosen services as real processes, with settings on top of the test defaults."""

    base_env: dict[str, str]
    slack: FakeSlack
    hubspot: FakeHubSpot
    collector: FakeOtlpCollector
    topics: Topics
    database_url: str
    log_dir: Path
    started: list[ServiceProcess]

    def service(self, module: str, **env: str) -> ServiceProcess:
        """A process of ``module`` (not started) on its own free port."""
        port = free_port()
        process = ServiceProcess(module, env={**self.base_env, **env, PORT_VARIABLES[module]: str(port)}, port=port,
                                 log_dir=self.log_dir)
        self.started.append(process)
        return process

    def start(self, modules: tuple[str, ...] = tuple(PORT_VARIABLES), **env: str) -> Platform:
        """Migrate every service's schema, start ``modules`` and wait until each is ready."""
        for module in STATEFUL:
            migrate(module, {**self.base_env, **env})
        services = {module: self.service(module, **env) for module in modules}
        for service in services.values():
            service.start(wait_ready=False)
        for service in services.values():
            service.wait_ready(timeout=90)
        return Platform({**self.base_env, **env}, services, self.slack, self.hubspot, self.collector, self.topics,
                        self.database_url)


@pytest.fixture
def platform_factory(
    kafka_bootstrap: str, database_url: str, topics: Topics, fake_slack: FakeSlack, fake_hubspot: FakeHubSpot,
    tmp_path: Path,
) -> Iterator[PlatformFactory]:
    collector = FakeOtlpCollector().start()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": idempotence_env(),
        "KAFKA_TOPIC_PREFIX": topics.prefix,
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_API_BASE_URL": fake_slack.url,
        "SLACK_DEFAULT_CHANNEL": "C0CSALERT1",
        "HUBSPOT_ACCESS_TOKEN": fake_hubspot.token,
        "HUBSPOT_API_BASE_URL": fake_hubspot.url,
        "CRM_FLUSH_INTERVAL_SECONDS": "0.2",
        "CRM_OWNER_SYNC_INTERVAL_SECONDS": "1",
        "CRM_SYNC_ADMIN_TOKEN": CRM_ADMIN_TOKEN,
        "SCORING_API_TOKENS": SCORING_TOKEN,
        "LOG_LEVEL": "INFO",
        "INGEST_SEED_FILE": str(SEED),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "SHUTDOWN_GRACE_SECONDS": "20",
    }
    factory = PlatformFactory(env, fake_slack, fake_hubspot, collector, topics, database_url, tmp_path, [])
    try:
        yield factory
    finally:
        for service in factory.started:
            if service.process is not None and service.process.poll() is None:
                service.kill()
        collector.stop()


@pytest.fixture
def platform(platform_factory: PlatformFactory) -> Platform:
    """The four services running on the test's broker, database and fakes."""
    return platform_factory.start()
