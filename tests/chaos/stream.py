"""A seeded stream of answers through the public API, sent as the widget sends them: each version of an answer
again (same response id, same content) until it gets a 202, then the next version.

Some answers get an update (a comment, and sometimes a changed score), some a duplicate (the last version sent
once more after its 202). Calls go to the ingest replicas in turn, as a load balancer spreads them; a replica
that does not answer (killed, restarting) is skipped for the next one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.chaos.oracle import Oracle, Version

KEY = "pk_dev_product_nps_local_0001"


@dataclass(frozen=True)
class Script:
    """One answer's life: its versions in order, and whether its last one is sent twice."""

    account: str
    response_id: str
    versions: tuple[Version, ...]
    duplicate: bool


def plan(rng: random.Random, accounts: list[str], count: int, tag: str) -> list[Script]:
    """``count`` answers over ``accounts``: about a quarter updated, a tenth sent twice."""
    scripts = []
    for i in range(count):
        first = Version(rng.randint(0, 10))
        versions = [first]
        if rng.random() < 0.25:
            score = rng.randint(0, 10) if rng.random() < 0.4 else first.score
            versions.append(Version(score, f"follow-up {tag}-{i} (score {score})"))
        scripts.append(Script(rng.choice(accounts), f"{tag}-{i:04d}", tuple(versions), rng.random() < 0.1))
    return scripts


@dataclass
class Stream:
    """Sends scripts at a steady pace and records what the API answered."""

    ingest: Callable[[], list[str]]
    oracle: Oracle
    per_second: float = 40.0
    statuses: Counter[int] = field(default_factory=Counter)
    unreachable: int = 0
    retry_after_missing: int = 0
    slowest: float = 0.0
    posts: int = 0
    updates: int = 0
    duplicates: int = 0
    unexpected: list[str] = field(default_factory=list)
    _turn: int = 0
    _next_slot: float = 0.0

    async def run(self, scripts: list[Script], workers: int = 6) -> None:
        queue: asyncio.Queue[Script] = asyncio.Queue()
        for script in scripts:
            queue.put_nowait(script)
        self._next_slot = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(self._work(client, queue) for _ in range(workers)))

    async def _work(self, client: httpx.AsyncClient, queue: asyncio.Queue[Script]) -> None:
        while not queue.empty():
            script = queue.get_nowait()
            for n, version in enumerate(script.versions):
                await self._until_taken(client, script, version)
                self.updates += n > 0
            if script.duplicate:
                await self._until_taken(client, script, script.versions[-1])
                self.duplicates += 1

    async def _pace(self) -> None:
        """One call per 1/per_second (load pacing of the stream, not a wait for a condition)."""
        slot = self._next_slot = max(self._next_slot + 1 / self.per_second, time.monotonic())
        await asyncio.sleep(max(0.0, slot - time.monotonic()))

    async def _until_taken(self, client: httpx.AsyncClient, script: Script, version: Version) -> None:
        body: dict[str, object] = {"response_id": script.response_id, "survey_type": "nps", "score": version.score,
                                   "account_id": script.account}
        if version.comment is not None:
            body["comment"] = version.comment
        while True:
            await self._pace()
            replicas = self.ingest()
            self._turn += 1
            url = replicas[self._turn % len(replicas)]
            started = time.monotonic()
            try:
                response = await client.post(f"{url}/v1/responses", json=body, headers={"X-Pulse-Key": KEY})
            except httpx.TransportError:
                self.unreachable += 1  # the replica is down: the next call goes to the next one
                continue
            finally:
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.posts += 1
            self.statuses[response.status_code] += 1
            if response.status_code == 202:
                self.oracle.acknowledge(script.account, script.response_id, version)
                return
            if response.status_code == 503:
                if "retry-after" not in response.headers:
                    self.retry_after_missing += 1
                continue
            self.unexpected.append(f"{response.status_code} {response.text[:300]}")
            return
