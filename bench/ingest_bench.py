"""Ingest benchmark: each figure is printed next to its reference, measured in the same run.

1. Single-answer POST /v1/responses throughput (every answer acknowledged by the broker, acks=all) next to
   a bare FastAPI endpoint taking the same body, both on one uvicorn worker, loaded by wrk alike.
2. Batch throughput: answers per second through POST /v1/responses/batch (500 per request), with the CPU
   each answer cost ingest and the broker; then with two ingest replicas, each loaded by its own wrk, so that
   ingest can use both cores (one worker uses one).

The single-answer figure alternates the two endpoints for several rounds and reports the median ratio, so
drift in the machine's other work falls on both alike; it also prints each server's CPU time per request
(from /proc), a steadier figure than throughput on a shared machine. Needs Debian's wrk.
Usage: uv run python bench/ingest_bench.py [--seconds 10] [--connections 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from common import Figures, add_common_arguments, peak_rss_mb, start_broker

from pulse_shared.localinfra import EmbeddedPostgres, create_topics, ensure_database, free_port, topic_partitions
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.topics import Topics

ROOT = Path(__file__).resolve().parent.parent
KEY = "pk_bench_product_nps_00000001"
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Pulse-Key"] = "%s"
local n = 0
local template = %s
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, (string.gsub(template, "__N__", tostring(n))))
end
"""


class Load(NamedTuple):
    """What one wrk run measured."""

    rps: float
    note: str
    #: Answers in 2xx replies (a batch reply is 2xx only if each of its answers was accepted or refused).
    acknowledged: int


