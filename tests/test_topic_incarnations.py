"""End to end, with real processes: offsets stored in PostgreSQL outlive the topics they point into when the
broker starts with empty topics (the dev broker after a second ``make run``, or topics deleted and created
again). Answers sent to the new topics before the consumers join are all counted (issue 18, item 13).
"""

from __future__ import annotations

import httpx
import pytest

from pulse_shared.localinfra import Broker, create_topics
from pulse_shared.testing.fixtures import TEST_PARTITIONS
from pulse_shared.testing.waiting import eventually
from tests.conftest import KEY, SCORING_TOKEN, PlatformFactory

pytestmark = pytest.mark.e2e

SCORING_AUTH = {"Authorization": f"Bearer {SCORING_TOKEN}"}


async def submit(ingest: str, ids: range) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for n in ids:
            done = await client.post(f"{ingest}/v1/responses", headers={"X-Pulse-Key": KEY}, json={
                "response_id": f"r{n}", "survey_type": "nps", "score": 9, "account_id": "acme-42"})
            assert done.status_code == 202, done.text


async def nps_n(scoring: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        body = (await client.get(f"{scoring}/v1/accounts/acme-42/scores", headers=SCORING_AUTH)).json()
    return int(((body.get("scores") or {}).get("nps") or {}).get("n") or 0)


async def test_answers_on_a_new_incarnation_of_the_topics_are_all_counted(platform_factory: PlatformFactory,
                                                                          tmp_path: object) -> None:
    first = platform_factory.start(("ingest", "scoring"))
    await submit(first.ingest, range(2))
    await eventually(lambda: _at_least(first.scoring, 2), what="the first two answers scored")
    for name, service in first.services.items():
        code = service.terminate()
        assert code == 0, f"{name} exited with {code} on SIGTERM:\n{service.tail()}"

    # A broker with the same topics, empty: the offsets scoring stored (2 on the partition of acme-42) now
    # point into a log they do not belong to. Three answers arrive before scoring joins.
    broker = Broker().start()
    try:
        await create_topics(broker.bootstrap, platform_factory.topics.all(), partitions=TEST_PARTITIONS)
        on_tansu = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": "false"}
        second = platform_factory.start(("ingest",), **on_tansu)
        await submit(second.ingest, range(2, 5))
        scoring = platform_factory.service("scoring", **on_tansu).start()
        await eventually(lambda: _at_least(scoring.url, 5), timeout=60, what="all five answers scored")
        assert await nps_n(scoring.url) == 5
        assert "earlier incarnation of the topic" in scoring.logs()
    finally:
        broker.stop()


async def _at_least(scoring: str, n: int) -> bool:
    return await nps_n(scoring) >= n
