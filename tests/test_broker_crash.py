"""Apache Kafka (a broker of the test's own, whatever the session's: tansu keeps no log to restart with) killed
with kill -9 mid-stream and started again with its log: every acknowledged answer is
counted exactly once, and ingest answered 503 + Retry-After while the broker was down, never hung.

Ingest and scoring run as real processes with the idempotent producer on (as in production) against a broker
of the test's own. The chaos suite's stream posts answers (some updated, some sent twice) at a steady pace
through the public API and, as the widget does, sends each again (same response id) until it gets a 202; its
oracle of acknowledged versions is the ground truth, and scoring must equal it account by account.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from pulse_shared.apache_kafka import KafkaBroker
from pulse_shared.localinfra import create_topics
from pulse_shared.testing.fixtures import TEST_PARTITIONS
from pulse_shared.testing.waiting import eventually
from tests.chaos.oracle import Oracle
from tests.chaos.stream import Stream, plan
from tests.conftest import SCORING_TOKEN, PlatformFactory

pytestmark = pytest.mark.e2e

ACCOUNTS = [f"crash-{i:02d}" for i in range(12)]
SEND_BOUND_SECONDS = 3.0
ANSWERS = 450


async def counted(scoring: str, account: str) -> tuple[int, int, int]:
    """The account's 30-day NPS n, promoters and detractors, as scoring serves them."""
    async with httpx.AsyncClient(timeout=10) as client:
        body = (await client.get(f"{scoring}/v1/accounts/{account}/scores", params={"window": "30d"},
                                 headers={"Authorization": f"Bearer {SCORING_TOKEN}"})).json()
    nps = (body.get("scores") or {}).get("nps") or {}
    counts = nps.get("counts") or {}
    return int(nps.get("n") or 0), int(counts.get("promoters") or 0), int(counts.get("detractors") or 0)


async def test_a_kafka_crash_mid_stream_loses_and_doubles_nothing(platform_factory: PlatformFactory,
                                                                  tmp_path: Path) -> None:
    broker = await asyncio.to_thread(KafkaBroker(tmp_path / "kafka").start)
    try:
        await create_topics(broker.bootstrap, platform_factory.topics.all(), partitions=TEST_PARTITIONS)
        platform = platform_factory.start(("ingest", "scoring"), KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
                                          KAFKA_ENABLE_IDEMPOTENCE="true",
                                          KAFKA_SEND_TIMEOUT_SECONDS=str(SEND_BOUND_SECONDS),
                                          KAFKA_SESSION_TIMEOUT_MS="6000", INGEST_RATE_PER_IP_PER_MINUTE="1000000")
        oracle = Oracle()
        # The chaos suite's stream: each answer sent again (same id) until it gets a 202, at a steady pace.
        stream = Stream(lambda: [platform.ingest], oracle, per_second=50)
        sending = asyncio.create_task(stream.run(plan(random.Random(7), ACCOUNTS, ANSWERS, "crash"), workers=1))
        await eventually(lambda: oracle.acknowledged >= 150, timeout=60, what="150 answers before the crash")
        broker.kill()
        before = oracle.acknowledged
        await eventually(lambda: stream.statuses[503] >= 3, timeout=60, what="503s while the broker is down")
        await asyncio.to_thread(broker.start)  # same ports, same log
        await eventually(lambda: oracle.acknowledged >= before + 150, timeout=120,
                         what="150 answers after the restart")
        await sending

        scoring = platform.services["scoring"].url

        async def all_counted() -> bool:
            return all([await counted(scoring, a) == oracle.counts(a) for a in ACCOUNTS])

        await eventually(all_counted, timeout=90, what="scoring equal to the answers sent, account by account")
        print(f"kafka kill -9 + restart: {oracle.acknowledged} versions acknowledged and counted once, "
              f"{stream.statuses[503]} answered 503 while it was down, slowest call {stream.slowest:.1f} s")
        assert stream.unexpected == []
        assert stream.retry_after_missing == 0
        assert stream.slowest < SEND_BOUND_SECONDS + 5, f"a request took {stream.slowest:.1f} s: ingest hung"
        for name, service in platform.services.items():
            assert service.process is not None
            assert service.process.poll() is None, f"{name} died:\n{service.tail()}"
    finally:
        broker.kill()
