"""Scoring benchmark: each figure is printed next to its reference, measured in the same run.

1. Fold rate: answers per second turned into durable aggregates by the real consumer path (runner, store,
   one transaction per batch with the offsets) in one worker process per replica, next to the raw
   consume-and-parse rate of the same messages from the same broker, with the CPU each part used per
   answer. Measured into an empty database per replica count, then with each replica count again into
   the database holding the stored answers of (2) (each measurement adds its stream to that database).
2. Query latency of GET /v1/accounts/{id}/scores with N stored answers (default one million), next to the
   latency of /livez through the same client.

Usage: uv run python bench/scoring_bench.py [--answers 300000] [--stored 1000000] [--partitions 6]
       [--replicas 1 2 3]
Uses TEST_DATABASE_URL / TEST_KAFKA_BOOTSTRAP_SERVERS when set, else starts its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from common import Figures, add_common_arguments, start_broker
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.consumer import ConsumerRunner, RunnerConfig
from pulse_shared.db import create_engine
from pulse_shared.events import RESPONSE_EVENTS, ResponseSubmitted, decode, encode
from pulse_shared.localinfra import EmbeddedPostgres, create_topics, ensure_database
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.offsets import DbOffsetStore
from pulse_shared.producer import EventProducer
from pulse_shared.runtime import tune_gc
from pulse_shared.topics import Topics, partition_key
from pulse_shared.transactional import TransactionalHandler
from scoring.main import build_app, decode_response
from scoring.settings import ScoringSettings
from scoring.store import ResponseEvent, ResponseStore
from scoring.tables import SCHEMA, consumer_offsets

NOW = datetime.now(UTC)
ACCOUNTS = 2000


def answers(n: int, seed: int, prefix: str, *, live: bool = False) -> list[ResponseSubmitted]:
    """Answers over 2,000 accounts. ``live``: as a live stream brings them (given in the last two days,
    one in ten up to 30 days late); otherwise spread over a year (stored history)."""
    rng = random.Random(seed)

    def given_at() -> datetime:
        if not live:
            return NOW - timedelta(days=rng.randrange(365), seconds=rng.randrange(86_400))
        late = rng.random() < 0.1
        return NOW - timedelta(days=rng.randrange(30) if late else 0, seconds=rng.randrange(172_800 if not late
                                                                                          else 86_400))

    return [
        ResponseSubmitted(
            response_id=f"{prefix}-{i}", account_id=f"acct-{rng.randrange(ACCOUNTS)}", survey_type="nps",
            score=rng.randint(0, 10), scale_min=0, scale_max=10, respondent_id=f"u{rng.randrange(50_000)}",
            comment=rng.choice([None, "Exports are slow", "Love the new dashboard"]),
            properties={"plan": rng.choice(["free", "pro", "enterprise"]), "region": rng.choice(["eu", "us"])},
            submitted_at=given_at(), revised_at=NOW,
        )
        for i in range(n)
    ]


async def produce(bootstrap: str, topic: str, events: list[ResponseSubmitted]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, encode(e), key=partition_key(e.account_id)) for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume_rate(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for messages in batch.values():
                for m in messages:
                    decode(RESPONSE_EVENTS, m.value)
                    seen += 1
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def bench_settings(bootstrap: str, prefix: str, database_url: str) -> ScoringSettings:
    return ScoringSettings(kafka_bootstrap_servers=bootstrap, kafka_enable_idempotence=False,
                           kafka_topic_prefix=prefix, database_url=database_url, segment_properties="plan,region",
                           SCORING_API_TOKENS="bench-token")  # type: ignore[call-arg]


async def fold_worker(settings: ScoringSettings, group: str) -> None:
    """One scoring replica's fold path (run as ``--fold-worker``, one process each, as replicas are): the
    service's runner, store and transaction per batch. Prints its partition count as it changes; stops on
    SIGTERM (finishing its batch)."""
    tune_gc()  # as the service does when it starts
    engine = create_engine(settings.require_database_url(), pool_size=4)
    producer = EventProducer(settings, client_id="bench")
    await producer.start()
    runner = ConsumerRunner(
        settings, RunnerConfig(group_id=group, topics=(settings.topics.responses,)),
        decoder=decode_response,
        handler=TransactionalHandler(engine, consumer_offsets, group, ResponseStore(settings.segments).apply,
                                     name="scoring.apply_batch", message="stored"),
        producer=producer, offset_store=DbOffsetStore(engine, consumer_offsets),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(runner.run(stop))
    shown = -1
    try:
        while not task.done():
            if len(runner.assigned) != shown:
                shown = len(runner.assigned)
                print(f"assigned {shown}", flush=True)
            await asyncio.wait({task}, timeout=0.02)
        await task
    finally:
        await producer.stop()
        await engine.dispose()


async def folded(engine: AsyncEngine, group: str) -> int:
    async with engine.connect() as conn:
        return sum(r.next_offset for r in await conn.execute(
            consumer_offsets.select().where(consumer_offsets.c.group_id == group)))


def cpu_seconds(pids: list[int], names: tuple[str, ...] = ()) -> dict[str, float]:
    """CPU time (user + system) of the given processes, as "scoring", and of every process named in
    ``names`` (from /proc; empty where there is no /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(("scoring", *names), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        if int(stat.parent.name) in pids:
            totals["scoring"] += used
        else:
            for name in names:
                if comm.startswith(name):  # the kernel keeps 15 characters of a name ("tansu-v0.6.0-51")
                    totals[name] += used
    return totals


async def fold_rate(settings: ScoringSettings, n: int, replicas: int, partitions: int,
                    broker_process: str = "tansu") -> tuple[float, str]:
    """Answers per second folded by ``replicas`` worker processes in one group, measured once all of them
    hold partitions (what one member folded alone while the others joined is left out of the figure)."""
    group = f"bench-scoring-{replicas}-{uuid.uuid4().hex[:6]}"  # a group of its own per measurement
    argv = [sys.executable, __file__, "--fold-worker", group, settings.kafka_bootstrap_servers,
            settings.kafka_topic_prefix, settings.require_database_url()]
    workers = [await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE) for _ in range(replicas)]
    holding = [0] * replicas

    async def watch(i: int, out: asyncio.StreamReader) -> None:
        async for line in out:
            holding[i] = int(line.split()[1])

    watchers = [asyncio.create_task(watch(i, w.stdout)) for i, w in enumerate(workers) if w.stdout]
    engine = create_engine(settings.require_database_url(), pool_size=1)
    try:
        while not (sum(holding) == partitions and all(holding)):
            if any(w.returncode is not None for w in workers):
                raise RuntimeError("a fold worker exited")
            await asyncio.sleep(0.02)
        pids = [w.pid for w in workers]
        started, before = time.perf_counter(), await folded(engine, group)
        cpu_before = cpu_seconds(pids, ("postgres", broker_process))
        while (done := await folded(engine, group)) < n:
            if any(w.returncode is not None for w in workers):
                raise RuntimeError("a fold worker exited")
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pids, ("postgres", broker_process))
        per_answer = ", ".join(f"{name} {(cpu[name] - cpu_before[name]) / (done - before) * 1e6:.0f} us"
                               for name in cpu)
        return (done - before) / elapsed, per_answer
    finally:
        for w in workers:
            if w.returncode is None:
                w.send_signal(signal.SIGTERM)
        await asyncio.gather(*(w.wait() for w in workers))
        await asyncio.gather(*watchers)
        await engine.dispose()


