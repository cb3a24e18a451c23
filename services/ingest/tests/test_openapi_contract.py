"""Schemathesis over ingest's OpenAPI against a real process (resilience.md row 10): generated requests,
valid and invalid, never get a server error and every response conforms to the documented schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from ingest.tables import SCHEMA
from ingest_fixtures import ADMIN, KEY
from pulse_shared.localinfra import create_topics, ensure_database, free_port
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.testing.fixtures import idempotence_env
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.topics import Topics


@pytest.fixture(scope="module")
def ingest_url(kafka_bootstrap: str, pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database_url = asyncio.run(ensure_database(pg_server_url, f"pulse_contract_{uuid.uuid4().hex[:8]}"))
    upgrade_to_head("ingest.migrations", database_url, SCHEMA)
    topics = Topics(prefix=f"c{uuid.uuid4().hex[:8]}.")
    asyncio.run(create_topics(kafka_bootstrap, topics.all(), partitions=3))
    log_dir = tmp_path_factory.mktemp("contract")
    seed = Path(log_dir) / "seed.yaml"
    seed.write_text(f"surveys:\n  - survey_id: product-nps\n    name: Product NPS\n    survey_type: nps\n"
                    f"    keys:\n      - key: {KEY}\n        rate_per_minute: 1000000\n")
    port = free_port()
    process = ServiceProcess("ingest", port=port, log_dir=log_dir, env={
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": idempotence_env(),
        "KAFKA_TOPIC_PREFIX": topics.prefix, "DATABASE_URL": database_url, "INGEST_SEED_FILE": str(seed),
        "INGEST_ADMIN_TOKEN": ADMIN, "INGEST_PORT": str(port), "INGEST_RATE_PER_IP_PER_MINUTE": "1000000",
        "LOG_LEVEL": "WARNING"}).start()
    try:
        yield process.url
    finally:
        assert process.terminate() == 0, process.tail()


def test_ingest_api_never_errors_and_matches_its_schema(ingest_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{ingest_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=ingest_url,
                headers={"X-Pulse-Key": KEY, "Authorization": f"Bearer {ADMIN}"},
                checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
            )

        check()
