"""The whole platform for the chaos suite: Apache Kafka (behind a TCP proxy, so the network to it can fail),
an embedded PostgreSQL that can be restarted, the Slack and HubSpot fakes, and two replicas of each service as
real processes. Every account has a company in HubSpot whose owner is a CSM on Slack, so alerts go to DMs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from pulse_shared.apache_kafka import KafkaBroker
from pulse_shared.db import plain_database_url
from pulse_shared.localinfra import EmbeddedPostgres, create_topics, ensure_database, free_port
from pulse_shared.testing.fake_hubspot import FakeHubSpot
from pulse_shared.testing.fake_slack import FakeSlack
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.testing.tcp_proxy import TcpProxy
from pulse_shared.topics import Topics
from tests.chaos.oracle import Oracle
from tests.conftest import CRM_ADMIN_TOKEN, PORT_VARIABLES, SCORING_TOKEN, SEED, STATEFUL, migrate

SERVICES = ("ingest", "scoring", "alerts", "crm_sync")
REPLICAS = 2
ACCOUNTS = [f"chaos-{i:02d}" for i in range(30)]
ALERTS_ADMIN_TOKEN = "chaos-alerts-admin-token"
#: ingest's bound on a broker send: past it, ingest answers 503 + Retry-After.
SEND_BOUND_SECONDS = 3.0
PARTITIONS = 6


def owner_email(account: str) -> str:
    return f"csm-{account}@example.com"


def owner_user(account: str) -> str:
    return f"U0CSM{account[-2:]}"


@dataclass
class Chaos:
    """Everything one chaos run holds."""

    broker: KafkaBroker
    proxy: TcpProxy
    postgres: EmbeddedPostgres
    database_url: str
    topics: Topics
    slack: FakeSlack
    hubspot: FakeHubSpot
    replicas: dict[str, list[ServiceProcess]]
    oracle: Oracle = field(default_factory=Oracle)
    rng: random.Random = field(default_factory=lambda: random.Random(20261202))

    @property
    def bootstrap(self) -> str:
        """What clients bootstrap from (the proxy: the broker advertises it)."""
        return self.proxy.address

    def ingest_urls(self) -> list[str]:
        return [p.url for p in self.replicas["ingest"]]

    def processes(self) -> Iterator[tuple[str, ServiceProcess]]:
        for name, replicas in self.replicas.items():
            for n, process in enumerate(replicas):
                yield f"{name}[{n}]", process

    async def restart(self, process: ServiceProcess) -> None:
        """Start a stopped replica again and wait until it is ready."""
        await asyncio.to_thread(process.start, wait_ready=True, timeout=120)

    async def owner_known(self, account: str) -> bool:
        async with httpx.AsyncClient(timeout=10) as client:
            found = await client.get(f"{self.replicas['alerts'][0].url}/v1/accounts/{account}/owner",
                                     headers={"Authorization": f"Bearer {ALERTS_ADMIN_TOKEN}"})
        return found.status_code == 200 and found.json().get("email") == owner_email(account)


def service_env(chaos_bootstrap: str, topics: Topics, database_url: str, slack: FakeSlack,
                hubspot: FakeHubSpot) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": chaos_bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": "true",
        "KAFKA_TOPIC_PREFIX": topics.prefix,
        "KAFKA_SEND_TIMEOUT_SECONDS": str(SEND_BOUND_SECONDS),
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_BASE_URL": slack.url,
        "SLACK_DEFAULT_CHANNEL": "C0CSALERT1",
        "SLACK_TIMEOUT_SECONDS": "2",
        "ALERTS_ADMIN_TOKEN": ALERTS_ADMIN_TOKEN,
        "ALERTS_COMMENT_HOLD_SECONDS": "0",
        "ALERTS_LEASE_SECONDS": "15",
        "HUBSPOT_ACCESS_TOKEN": hubspot.token,
        "HUBSPOT_API_BASE_URL": hubspot.url,
        "HUBSPOT_RATE_WINDOW_SECONDS": "1",
        "CRM_TIMEOUT_SECONDS": "3",
        "CRM_LEASE_SECONDS": "20",
        "CRM_FLUSH_INTERVAL_SECONDS": "0.5",
        "CRM_OWNER_SYNC_INTERVAL_SECONDS": "2",
        "CRM_SYNC_ADMIN_TOKEN": CRM_ADMIN_TOKEN,
        "SCORING_API_TOKENS": SCORING_TOKEN,
        "INGEST_SEED_FILE": str(SEED),
        "INGEST_RATE_PER_IP_PER_MINUTE": "1000000",
        "LOG_LEVEL": "WARNING",
        "SHUTDOWN_GRACE_SECONDS": "20",
    }


async def set_max_connections(server_url: str, count: int) -> None:
    conn = await asyncpg.connect(plain_database_url(server_url))
    try:
        await conn.execute(f"ALTER SYSTEM SET max_connections = {count}")
    finally:
        await conn.close()


@contextlib.contextmanager
def running_platform(workdir: Path) -> Iterator[Chaos]:
    """Start everything (about a minute), yield it, and stop it all."""
    proxy_port = free_port()
    broker = KafkaBroker(workdir / "kafka", advertised_port=proxy_port)
    proxy = TcpProxy("127.0.0.1", broker.port, port=proxy_port).start()  # first: the broker's readiness check
    broker.start()  # reads metadata, which sends it to the proxy
    postgres = EmbeddedPostgres(workdir / "pg" / "data")
    slack, hubspot = FakeSlack().start(), FakeHubSpot().start()
    replicas: dict[str, list[ServiceProcess]] = {}
    try:
        topics = Topics(prefix="chaos.")
        asyncio.run(create_topics(proxy.address, topics.all(), partitions=PARTITIONS))
        database_url = asyncio.run(ensure_database(postgres.url, "pulse_chaos"))
        # Eight processes' pools (and alerts' dispatch pools) need more than the default 100 connections, as
        # a production database is sized for its replicas.
        asyncio.run(set_max_connections(postgres.url, 400))
        postgres.halt()
        postgres.resume()
        for account in ACCOUNTS:
            owner_id = str(500 + ACCOUNTS.index(account))
            hubspot.add_owner(owner_id, owner_email(account), "CSM", account)
            hubspot.add_company(name=f"Company {account}", pulse_account_id=account, hubspot_owner_id=owner_id)
            slack.users_by_email[owner_email(account)] = owner_user(account)
        env = service_env(proxy.address, topics, database_url, slack, hubspot)
        for module in STATEFUL:
            migrate(module, env)
        logs = workdir / "logs"
        logs.mkdir(exist_ok=True)
        for module in SERVICES:
            replicas[module] = []
            for _ in range(REPLICAS):
                port = free_port()
                replicas[module].append(ServiceProcess(module, env={**env, PORT_VARIABLES[module]: str(port)},
                                                       port=port, log_dir=logs))
        for process in (p for ps in replicas.values() for p in ps):
            process.start(wait_ready=False)
        for process in (p for ps in replicas.values() for p in ps):
            process.wait_ready(timeout=180)
        yield Chaos(broker, proxy, postgres, database_url, topics, slack, hubspot, replicas)
    finally:
        for process in (p for ps in replicas.values() for p in ps):
            if process.process is not None and process.process.poll() is None:
                process.kill()
        slack.stop()
        hubspot.stop()
        proxy.stop()
        broker.stop()
        postgres.stop()
        shutil.rmtree(workdir / "pg", ignore_errors=True)
