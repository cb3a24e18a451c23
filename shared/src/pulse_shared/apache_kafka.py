"""Apache Kafka on one machine, from its Maven jars: the broker users run in production, for the test suite
and the benchmarks.

A single KRaft node (combined broker and controller) on free ports, its log in a folder that survives a
restart (kill -9 and start again keeps every acknowledged record). The jars are resolved by Maven from the
``kafka-pom.xml`` beside this module into ``~/.cache/pulse/kafka-<version>/libs`` (``PULSE_CACHE_DIR``), once
per machine. Needs ``java`` (17+) and, the first time, ``mvn``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from pulse_shared.localinfra import free_port, stop_process, wait_for_port

POM = resources.files("pulse_shared").joinpath("kafka-pom.xml")
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text(encoding="utf-8"))[1]  # type: ignore[index]


class KafkaUnavailable(RuntimeError):
    """Java or Maven is missing, or the broker did not start; the message says what to install or read."""


def cache_dir() -> Path:
    """Where resolved jars are kept between runs."""
    return Path(os.environ.get("PULSE_CACHE_DIR") or Path.home() / ".cache" / "pulse")


def kafka_libs() -> Path:
    """The folder of the broker's jars, resolved with Maven the first time (a minute at most)."""
    libs = cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"
    done = libs / ".resolved"
    wanted = hashlib.sha256(POM.read_bytes()).hexdigest()
    java()
    if done.exists() and done.read_text() == wanted:
        return libs
    shutil.rmtree(libs, ignore_errors=True)
    mvn = _tool("mvn", "resolving Apache Kafka's jars needs Maven once: apt-get install maven")
    libs.mkdir(parents=True, exist_ok=True)
    pom = libs.parent / "pom.xml"
    pom.write_text(POM.read_text(encoding="utf-8"), encoding="utf-8")
    resolved = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={libs}"],
        capture_output=True, text=True, check=False, timeout=600)
    if resolved.returncode != 0:
        raise KafkaUnavailable(f"Maven could not resolve Apache Kafka {KAFKA_VERSION}:\n"
                               f"{(resolved.stdout + resolved.stderr)[-3000:]}")
    done.write_text(wanted)  # the pom it came from: a changed pom resolves again
    return libs


def _tool(name: str, missing: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KafkaUnavailable(missing)
    return path


def java() -> str:
    """The ``java`` to run the broker with."""
    return _tool("java", "Apache Kafka needs Java 17+: apt-get install default-jre-headless")


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (what ``random-uuid`` prints). It may
    start with ``-``, so it is passed as ``--cluster-id=...``: as a separate argument it read as an option."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class KafkaBroker:
    """One Apache Kafka node. ``start`` formats ``data_dir`` the first time and reuses it after, so a
    :meth:`kill` and :meth:`start` is a broker crash with its log kept. Ports stay the same across restarts."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    #: The port clients are told to connect to after bootstrap (a proxy's, in fault tests); default ``port``.
    advertised_port: int | None = None
    heap: str = "512m"
    #: Extra broker settings (``group.initial.rebalance.delay.ms`` and friends are set for tests already).
    settings: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap address for clients."""
        return f"{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        """The broker's own log (read it when a start fails)."""
        return self.data_dir / "broker.log"

    def _properties(self) -> str:
        advertised = self.advertised_port or self.port
        base = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{advertised}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "log.dirs": str(self.data_dir / "log"),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "1000",  # tests use short session timeouts, for speed
            "auto.create.topics.enable": "false",
            "num.partitions": "3",
            "log.flush.interval.messages": "9223372036854775807",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
        }
        return "".join(f"{k}={v}\n" for k, v in {**base, **self.settings}.items())

    def start(self, timeout: float = 120.0) -> KafkaBroker:
        """Start the broker (formatting its storage the first time) and wait until it answers metadata. It
        blocks and runs its own event loop: from async code, ``await asyncio.to_thread(broker.start)``."""
        libs = kafka_libs()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(self._properties(), encoding="utf-8")
        classpath = f"{libs}/*"
        if not (self.data_dir / "log" / "meta.properties").exists():
            formatted = subprocess.run(
                [java(), "-cp", classpath, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}", "-c",
                 str(props)],
                capture_output=True, text=True, check=False, timeout=120)
            if formatted.returncode != 0:
                raise KafkaUnavailable(f"formatting Kafka's storage failed:\n{formatted.stdout}{formatted.stderr}")
        self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [java(), f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Djava.awt.headless=true", "-cp", classpath, "kafka.Kafka", str(props)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            wait_for_port(self.host, self.port, timeout)
        except TimeoutError as exc:
            raise KafkaUnavailable(f"Kafka did not listen on {self.bootstrap}; see {self.log_file}") from exc
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise KafkaUnavailable(f"Kafka exited with {self.process.returncode}; see {self.log_file}")
            if asyncio.run(self._answers_metadata()):
                return
            time.sleep(0.2)
        raise KafkaUnavailable(f"Kafka on {self.bootstrap} did not answer in {timeout:g} s; see {self.log_file}")

    async def _answers_metadata(self) -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            await admin.close()

    def kill(self) -> None:
        """kill -9: the broker dies at once; its log on disk stays."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close_log()

    def stop(self) -> None:
        """A clean shutdown (the log stays)."""
        stop_process(self.process, timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
