"""Apache Kafka (a broker of the test's own, whatever the session's: tansu keeps no log to restart with) killed
with kill -9 mid-stream and started again with its log: every acknowledged answer is
counted exactly once, and ingest answered 503 + Retry-After while the broker was down, never hung.

Ingest and scoring run as real processes with the idempotent producer on (as in production) against a broker
of the test's own. A sender posts answers at a steady pace through the public API and, as the widget does,
sends an answer again (same response id) until it gets a 202; so the ground truth is every answer sent, each
once, and scoring must equal it account by account.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pulse_shared.apache_kafka import KafkaBroker
from pulse_shared.localinfra import create_topics
from pulse_shared.testing.fixtures import TEST_PARTITIONS
from pulse_shared.testing.waiting import eventually
from tests.conftest import SCORING_TOKEN, PlatformFactory

pytestmark = pytest.mark.e2e

KEY = "pk_dev_product_nps_local_0001"
ACCOUNTS = [f"crash-{i:02d}" for i in range(12)]
SEND_BOUND_SECONDS = 3.0


@dataclass
class Sender:
    """Answers sent until acknowledged; what the API answered, and how long each call took."""

    ingest: str
    truth: dict[str, dict[str, int]] = field(default_factory=dict)  # account -> response id -> score
    statuses: list[int] = field(default_factory=list)
    retry_after_missing: int = 0
    slowest: float = 0.0
    accepted: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            n = 0
            while not stop.is_set():
                account = ACCOUNTS[n % len(ACCOUNTS)]
                answer = {"response_id": f"r-{uuid.uuid4().hex[:12]}", "survey_type": "nps", "score": n % 11,
                          "account_id": account}
                n += 1
                while True:  # as the widget does: the same answer again until it is taken
                    started = time.monotonic()
                    response = await client.post(f"{self.ingest}/v1/responses", json=answer,
                                                 headers={"X-Pulse-Key": KEY})
                    self.slowest = max(self.slowest, time.monotonic() - started)
                    self.statuses.append(response.status_code)
                    if response.status_code == 202:
                        self.truth.setdefault(account, {})[answer["response_id"]] = answer["score"]
                        self.accepted += 1
                        break
                    assert response.status_code == 503, response.text
                    if "retry-after" not in response.headers:
                        self.retry_after_missing += 1
                    await asyncio.sleep(0.2)  # the widget's pause before sending again (load pacing, not a wait)
                await asyncio.sleep(0.02)  # a steady stream of about 50 answers/s (load pacing, not a wait)


async def counted(scoring: str, account: str) -> tuple[int, int, int]:
    """The account's 30-day NPS n, promoters and detractors, as scoring serves them."""
    async with httpx.AsyncClient(timeout=10) as client:
        body = (await client.get(f"{scoring}/v1/accounts/{account}/scores", params={"window": "30d"},
                                 headers={"Authorization": f"Bearer {SCORING_TOKEN}"})).json()
    nps = (body.get("scores") or {}).get("nps") or {}
    counts = nps.get("counts") or {}
    return int(nps.get("n") or 0), int(counts.get("promoters") or 0), int(counts.get("detractors") or 0)


def expected(scores: dict[str, int]) -> tuple[int, int, int]:
    values = list(scores.values())
    return len(values), sum(v >= 9 for v in values), sum(v <= 6 for v in values)


async def test_a_kafka_crash_mid_stream_loses_and_doubles_nothing(platform_factory: PlatformFactory,
                                                                  tmp_path: Path) -> None:
    broker = await asyncio.to_thread(KafkaBroker(tmp_path / "kafka").start)
    try:
        await create_topics(broker.bootstrap, platform_factory.topics.all(), partitions=TEST_PARTITIONS)
        platform = platform_factory.start(("ingest", "scoring"), KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
                                          KAFKA_ENABLE_IDEMPOTENCE="true",
                                          KAFKA_SEND_TIMEOUT_SECONDS=str(SEND_BOUND_SECONDS),
                                          KAFKA_SESSION_TIMEOUT_MS="6000")
        sender = Sender(platform.services["ingest"].url)
        stop = asyncio.Event()
        sending = asyncio.create_task(sender.run(stop))
        await eventually(lambda: sender.accepted >= 150, timeout=60, what="150 answers before the crash")
        broker.kill()
        before = sender.accepted
        await eventually(lambda: sender.statuses.count(503) >= 3, timeout=60, what="503s while the broker is down")
        await asyncio.to_thread(broker.start)  # same ports, same log
        await eventually(lambda: sender.accepted >= before + 150, timeout=120, what="150 answers after the restart")
        stop.set()
        await sending

        scoring = platform.services["scoring"].url

        async def all_counted() -> bool:
            return all([await counted(scoring, a) == expected(sender.truth.get(a, {})) for a in ACCOUNTS])

        await eventually(all_counted, timeout=90, what="scoring equal to the answers sent, account by account")
        print(f"kafka kill -9 + restart: {sender.accepted} answers acknowledged and counted once, "
              f"{sender.statuses.count(503)} answered 503 while it was down, slowest call {sender.slowest:.1f} s")
        assert sender.retry_after_missing == 0
        assert sender.slowest < SEND_BOUND_SECONDS + 5, f"a request took {sender.slowest:.1f} s: ingest hung"
        for name, service in platform.services.items():
            assert service.process is not None
            assert service.process.poll() is None, f"{name} died:\n{service.tail()}"
    finally:
        broker.kill()
