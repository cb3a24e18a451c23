"""What the benchmarks share: the broker to run on (tansu or Apache Kafka), the figures each one records for
``bench/run.py``'s table, and the peak memory of the processes they start.

A benchmark records each figure with its reference (measured in the same run) via :class:`Figures`, and writes
them as JSON when given ``--json PATH``; ``bench/run.py`` runs every benchmark on both brokers and prints one
table from those files.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pulse_shared.apache_kafka import KafkaBroker
from pulse_shared.localinfra import Broker

BROKERS = ("tansu", "kafka")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", choices=BROKERS, default="tansu",
                        help="tansu (make run's broker) or kafka (Apache Kafka 4.1.1, idempotent producer on)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")


@dataclass
class RunningBroker:
    """A broker the benchmark started, and how its services' producers are set for it."""

    bootstrap: str
    pid: int
    idempotence: str
    stop: Callable[[], None]


def start_broker(kind: str, work: Path | None = None) -> RunningBroker:
    """Start a broker of ``kind`` on free ports: tansu (no idempotent producer), or Apache Kafka from its jars
    with idempotence on, as production runs it."""
    work = work or Path(tempfile.mkdtemp(prefix="pulse-bench-broker-"))
    if kind == "kafka":
        kafka = KafkaBroker(work / "kafka", heap="1g").start()
        assert kafka.process is not None
        return RunningBroker(kafka.bootstrap, kafka.process.pid, "true", kafka.stop)
    tansu = Broker(log_file=work / "broker.log").start()
    assert tansu.process is not None
    return RunningBroker(tansu.bootstrap, tansu.process.pid, "false", tansu.stop)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (``VmHWM``), in MB; read it before the process exits."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


@dataclass
class Figure:
    """One measured figure, with the reference measured in the same run (if it has one)."""

    key: str
    label: str
    value: float
    unit: str
    reference: float | None = None
    reference_label: str | None = None
    #: ``value / reference`` (or its inverse, where smaller is better), when both are rates or counts.
    ratio: float | None = None
    note: str = ""


@dataclass
class Figures:
    """The figures of one benchmark run on one broker."""

    bench: str
    broker: str
    figures: list[Figure] = field(default_factory=list)

    def add(self, key: str, label: str, value: float, unit: str, *, reference: float | None = None,
            reference_label: str | None = None, ratio: float | None = None, note: str = "") -> None:
        self.figures.append(Figure(key, label, value, unit, reference, reference_label, ratio, note))

    def write(self, path: Path | None) -> None:
        if path is not None:
            path.write_text(json.dumps({"bench": self.bench, "broker": self.broker,
                                        "figures": [asdict(f) for f in self.figures]}, indent=1))
