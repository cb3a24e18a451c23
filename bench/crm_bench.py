"""CRM sync benchmark: what HubSpot is asked for, next to the naive count, and how fresh the CRM field is.

1. **Cost.** 10,000 score events over 1,000 accounts go through crm-sync's write path (PostgreSQL, the real
   store and writer) to the HubSpot fake, in 10 rounds of 1,000 events with one flush after each (a flush is
   what ``CRM_FLUSH_INTERVAL_SECONDS`` triggers). Printed per flush: the accounts whose values changed, the
   batch calls made, and the target ceil(changed / 100); then the calls and request bytes of the whole run
   next to the naive integration's (one call per event, each with the event's properties), counted from the
   same events in the same run.
2. **Freshness.** A steady stream of answers (default 200/s for 60 s over 1,000 accounts) through ingest,
   scoring and crm-sync (each its own process, default settings: a 5-s flush) to the HubSpot fake (its own
   process). Each answer carries its own ``submitted_at`` (the time the load generator was due to send it),
   which crm-sync writes as ``pulse_last_response_at``: an answer is in the CRM when a write for its account
   carries that time or a later one. Printed: p50/p99 of answer → CRM field next to POST → 202 (the answer
   acknowledged on the responses topic) for the same answers.

Usage: uv run python bench/crm_bench.py [--rate 200] [--seconds 60] [--accounts 1000] [--skip-freshness]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import TopicPartition
from alerts_bench import KEY, Http11, percentile, wait_up  # the same load generator and write key
from common import Figures, RunningBroker, add_common_arguments, peak_rss_mb, start_broker

from crm_sync.connectors.hubspot import HubSpotConnector, HubSpotOptions
from crm_sync.dispatcher import ConnectorWriter, WriterOptions
from crm_sync.domain.properties import property_defs, score_properties
from crm_sync.store import WriteStore
from crm_sync.tables import consumer_offsets
from pulse_shared.consumer import Record
from pulse_shared.db import create_engine
from pulse_shared.events import ScoreSummary, ScoreUpdated
from pulse_shared.localinfra import EmbeddedPostgres, create_topics, ensure_database, free_port
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.testing.fake_hubspot import FakeHubSpot
from pulse_shared.topics import Topics
from pulse_shared.transactional import TransactionalHandler

ROOT = Path(__file__).resolve().parent.parent
CONSUMER_BATCH = 500


def score_event(account: str, version: int, rng: random.Random) -> ScoreUpdated:
    n = version
    value = round(rng.uniform(-100, 100), 1)
    return ScoreUpdated(
        account_id=account, version=version, computed_at=datetime.now(UTC),
        scores=tuple(ScoreSummary(metric="nps", window=w, n=n, value=value, ci_low=max(-100.0, value - 40),
                                  ci_high=min(100.0, value + 40),
                                  counts={"promoters": n // 2, "passives": 0, "detractors": n - n // 2})
                     for w in ("30d", "90d")),
    )


async def cost(database_url: str, figures: Figures, *, events: int, accounts: int, rounds: int) -> None:
    await asyncio.to_thread(upgrade_to_head, "crm_sync.migrations", database_url, "crm_sync")
    fake = FakeHubSpot().start()
    for d in property_defs("pulse_account_id", write_comments=False):
        fake.properties[d.name] = {"name": d.name, "type": d.type, "hasUniqueValue": d.unique, "groupName": "pulse"}
    for i in range(accounts):
        fake.add_company(pulse_account_id=f"acct-{i}")
    engine = create_engine(database_url, pool_size=4)
    handler = TransactionalHandler(engine, consumer_offsets, "bench", WriteStore(["hubspot"]).apply,
                                   name="bench", message="queued")
    connector = HubSpotConnector(fake.url, fake.token, HubSpotOptions(), timeout=10)
    writer = ConnectorWriter(engine, connector, WriterOptions())
    rng = random.Random(7)
    versions: dict[str, int] = {}
    naive_bytes = 0
    offset = 0
    total_calls = 0
    within = True
    tp = TopicPartition("scores", 0)
    try:
        await writer.prepare()
        print(f"cost: {events:,} score events over {accounts:,} accounts, {rounds} flushes")
        for r in range(rounds):
            batch = []
            for _ in range(events // rounds):
                account = f"acct-{rng.randrange(accounts)}"
                versions[account] = versions.get(account, 0) + 1
                event = score_event(account, versions[account], rng)
                batch.append(event)
                naive_bytes += len(json.dumps({"inputs": [{"id": account, "idProperty": "pulse_account_id",
                                                           "properties": score_properties(event)}]}))
            for start in range(0, len(batch), CONSUMER_BATCH):
                chunk = batch[start:start + CONSUMER_BATCH]
                records = [Record("scores", 0, offset + i, e.account_id.encode(), e, (), 0)
                           for i, e in enumerate(chunk)]
                offset += len(chunk)
                await handler.handle(tp, records, offset)
            changed = len({e.account_id for e in batch})
            before = len(fake.batch_calls())
            await writer.cycle()
            calls = len(fake.batch_calls()) - before
            total_calls += calls
            target = math.ceil(changed / 100)
            within = within and calls <= target
            print(f"  flush {r + 1:2d}: {len(batch):,} events, {changed} accounts changed -> {calls} calls "
                  f"(target <= {target})")
        sent = sum(c.size for c in fake.batch_calls())
        print(f"HubSpot batch calls: {total_calls}   naive one call per event, same events: {events:,} "
              f"({events / max(total_calls, 1):.0f}x more)")
        print(f"request bytes:       {sent / 1e6:.2f} MB   naive: {naive_bytes / 1e6:.2f} MB "
              f"({naive_bytes / max(sent, 1):.1f}x more)")
        print(f"every flush within ceil(changed accounts / 100) calls: {'yes' if within else 'NO'}; "
              f"contract violations: {len(fake.violations)}")
        if fake.violations or not within:
            raise SystemExit("the cost run broke the HubSpot contract or its call target: figures void")
        figures.add("crm_calls", f"crm-sync: HubSpot calls for {events:,} score events ({accounts:,} accounts)",
                    total_calls, "calls", reference=events, reference_label="one call per event",
                    ratio=events / max(total_calls, 1), note=f"{rounds} flushes; bytes {sent / 1e6:.2f} MB vs "
                    f"{naive_bytes / 1e6:.2f} MB")
    finally:
        await connector.close()
        await engine.dispose()
        fake.stop()


async def load(port: int, rate: int, seconds: int, accounts: int, connections: int
               ) -> tuple[dict[str, tuple[str, int, float]], float, int]:
    """Send answers at ``rate``/s; return (response id → (account, due ms, 202 time)), worst lateness, errors."""
    queue: asyncio.Queue[tuple[str, str, int, bytes] | None] = asyncio.Queue()
    acked: dict[str, tuple[str, int, float]] = {}
    errors = 0

    async def worker() -> None:
        nonlocal errors
        conn = Http11("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            rid, account, due_ms, body = item
            status = await conn.post("/v1/responses", body)
            if status != 202:
                errors += 1
            else:
                acked[rid] = (account, due_ms, time.time())

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.time() + 0.5
    worst = 0.0
    for n in range(rate * seconds):
        at = start + n / rate
        delay = at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        worst = max(worst, -delay)
        due_ms = int(at * 1000)
        account = f"acct-{n % accounts}"
        answer = {"response_id": f"r{n}", "survey_type": "nps", "score": n % 11, "account_id": account,
                  "submitted_at": datetime.fromtimestamp(due_ms / 1000, UTC).isoformat(timespec="milliseconds")}
        queue.put_nowait((f"r{n}", account, due_ms, json.dumps(answer).encode()))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return acked, worst, errors


def freshness(database_url: str, broker: RunningBroker, work: Path, figures: Figures, *, rate: int, seconds: int,
              accounts: int) -> None:
    for module, schema in (("ingest.migrations", "ingest"), ("scoring.migrations", "scoring"),
                           ("crm_sync.migrations", "crm_sync")):
        upgrade_to_head(module, database_url, schema)
    seed = work / "seed.yaml"
    seed.write_text(f"surveys:\n  - survey_id: product-nps\n    name: NPS\n    survey_type: nps\n    keys:\n"
                    f"      - key: {KEY}\n        rate_per_minute: 1000000\n")
    fake_log = work / "hubspot.log"
    fake = subprocess.Popen([sys.executable, str(ROOT / "bench" / "hubspot_fake_server.py"), "--accounts",
                             str(accounts)], stdout=subprocess.PIPE, stderr=fake_log.open("wb"))
    assert fake.stdout is not None
    hubspot_url = fake.stdout.readline().decode().strip()
    ports = {"ingest": free_port(), "scoring": free_port(), "crm_sync": free_port()}
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": broker.idempotence,
           "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", "INGEST_SEED_FILE": str(seed),
           "INGEST_RATE_PER_IP_PER_MINUTE": "100000000", "INGEST_PORT": str(ports["ingest"]),
           "SCORING_PORT": str(ports["scoring"]), "CRM_SYNC_PORT": str(ports["crm_sync"]),
           "HUBSPOT_ACCESS_TOKEN": "pat-test-token", "HUBSPOT_API_BASE_URL": hubspot_url}
    processes = {}
    try:
        for module in ports:
            log = work / f"{module}.log"
            processes[module] = (subprocess.Popen([sys.executable, "-m", module], env=env, stdout=subprocess.DEVNULL,
                                                  stderr=log.open("wb")), log)
        for module, (process, log) in processes.items():
            wait_up(f"http://127.0.0.1:{ports[module]}/readyz", process, log)
        acked, worst, errors = asyncio.run(load(ports["ingest"], rate, seconds, accounts, 16))
        deadline = time.monotonic() + 60
        arrived: dict[str, float] = {}
        while time.monotonic() < deadline:
            writes = httpx.get(f"{hubspot_url}/_bench/writes", timeout=30).json()
            newest: dict[str, list[tuple[int, float]]] = {}
            for at, _size, items in writes:
                for account, last in items:
                    if last:
                        newest.setdefault(account, []).append((int(last), at))
            arrived = {}
            for rid, (account, due_ms, _acked) in acked.items():
                times = [at for last, at in newest.get(account, []) if last >= due_ms - 1]
                if times:
                    arrived[rid] = min(times)
            if len(arrived) == len(acked):
                break
            time.sleep(1)
        missing = len(acked) - len(arrived)
        reference = [(acked[r][2] - acked[r][1] / 1000) * 1000 for r in acked]
        latency = [(arrived[r] - acked[r][1] / 1000) * 1000 for r in arrived]
        calls = len(writes)
        print(f"freshness: {rate} answers/s for {seconds} s over {accounts:,} accounts; sender at most "
              f"{worst * 1000:.0f} ms behind; {errors} non-202; {calls} HubSpot batch calls for {len(acked):,} "
              f"answers")
        print(f"reference, POST -> 202:              p50 {percentile(reference, 0.5):8.1f} ms   "
              f"p99 {percentile(reference, 0.99):8.1f} ms")
        print(f"answer -> HubSpot field (5-s flush): p50 {percentile(latency, 0.5):8.1f} ms   "
              f"p99 {percentile(latency, 0.99):8.1f} ms   (max {max(latency):.0f} ms)")
        violations = httpx.get(f"{hubspot_url}/_bench/violations", timeout=10).json()
        print(f"answers not in the CRM after 60 s: {missing}; HubSpot contract violations: {len(violations)}")
        if missing or violations or errors:
            raise SystemExit("the freshness run lost or refused answers: the figures above are void")
        figures.add("crm_freshness_p99", "crm-sync: answer -> HubSpot field, p99 (5-s flush)",
                    percentile(latency, 0.99), "ms", reference=percentile(reference, 0.99),
                    reference_label="POST -> 202, p99", note=f"{rate} answers/s for {seconds} s")
        for module, (process, _log) in processes.items():
            figures.add(f"rss_{module}", f"peak RSS: {module.replace('_', '-')} (at {rate} answers/s)",
                        peak_rss_mb(process.pid), "MB")
    finally:
        for process, _log in processes.values():
            process.terminate()
            process.wait(timeout=30)
        fake.terminate()
        fake.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--skip-freshness", action="store_true")
    add_common_arguments(parser)
    args = parser.parse_args()
    figures = Figures("crm", args.broker)
    work = Path(tempfile.mkdtemp(prefix="pulse-crm-bench-"))
    pg_url = os.environ.get("TEST_DATABASE_URL")
    pg = None
    if not pg_url:
        pg = EmbeddedPostgres(work / "pg", delete_on_stop=True)
        pg_url = pg.url
    broker = None
    try:
        cost_db = asyncio.run(ensure_database(pg_url, f"pulse_bench_{uuid.uuid4().hex[:8]}"))
        asyncio.run(cost(cost_db, figures, events=args.events, accounts=args.accounts, rounds=args.rounds))
        if not args.skip_freshness:
            broker = start_broker(args.broker, work)
            asyncio.run(create_topics(broker.bootstrap, Topics().all(), partitions=3))
            database_url = asyncio.run(ensure_database(pg_url, f"pulse_bench_{uuid.uuid4().hex[:8]}"))
            freshness(database_url, broker, work, figures, rate=args.rate, seconds=args.seconds, accounts=args.accounts)
        figures.write(args.json)
    finally:
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
