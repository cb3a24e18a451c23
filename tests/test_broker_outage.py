"""Row 11 of resilience.md: the broker is down for 60 s during steady widget traffic.

ingest and scoring run as their own processes and reach the real broker through a TCP proxy, which the
test takes down (connections refused, open ones reset) for 60 s and brings back; the broker itself keeps
its data, as a broker behind a failed network path or a restarting listener does. Widgets keep answering
throughout and behave as widget.js does: a refused answer stays stored and is sent again, with the same
response id, after the Retry-After it was given.

Must hold: while the broker is away ingest answers 503 with Retry-After within its send bound (no hung
requests, no other status); after recovery the widgets' retries land; and scoring counts every answer that
was acknowledged with 202 exactly once, although some refused sends reached the topic late and were then
sent again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from pulse_shared.db import plain_database_url
from pulse_shared.localinfra import create_topics, free_port
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.testing.tcp_proxy import TcpProxy
from pulse_shared.testing.tcp_proxy import broker_behind_proxy as behind_proxy
from pulse_shared.testing.topic_reader import read_topic
from pulse_shared.testing.waiting import eventually
from pulse_shared.topics import Topics
from tests.conftest import KEY, SEED, applied, migrate

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 60.0
SEND_BOUND_SECONDS = 2.0  # ingest's KAFKA_SEND_TIMEOUT_SECONDS here
#: The longest a request may take: the send bound plus room for a loaded 2-core machine. A hung request
#: (one waiting on the broker without a bound) would take the whole outage.
LONGEST_REQUEST_SECONDS = SEND_BOUND_SECONDS + 4.0
WIDGETS = 4
PACE_SECONDS = 0.25  # each widget gives a new answer this often


@dataclass
class Sent:
    response_id: str
    started: float
    seconds: float
    status: int
    retry_after: str | None


@dataclass
class Widget:
    """One embedded widget: new answers at a steady pace, refused ones kept and re-sent after Retry-After."""

    name: str
    ingest: str
    sent: list[Sent] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    pending: dict[str, tuple[float, dict[str, object]]] = field(default_factory=dict)  # id -> (due, answer)

    async def run(self, closing: asyncio.Event) -> None:
        """Give answers until ``closing`` is set, then re-send the stored ones until they all landed."""
        numbers = itertools.count()
        async with httpx.AsyncClient(base_url=self.ingest, timeout=30) as client:
            while not closing.is_set() or self.pending:
                now = time.monotonic()
                for response_id, (due, answer) in list(self.pending.items()):
                    if due <= now:
                        await self._send(client, response_id, answer)
                if not closing.is_set():
                    n = next(numbers)
                    response_id = f"{self.name}-{n}"
                    answer = {"response_id": response_id, "survey_type": "nps", "score": n % 11,
                              "account_id": f"acct-{n % 7}", "respondent_id": f"{self.name}-user-{n}",
                              "properties": {"plan": "pro" if n % 2 else "free"}}
                    await self._send(client, response_id, answer)
                await asyncio.sleep(PACE_SECONDS)

    async def _send(self, client: httpx.AsyncClient, response_id: str, answer: dict[str, object]) -> None:
        started = time.monotonic()
        response = await client.post("/v1/responses", json=answer, headers={"X-Pulse-Key": KEY})
        self.sent.append(Sent(response_id, started, time.monotonic() - started, response.status_code,
                              response.headers.get("Retry-After")))
        if response.status_code == 202:
            self.acked.add(response_id)
            self.pending.pop(response_id, None)
        else:
            retry_after = float(response.headers.get("Retry-After") or 1)
            self.pending[response_id] = (time.monotonic() + retry_after, answer)


@pytest.fixture
def broker_behind_proxy(tmp_path: Path) -> Iterator[TcpProxy]:
    """A broker of its own whose clients all reach it through the returned proxy."""
    with behind_proxy(tmp_path / "tansu.log") as proxy:
        yield proxy


def service_env(proxy: TcpProxy, topics: Topics, database_url: str) -> dict[str, str]:
    """The services' settings: every broker connection through the proxy, a short send bound."""
    return {"KAFKA_BOOTSTRAP_SERVERS": proxy.address, "KAFKA_ENABLE_IDEMPOTENCE": "false",
            "KAFKA_TOPIC_PREFIX": topics.prefix, "KAFKA_SEND_TIMEOUT_SECONDS": str(SEND_BOUND_SECONDS),
            "DATABASE_URL": database_url, "INGEST_SEED_FILE": str(SEED), "INGEST_RATE_PER_IP_PER_MINUTE": "100000"}


