"""Fixtures for end-to-end tests: the four services as real processes on the real broker and database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pulse_shared.localinfra import free_port
from pulse_shared.testing.fake_hubspot import FakeHubSpot
from pulse_shared.testing.fake_otlp import FakeOtlpCollector
from pulse_shared.testing.fake_slack import FakeSlack
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.topics import Topics

STATEFUL = ("ingest", "scoring", "alerts", "crm_sync")
SEED = Path(__file__).resolve().parent.parent / "deploy" / "dev" / "seed.yaml"
KEY = "pk_dev_product_nps_local_0001"


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


def migrate(module: str, env: dict[str, str]) -> None:
    """``python -m <module> migrate`` with ``env`` (on top of this process's environment)."""
    done = subprocess.run([sys.executable, "-m", module, "migrate"], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{module} migrate failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def platform(
    kafka_bootstrap: str, database_url: str, topics: Topics, fake_slack: FakeSlack, fake_hubspot: FakeHubSpot,
    tmp_path: Path,
) -> Iterator[Platform]:
    collector = FakeOtlpCollector().start()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "KAFKA_TOPIC_PREFIX": topics.prefix,
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_API_BASE_URL": fake_slack.url,
        "SLACK_DEFAULT_CHANNEL": "#cs-alerts",
        "HUBSPOT_ACCESS_TOKEN": fake_hubspot.token,
        "HUBSPOT_API_BASE_URL": fake_hubspot.url,
        "LOG_LEVEL": "INFO",
        "INGEST_SEED_FILE": str(SEED),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "SHUTDOWN_GRACE_SECONDS": "20",
    }
    for module in STATEFUL:
        migrate(module, env)
    ports = {"ingest": "INGEST_PORT", "scoring": "SCORING_PORT", "alerts": "ALERTS_PORT", "crm_sync": "CRM_SYNC_PORT"}
    services: dict[str, ServiceProcess] = {}
    for module, port_var in ports.items():
        port = free_port()
        services[module] = ServiceProcess(module, env={**env, port_var: str(port)}, port=port, log_dir=tmp_path)
    try:
        for service in services.values():
            service.start(wait_ready=False)
        for service in services.values():
            service.wait_ready(timeout=90)
        yield Platform(env, services, fake_slack, fake_hubspot, collector, topics, database_url)
    finally:
        for service in services.values():
            if service.process is not None and service.process.poll() is None:
                service.kill()
        collector.stop()