async def load_stored(database_url: str, total: int) -> None:
    """Store ``total`` answers through the same write path (without the broker, to save time)."""
    engine = create_engine(database_url, pool_size=2)
    handler = TransactionalHandler(engine, consumer_offsets, "bulk", ResponseStore(("plan", "region")).apply,
                                   name="scoring.apply_batch", message="stored")
    from pulse_shared.consumer import Record

    batch = 5000
    try:
        for start in range(0, total, batch):
            chunk = answers(min(batch, total - start), seed=start, prefix="bulk")
            records: list[Record[ResponseEvent]] = [
                Record("bulk", 0, start + i, None, e, (), 0) for i, e in enumerate(chunk)
            ]
            await handler.handle(TopicPartition("bulk", 0), records, start + len(chunk))
    finally:
        await engine.dispose()


async def latencies(client: httpx.AsyncClient, paths: list[str]) -> tuple[float, float]:
    samples = []
    for path in paths:
        started = time.perf_counter()
        response = await client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=300_000, help="answers per fold measurement")
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=6, help="partitions of the responses topic")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3],
                        help="scoring replicas (processes) folding together, one measurement per count")
    parser.add_argument("--rounds", type=int, default=1, help="fold measurements per replica count (median)")
    add_common_arguments(parser)
    args = parser.parse_args()
    figures = Figures("scoring", args.broker)
    broker_process = "java" if args.broker == "kafka" else "tansu"  # for its CPU figure

    broker = None
    bootstrap = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = await asyncio.to_thread(start_broker, args.broker)  # it runs an event loop of its own
        bootstrap = broker.bootstrap
    pg = None
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="pulse-bench-")) / "data", delete_on_stop=True)
        server_url = pg.url
    async def new_database() -> str:
        url = await ensure_database(server_url, f"pulse_bench_{uuid.uuid4().hex[:8]}")
        await asyncio.to_thread(upgrade_to_head, "scoring.migrations", url, SCHEMA)
        return url

    runs = iter(range(1000))

    async def measure_fold(database_url: str, replicas: int, into: str) -> tuple[float, float]:
        # Each measurement folds its own stream (new answer ids) from its own topic, in its own group.
        run = next(runs)
        prefix = f"bench{uuid.uuid4().hex[:6]}.{run}."
        topic = Topics(prefix=prefix).responses
        await create_topics(bootstrap, Topics(prefix=prefix).all(), partitions=args.partitions)
        stream = answers(args.answers, seed=run, prefix=f"live{run}", live=True)
        await produce(bootstrap, topic, stream)
        del stream
        raw = await raw_consume_rate(bootstrap, topic, args.answers)
        rate, cpu = await fold_rate(bench_settings(bootstrap, prefix, database_url), args.answers, replicas,
                                    args.partitions, broker_process)
        print(f"fold a live stream into durable aggregates, {replicas} replica(s), into {into}: "
              f"{rate:10,.0f} answers/s   (reference, raw consume+parse of the same messages in one process: "
              f"{raw:10,.0f} msg/s; target >= 25,000/s); CPU per answer: {cpu}", flush=True)
        return rate, raw

    try:
        # Each replica count folds into a database of its own, so that none pays for another's rows
        # (autovacuum of what an earlier measurement stored).
        for replicas in args.replicas:
            database = await new_database()
            measured = [await measure_fold(database, replicas, "an empty database") for _ in range(args.rounds)]
            rates, raws = [m[0] for m in measured], [m[1] for m in measured]
            figures.add(f"fold_{replicas}", f"scoring: fold answers into durable aggregates, {replicas} replica(s)",
                        statistics.median(rates), "answers/s", reference=statistics.median(raws),
                        reference_label="raw consume+parse of the same messages, one process",
                        ratio=statistics.median(r / w for r, w in measured),
                        note=f"median of {args.rounds} rounds of {args.answers:,} answers")

        if not args.stored:
            figures.write(args.json)
            return  # no stored answers: nothing to query or fold into
        database_url = await new_database()
        started = time.perf_counter()
        await load_stored(database_url, args.stored)
        print(f"stored {args.stored:,} answers through the write path in {time.perf_counter() - started:.0f}s")
        analyze = create_engine(database_url, pool_size=1)
        async with analyze.connect() as conn:  # steady state: autovacuum would have analyzed by now
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("ANALYZE")
        await analyze.dispose()

        app, _ = build_app(bench_settings(bootstrap, "unused.", database_url))
        rng = random.Random(3)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scoring",
                                     headers={"Authorization": "Bearer bench-token"}) as client:
            await latencies(client, ["/livez"] * 50)  # warm up
            account_paths = [f"/v1/accounts/acct-{rng.randrange(ACCOUNTS)}/scores?window=30d"
                             for _ in range(args.queries)]
            ref50, ref99 = await latencies(client, ["/livez"] * args.queries)
            p50, p99 = await latencies(client, account_paths)
        await app.state.engine.dispose()
        print(f"account scores with {args.stored:,} answers: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms   "
              f"(reference, /livez through the same client: p50 {ref50:5.2f} ms  p99 {ref99:5.2f} ms; "
              f"target p99 <= 20 ms)", flush=True)
        figures.add("score_query_p99", f"scoring: account scores query with {args.stored:,} answers stored, p99",
                    p99, "ms", reference=ref99, reference_label="/livez through the same client, p99")
        for replicas in args.replicas:  # each adds its stream to the same database
            await measure_fold(database_url, replicas, f"the database holding {args.stored:,}+ answers")
        figures.write(args.json)
    finally:
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--fold-worker":
        _, _, worker_group, worker_bootstrap, worker_prefix, worker_db = sys.argv
        asyncio.run(fold_worker(bench_settings(worker_bootstrap, worker_prefix, worker_db), worker_group))
    else:
        asyncio.run(main())