def wrk(url: str, body_format: str, seconds: int, connections: int, *, threads: int = 2, tag: str = "") -> Load:
    """Load ``url`` with POSTs of ``body_format`` (``__N__`` numbered per request, after ``tag``)."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(LUA % (KEY, json.dumps(body_format.replace("__N__", f"{tag}__N__"))))
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), "--latency", url]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    p99 = re.search(r"^\s+99%\s+(\S+)", done.stdout, re.MULTILINE)  # the latency distribution line
    note = f"p99 {p99.group(1) if p99 else '?'}" + (f", {non2xx.group(1)} non-2xx" if non2xx else "")
    total = int(re.search(r"(\d+) requests in", done.stdout).group(1))  # type: ignore[union-attr]
    ok = total - int(non2xx.group(1) if non2xx else 0)
    return Load(rps, note, ok * body_format.count('"response_id"'))


async def records_on(bootstrap: str, topic: str) -> int:
    """How many records the topic holds (the sum of its partitions' end offsets)."""
    partitions = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def check_batch_accepted(url: str, body: str) -> int:
    """One batch by hand: every answer in it must be accepted, or the throughput figures mean nothing."""
    reply = httpx.post(url, content=body.replace("__N__", "check"), timeout=30,
                       headers={"Content-Type": "application/json", "X-Pulse-Key": KEY}).json()
    if reply["accepted"] != body.count('"response_id"'):
        raise SystemExit(f"the benchmark's batch is not all accepted: {reply}")
    return int(reply["accepted"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    add_common_arguments(parser)
    args = parser.parse_args()
    figures = Figures("ingest", args.broker)
    broker = start_broker(args.broker)
    pg_url = os.environ.get("TEST_DATABASE_URL")
    pg = None
    if not pg_url:
        pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="pulse-bench-")) / "data", delete_on_stop=True)
        pg_url = pg.url
    database_url = asyncio.run(ensure_database(pg_url, f"pulse_bench_{uuid.uuid4().hex[:8]}"))
    upgrade_to_head("ingest.migrations", database_url, "ingest")
    topics = Topics()
    asyncio.run(create_topics(broker.bootstrap, topics.all(), partitions=3))
    seed = Path(tempfile.mkstemp(suffix=".yaml")[1])
    seed.write_text(f"surveys:\n  - survey_id: product-nps\n    name: NPS\n    survey_type: nps\n    keys:\n"
                    f"      - key: {KEY}\n        rate_per_minute: 1000000\n")
    ingest_port, bare_port = free_port(), free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": broker.idempotence,
           "DATABASE_URL": database_url, "INGEST_SEED_FILE": str(seed), "INGEST_PORT": str(ingest_port),
           "INGEST_RATE_PER_IP_PER_MINUTE": "100000000", "LOG_LEVEL": "WARNING"}
    ingest_log = Path(tempfile.mkstemp(suffix=".log")[1])
    ingest = subprocess.Popen([sys.executable, "-m", "ingest"], env=env, stdout=subprocess.DEVNULL,
                              stderr=ingest_log.open("wb"))
    second_port = free_port()  # a second replica, for the batch figure on both cores
    second = subprocess.Popen([sys.executable, "-m", "ingest"], env={**env, "INGEST_PORT": str(second_port)},
                              stdout=subprocess.DEVNULL, stderr=ingest_log.open("ab"))
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port),
                             "--log-level", "warning", "--no-access-log"], cwd=ROOT / "bench",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            wait_up(f"http://127.0.0.1:{ingest_port}/readyz")
        except TimeoutError:
            print(ingest_log.read_text()[-3000:])
            raise
        wait_up(f"http://127.0.0.1:{second_port}/readyz")
        wait_up(f"http://127.0.0.1:{bare_port}/docs")
        single = ('{"response_id": "bench-__N__", "survey_type": "nps", "score": 7, "account_id": "acct-1", '
                  '"comment": "fine", "properties": {"plan": "pro"}}')
        acknowledged = wrk(f"http://127.0.0.1:{ingest_port}/v1/responses", single, 2, args.connections).acknowledged
        # Alternate the two, so that drift in what else the machine is doing falls on both alike; the
        # median of the rounds' ratios is the figure.
        ratios, cpu_ratios, singles, bares = [], [], [], []
        for round_no in range(1, args.rounds + 1):
            bare_cpu = cpu_seconds(bare.pid)
            ref, ref_note, _ = wrk(f"http://127.0.0.1:{bare_port}/v1/responses", single, args.seconds,
                                   args.connections)
            bare_cpu = (cpu_seconds(bare.pid) - bare_cpu) / (ref * args.seconds)
            ingest_cpu = cpu_seconds(ingest.pid)
            got, note, answers = wrk(f"http://127.0.0.1:{ingest_port}/v1/responses", single, args.seconds,
                                     args.connections, tag=f"s{round_no}-")
            acknowledged += answers
            ingest_cpu = (cpu_seconds(ingest.pid) - ingest_cpu) / (got * args.seconds)
            ratios.append(got / ref)
            singles.append(got)
            bares.append(ref)
            cpu_ratios.append(bare_cpu / ingest_cpu)
            print(f"  round {round_no}: single answer, acked by the broker: {got:8,.0f} req/s ({note}, "
                  f"{ingest_cpu * 1e6:.0f} us CPU each)   reference, bare FastAPI endpoint on one worker: "
                  f"{ref:8,.0f} req/s ({ref_note}, {bare_cpu * 1e6:.0f} us CPU each); ratio {got / ref:.2f}")
        print(f"single answer: median ratio to the bare endpoint {statistics.median(ratios):.2f} over "
              f"{args.rounds} rounds (min {min(ratios):.2f}, max {max(ratios):.2f}); target >= 0.80. "
              f"Server CPU per request, bare/ingest (steadier than throughput): "
              f"{statistics.median(cpu_ratios):.2f}")
        figures.add("single_rps", "ingest: single answer, acked by the broker", statistics.median(singles), "req/s",
                    reference=statistics.median(bares), reference_label="bare FastAPI endpoint, same body",
                    ratio=statistics.median(ratios), note=f"median of {args.rounds} rounds, wrk")
        items = ",".join(
            f'{{"response_id": "b-__N__-{i}", "survey_type": "nps", "score": {i % 11}, "account_id": "acct-{i % 97}"}}'
            for i in range(500))
        body = '{"responses": [' + items + "]}"
        acknowledged += check_batch_accepted(f"http://127.0.0.1:{ingest_port}/v1/responses/batch", body)
        rates = []
        for round_no in range(1, args.rounds + 1):
            ingest_cpu, broker_cpu = cpu_seconds(ingest.pid), cpu_seconds(broker.pid)
            rps, note, answers = wrk(f"http://127.0.0.1:{ingest_port}/v1/responses/batch", body, args.seconds,
                                     min(args.connections, 8), tag=f"b{round_no}-")
            acknowledged += answers
            answered = rps * 500 * args.seconds
            ingest_cpu = (cpu_seconds(ingest.pid) - ingest_cpu) / answered
            broker_cpu = (cpu_seconds(broker.pid) - broker_cpu) / answered
            rates.append(rps * 500)
            print(f"  round {round_no}: batch of 500: {rps * 500:10,.0f} answers/s ({rps:,.1f} req/s, {note}; CPU per "
                  f"answer: ingest {ingest_cpu * 1e6:.1f} us, broker {broker_cpu * 1e6:.1f} us)")
        print(f"batch of 500: median {statistics.median(rates):,.0f} answers/s over {args.rounds} rounds "
              f"(min {min(rates):,.0f}, max {max(rates):,.0f}; reference: the single-answer rounds above; "
              f"target >= 50,000 answers/s)")
        figures.add("batch_answers_per_s", "ingest: batch of 500 answers, one replica", statistics.median(rates),
                    "answers/s", reference=statistics.median(singles), reference_label="single-answer req/s above",
                    ratio=statistics.median(rates) / statistics.median(singles),
                    note=f"median of {args.rounds} rounds")
        # Both cores: two replicas (as the HPA scales ingest), each loaded by its own wrk.
        rates = []
        for round_no in range(1, args.rounds + 1):
            with ThreadPoolExecutor(2) as pool:
                loads = [pool.submit(wrk, f"http://127.0.0.1:{port}/v1/responses/batch", body, args.seconds, 4,
                                     threads=1, tag=f"r{round_no}p{port}-") for port in (ingest_port, second_port)]
                results = [load.result() for load in loads]
            rps = sum(load.rps for load in results)
            acknowledged += sum(load.acknowledged for load in results)
            rates.append(rps * 500)
            print(f"  round {round_no}: batch of 500, two replicas: {rps * 500:10,.0f} answers/s "
                  f"({'; '.join(load.note for load in results)})")
        print(f"batch of 500, two replicas on the 2 cores: median {statistics.median(rates):,.0f} answers/s over "
              f"{args.rounds} rounds (min {min(rates):,.0f}, max {max(rates):,.0f}; target >= 50,000 answers/s)")
        figures.add("batch_two_replicas", "ingest: batch of 500, two replicas on the 2 cores",
                    statistics.median(rates), "answers/s", note=f"median of {args.rounds} rounds")
        figures.add("rss_ingest", "peak RSS: ingest", peak_rss_mb(ingest.pid), "MB",
                    reference=peak_rss_mb(bare.pid), reference_label="bare FastAPI process")
        # Every acknowledged answer must be on the topic (more is fine: replies wrk cut off at its end).
        on_topic = asyncio.run(records_on(broker.bootstrap, topics.responses))
        print(f"answers acknowledged to the load generators: {acknowledged:,}; records on the responses "
              f"topic: {on_topic:,}")
        if on_topic < acknowledged:
            raise SystemExit("fewer records on the topic than answers acknowledged: the figures above are void")
        figures.write(args.json)
    finally:
        for process in (ingest, second, bare):
            process.terminate()
            process.wait(timeout=30)
        broker.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
