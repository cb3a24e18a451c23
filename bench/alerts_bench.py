"""Alerts latency benchmark: a detractor's POST /v1/responses until the Slack fake has the message.

A steady stream of answers (default 1,000/s for 60 s, one in ten a detractor with a comment, so the comment
hold does not apply) goes through ingest (one process) to alerts (one process), which posts into each
account owner's DM on the Slack fake (its own process). For every detractor two times are taken from the
moment the load generator was due to send it (so a stalled sender cannot hide latency):
- reference: until ingest's 202, that is until the broker acknowledged the answer on the responses topic;
- alert: until the Slack fake received the post.
Both are printed as p50/p99 side by side, from the same answers in the same run. Target: alert p99 <= 250 ms.

The detractors go round-robin over 500 accounts, each with its own owner, so no DM gets more than one post
a second (Slack's pace, which alerts keeps). One warm-up detractor per account first fills the owner cache
(users.lookupByEmail, conversations.open) and is not measured. The load generator is a small asyncio
HTTP/1.1 client over keep-alive connections that checks its own pace (it reports how late it sent).

Usage: uv run python bench/alerts_bench.py [--rate 1000] [--seconds 60] [--accounts 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from common import Figures, add_common_arguments, peak_rss_mb, start_broker
from ingest_bench import cpu_seconds  # the same /proc reading as the ingest benchmark

from pulse_shared.localinfra import EmbeddedPostgres, create_topics, ensure_database, free_port
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.topics import Topics

ROOT = Path(__file__).resolve().parent.parent
KEY = "pk_bench_alerts_nps_000000001"
ADMIN = "bench-admin"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Http11:
    """One keep-alive HTTP/1.1 connection: write a request, read its response's status."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"X-Pulse-Key: {KEY}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def load(port: int, rate: int, seconds: int, accounts: int, connections: int, tag: str
               ) -> tuple[dict[str, float], dict[str, float], float, int]:
    """Send answers at ``rate``/s; return (detractor id → due time, → 202 time), the worst lateness, errors."""
    total = rate * seconds
    queue: asyncio.Queue[tuple[float, str, bytes, bool] | None] = asyncio.Queue()
    due: dict[str, float] = {}
    acked: dict[str, float] = {}
    errors = 0

    async def worker() -> None:
        nonlocal errors
        conn = Http11("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            at, rid, body, detractor = item
            status = await conn.post("/v1/responses", body)
            if status != 202:
                errors += 1
            elif detractor:
                acked[rid] = time.time()
                due[rid] = at

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.time() + 0.5
    worst = 0.0
    detractors = 0
    for n in range(total):
        at = start + n / rate
        delay = at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        worst = max(worst, -delay)
        detractor = n % 10 == 0
        rid = f"{tag}-{n}"
        if detractor:
            account = f"acct-{detractors % accounts}"
            detractors += 1
            answer = {"response_id": rid, "survey_type": "nps", "score": 3, "account_id": account,
                      "comment": "Exports keep timing out", "respondent_id": f"u{n}"}
        else:
            answer = {"response_id": rid, "survey_type": "nps", "score": 9 if n % 3 else 7,
                      "account_id": f"acct-{n % accounts}"}
        queue.put_nowait((at, rid, json.dumps(answer).encode(), detractor))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return due, acked, worst, errors


def wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready:\n{log.read_text()[-3000:]}")


def posts(slack_url: str) -> dict[str, float]:
    """Response id → the time the fake received its post."""
    received = httpx.get(f"{slack_url}/_bench/posts", timeout=30).json()
    return {alert_id.split(":")[-1]: at for alert_id, at in received}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000, help="answers per second")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--connections", type=int, default=32)
    add_common_arguments(parser)
    args = parser.parse_args()
    figures = Figures("alerts", args.broker)
    work = Path(tempfile.mkdtemp(prefix="pulse-alerts-bench-"))
    broker = start_broker(args.broker, work)
    pg_url = os.environ.get("TEST_DATABASE_URL")
    pg = None
    if not pg_url:
        pg = EmbeddedPostgres(work / "pg", delete_on_stop=True)
        pg_url = pg.url
    database_url = asyncio.run(ensure_database(pg_url, f"pulse_bench_{uuid.uuid4().hex[:8]}"))
    for module, schema in (("ingest.migrations", "ingest"), ("alerts.migrations", "alerts")):
        upgrade_to_head(module, database_url, schema)
    asyncio.run(create_topics(broker.bootstrap, Topics().all(), partitions=3))
    seed = work / "seed.yaml"
    seed.write_text(f"surveys:\n  - survey_id: product-nps\n    name: NPS\n    survey_type: nps\n    keys:\n"
                    f"      - key: {KEY}\n        rate_per_minute: 1000000\n")
    slack_log = work / "slack.log"
    slack = subprocess.Popen([sys.executable, str(ROOT / "bench" / "slack_fake_server.py")], stdout=subprocess.PIPE,
                             stderr=slack_log.open("wb"))
    assert slack.stdout is not None
    slack_url = slack.stdout.readline().decode().strip()
    ingest_port, alerts_port = free_port(), free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": broker.idempotence,
           "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", "INGEST_SEED_FILE": str(seed),
           "INGEST_PORT": str(ingest_port), "INGEST_RATE_PER_IP_PER_MINUTE": "100000000",
           "ALERTS_PORT": str(alerts_port), "ALERTS_ADMIN_TOKEN": ADMIN, "ALERTS_COMMENT_HOLD_SECONDS": "0",
           "SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_BASE_URL": slack_url}
    logs = {name: work / f"{name}.log" for name in ("ingest", "alerts")}
    ingest = subprocess.Popen([sys.executable, "-m", "ingest"], env=env, stdout=subprocess.DEVNULL,
                              stderr=logs["ingest"].open("wb"))
    alerts = subprocess.Popen([sys.executable, "-m", "alerts"], env=env, stdout=subprocess.DEVNULL,
                              stderr=logs["alerts"].open("wb"))
    try:
        wait_up(f"http://127.0.0.1:{ingest_port}/readyz", ingest, logs["ingest"])
        wait_up(f"http://127.0.0.1:{alerts_port}/readyz", alerts, logs["alerts"])
        with httpx.Client(base_url=f"http://127.0.0.1:{alerts_port}", timeout=10,
                          headers={"Authorization": f"Bearer {ADMIN}"}) as client:
            for i in range(args.accounts):
                client.put(f"/v1/accounts/acct-{i}/owner", json={"email": f"csm-{i}@bench.example"}).raise_for_status()
        # Warm-up: one detractor per account fills the owner and DM cache (not measured).
        asyncio.run(load(ingest_port, min(args.rate, 500), max(1, args.accounts * 10 // min(args.rate, 500)),
                         args.accounts, args.connections, "warm"))
        deadline = time.monotonic() + 120
        while len(posts(slack_url)) < args.accounts and time.monotonic() < deadline:
            time.sleep(0.5)
        warm = set(posts(slack_url))
        print(f"warm-up: {len(warm)} alerts delivered to {args.accounts} owners' DMs")
        time.sleep(1.5)  # every DM's pace has reopened
        spy = os.environ.get("BENCH_PROFILE_ALERTS")  # a py-spy output file: profile alerts while measured
        profiler = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(alerts.pid),
                                     "-d", str(args.seconds), "-f", "raw", "-o", spy],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if spy else None
        due, acked, worst, errors = asyncio.run(load(ingest_port, args.rate, args.seconds, args.accounts,
                                                     args.connections, "run"))
        measured = set(due)
        if profiler is not None:
            profiler.wait(timeout=120)
        deadline = time.monotonic() + 60
        received = posts(slack_url)
        while not measured <= set(received) and time.monotonic() < deadline:
            time.sleep(0.5)
            received = posts(slack_url)
        missing = measured - set(received)
        reference = [(acked[r] - due[r]) * 1000 for r in measured]
        latency = [(received[r] - due[r]) * 1000 for r in measured if r in received]
        print(f"load: {args.rate:,} answers/s for {args.seconds} s ({len(due):,} detractors measured); sender at most "
              f"{worst * 1000:.0f} ms behind its schedule; {errors} non-202 answers")
        print(f"reference, answer acknowledged on the responses topic (POST → 202): "
              f"p50 {percentile(reference, 0.5):6.1f} ms   p99 {percentile(reference, 0.99):6.1f} ms")
        print(f"detractor POST → Slack fake received the alert:                    "
              f"p50 {percentile(latency, 0.5):6.1f} ms   p99 {percentile(latency, 0.99):6.1f} ms   "
              f"(max {max(latency):.0f} ms, mean {statistics.fmean(latency):.1f} ms; target p99 <= 250 ms)")
        metrics = httpx.get(f"http://127.0.0.1:{alerts_port}/metrics", timeout=10).text
        histogram = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
                     if line.startswith("pulse_alerts_delivery_seconds")}
        count = histogram.get("pulse_alerts_delivery_seconds_count", 0.0)
        fast = histogram.get('pulse_alerts_delivery_seconds_bucket{le="0.1"}', 0.0)
        if count:
            print(f"inside alerts (row committed → Slack answered, warm-up included): mean "
                  f"{histogram['pulse_alerts_delivery_seconds_sum'] / count * 1000:.1f} ms, "
                  f"{fast / count:.0%} within 100 ms")
        print("CPU seconds: " + ", ".join(f"{name} {cpu_seconds(p.pid):.1f}" for name, p in
                                           (("ingest", ingest), ("alerts", alerts), ("slack fake", slack))))
        violations = httpx.get(f"{slack_url}/_bench/violations", timeout=10).json()
        duplicates = len(httpx.get(f"{slack_url}/_bench/posts", timeout=30).json()) - len(received)
        print(f"alerts missing after 60 s: {len(missing)}; duplicate posts: {duplicates}; "
              f"Slack contract violations: {len(violations)}")
        if missing or duplicates or violations or errors:
            raise SystemExit("the run lost, repeated or refused alerts: the figures above are void")
        load_note = (f"{args.rate:,} answers/s for {args.seconds} s, {len(due):,} detractors; sender at most "
                     f"{worst * 1000:.0f} ms behind schedule")
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            figures.add(f"alert_{name}", f"alerts: detractor POST -> Slack fake received, {name}",
                        percentile(latency, q), "ms", reference=percentile(reference, q),
                        reference_label=f"POST -> 202 (answer on the responses topic), {name}", note=load_note)
        figures.add("rss_alerts", "peak RSS: alerts (at 1,000 answers/s)", peak_rss_mb(alerts.pid), "MB")
        figures.write(args.json)
    finally:
        for process in (ingest, alerts, slack):
            process.terminate()
            process.wait(timeout=30)
        broker.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