def started(module: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """Migrate the service's schema, then start it (not waiting for readiness)."""
    migrate(module, env)
    port = free_port()
    port_var = f"{module.upper()}_PORT"
    return ServiceProcess(module, env={**env, port_var: str(port)}, port=port, log_dir=log_dir).start(wait_ready=False)


async def landed(widgets: list[Widget], running: list[asyncio.Task[None]], closing: asyncio.Event) -> None:
    """Stop giving new answers and wait until every stored one was re-sent and acknowledged."""
    closing.set()
    await asyncio.wait_for(asyncio.gather(*running), timeout=90)
    assert not [w.pending for w in widgets if w.pending], "answers never landed after the broker came back"
    for widget in widgets:
        assert widget.acked == {s.response_id for s in widget.sent}


async def batch_in_the_hole(url: str, delay: float, index: int) -> tuple[int, str | None]:
    """A batch sent ``delay`` seconds into the black hole (phases across the send bound): its status and
    Retry-After."""
    await asyncio.sleep(delay)
    answers = [{"response_id": f"hole-{index}-{i}", "survey_type": "nps", "score": 9, "account_id": f"a{i}"}
               for i in range(5)]
    async with httpx.AsyncClient(timeout=LONGEST_REQUEST_SECONDS) as client:
        response = await client.post(f"{url}/v1/responses/batch", json={"responses": answers},
                                     headers={"X-Pulse-Key": KEY})
    return response.status_code, response.headers.get("retry-after")


def within_bound(sent: list[Sent], start: float, end: float) -> list[Sent]:
    """The requests made while the broker was away; each answered 503 + Retry-After within the bound."""
    during = [s for s in sent if start <= s.started and s.started + s.seconds <= end]
    assert {s.status for s in sent if s.status != 202} == {503}
    assert all(s.retry_after is not None and int(s.retry_after) >= 1 for s in sent if s.status == 503)
    assert all(s.status == 503 for s in during), [s.status for s in during]
    assert max(s.seconds for s in sent) <= LONGEST_REQUEST_SECONDS, max(s.seconds for s in sent)
    return during


def stopped(*services: ServiceProcess) -> None:
    for service in services:
        if service.process is not None and service.process.poll() is None:
            service.terminate()


async def counted(database_url: str) -> tuple[int, set[str]]:
    """Scoring's state: answers counted for all accounts (all-answers segment), and the stored ids."""
    conn = await asyncpg.connect(plain_database_url(database_url))
    try:
        total = await conn.fetchval("SELECT coalesce(sum(n), 0) FROM scoring.daily_counts")
        ids = {r["response_id"] for r in await conn.fetch("SELECT response_id FROM scoring.responses")}
    finally:
        await conn.close()
    return int(total), ids


async def on_topic(bootstrap: str, topic: str) -> set[str]:
    """Response ids on the responses topic, read to its end (duplicates folded)."""
    return {json.loads(m.value)["response_id"] for m in await read_topic(bootstrap, topic)}


async def test_broker_down_60s_under_widget_traffic(broker_behind_proxy: TcpProxy, database_url: str,
                                                    tmp_path: Path) -> None:
    proxy = broker_behind_proxy
    topics = Topics(prefix="outage.")
    await create_topics(proxy.address, topics.all(), partitions=3)
    env = service_env(proxy, topics, database_url)
    ingest = await asyncio.to_thread(started, "ingest", env, tmp_path)
    scoring = await asyncio.to_thread(started, "scoring", env, tmp_path)
    widgets = [Widget(f"w{i}", ingest.url) for i in range(WIDGETS)]
    closing = asyncio.Event()
    running: list[asyncio.Task[None]] = []
    try:
        await asyncio.to_thread(ingest.wait_ready, 90)
        await asyncio.to_thread(scoring.wait_ready, 90)
        running = [asyncio.create_task(w.run(closing)) for w in widgets]
        await asyncio.sleep(5)
        await asyncio.to_thread(proxy.down)
        down_at = time.monotonic()
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(proxy.up)
        up_at = time.monotonic()
        await asyncio.sleep(10)
        await landed(widgets, running, closing)

        sent = [s for w in widgets for s in w.sent]
        acked: set[str] = set().union(*(w.acked for w in widgets))
        assert len(within_bound(sent, down_at, up_at)) >= 20
        # Traffic went on before, during and after the outage.
        assert any(s.status == 202 and s.started < down_at for s in sent)
        assert any(s.status == 202 and s.started > up_at for s in sent)

        # Every acknowledged answer counted exactly once (refused sends that reached the topic late and
        # were sent again are the same answer).
        # Checked once scoring has applied the whole log (read to its end), so nothing can arrive later.
        log = await read_topic(proxy.address, topics.responses)
        assert {json.loads(m.value)["response_id"] for m in log} == acked  # every refused send was re-sent

        async def caught_up() -> bool:
            return await applied(database_url, "scoring", topics.responses) == len(log)

        await eventually(caught_up, timeout=90, what="scoring to apply the whole responses topic")
        total, ids = await counted(database_url)
        assert ids == acked, f"{len(acked - ids)} acknowledged answers missing, {len(ids - acked)} unknown"
        assert total == len(acked)
    finally:
        closing.set()
        for task in running:
            task.cancel()
        await asyncio.to_thread(stopped, ingest, scoring)


async def test_broker_black_holed_requests_still_end_within_the_send_bound(broker_behind_proxy: TcpProxy,
                                                                           database_url: str, tmp_path: Path) -> None:
    """A network path that silently drops packets (no reset, no refusal) must not hang requests either:
    the broker client would wait for its own request timeout, ingest answers 503 at its send bound."""
    proxy = broker_behind_proxy
    topics = Topics(prefix="hole.")
    await create_topics(proxy.address, topics.all(), partitions=3)
    ingest = await asyncio.to_thread(started, "ingest", service_env(proxy, topics, database_url), tmp_path)
    widget = Widget("bh", ingest.url)
    closing = asyncio.Event()
    running: list[asyncio.Task[None]] = []
    try:
        await asyncio.to_thread(ingest.wait_ready, 90)
        running = [asyncio.create_task(widget.run(closing))]
        await asyncio.sleep(2)
        await asyncio.to_thread(proxy.black_hole)
        holed_at = time.monotonic()
        batches = await asyncio.gather(*(batch_in_the_hole(ingest.url, 0.4 * i, i) for i in range(8)))
        assert {status for status, _retry in batches} == {503}, batches  # never a 500, never accepted
        assert all(retry is not None and int(retry) >= 1 for _status, retry in batches), batches
        await asyncio.sleep(max(0.0, 15 - (time.monotonic() - holed_at)))
        assert ingest.process is not None
        assert ingest.process.poll() is None, ingest.tail()  # alive
        await asyncio.to_thread(proxy.up)
        up_at = time.monotonic()
        await asyncio.sleep(3)
        await landed([widget], running, closing)

        assert len(within_bound(widget.sent, holed_at, up_at)) >= 3
        assert any(s.status == 202 and s.started > up_at for s in widget.sent)
        assert widget.acked <= await on_topic(proxy.address, topics.responses)
    finally:
        closing.set()
        for task in running:
            task.cancel()
        await asyncio.to_thread(stopped, ingest)
