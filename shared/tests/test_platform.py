"""Settings, JSON logs, health and metrics endpoints, the runtime's supervision, DB helpers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, OperationalError

from pulse_shared.db import async_database_url, is_transient
from pulse_shared.health import Health
from pulse_shared.http import create_app
from pulse_shared.logs import JsonFormatter, bind, unbind
from pulse_shared.runtime import Runtime, Worker
from pulse_shared.settings import ServiceSettings
from pulse_shared.tracing import continue_trace, parse_trace_id


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("KAFKA_ENABLE_IDEMPOTENCE", "false")
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.kafka_enable_idempotence is False
    assert settings.topics.responses == "staging.pulse.responses.v1"
    assert settings.log_level == "DEBUG"
    with pytest.raises(ValueError, match="DATABASE_URL is required"):
        settings.require_database_url()


def test_bad_settings_are_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    with pytest.raises(ValueError, match="unknown log level"):
        ServiceSettings()


def test_database_urls_are_normalised_for_asyncpg() -> None:
    assert async_database_url("postgres://u:p@h:5432/db") == "postgresql+asyncpg://u:p@h:5432/db"
    assert async_database_url("postgresql://u@/db?host=/tmp/s") == "postgresql+asyncpg://u@/db?host=/tmp/s"
    with pytest.raises(ValueError, match="postgresql://"):
        async_database_url("mysql://u@h/db")


def test_transient_errors_are_told_from_bugs() -> None:
    assert is_transient(ConnectionResetError())
    assert is_transient(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    assert not is_transient(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_transient(ValueError("bug"))


def test_json_logs_carry_bound_context_and_extra_fields() -> None:
    formatter = JsonFormatter("scoring")
    bind(partition=2, offset=41)
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "stored %s", ("r1",), None)
        record.account_id = "acme"
        line = json.loads(formatter.format(record))
    finally:
        unbind("partition", "offset")
    assert line["service"] == "scoring"
    assert line["msg"] == "stored r1"
    assert (line["partition"], line["offset"], line["account_id"], line["level"]) == (2, 41, "acme", "info")


def test_json_logs_leave_out_uvicorns_terminal_colour_copy() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (7,), None)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    line = json.loads(JsonFormatter("alerts").format(record))
    assert line["msg"] == "Started server process [7]"
    assert "color_message" not in line


def test_trace_context_is_continued_or_started() -> None:
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert parse_trace_id(continue_trace(incoming)) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parse_trace_id(continue_trace("garbage")) is not None
    assert parse_trace_id("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None


def test_httpx_async_calls_do_not_search_for_a_missing_module_each_time() -> None:
    """httpcore looks for ``sniffio`` on every lock and event it sets up, and anyio (4.11+) no longer brings it:
    without it each Slack or HubSpot call paid failed imports (a sys.path scan), 8 % of alerts' CPU at 1,000
    answers/s (encode/httpcore#1103). Pulse depends on sniffio, so the lookup is a dictionary hit."""
    import importlib.abc
    import sys

    from httpcore._synchronization import current_async_library

    looked_up: list[str] = []

    class Watch(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: object, target: object = None) -> None:
            looked_up.append(fullname)

    async def calls() -> None:
        for _ in range(10):
            current_async_library()

    watch = Watch()
    sys.meta_path.insert(0, watch)
    try:
        asyncio.run(calls())
    finally:
        sys.meta_path.remove(watch)
    assert looked_up == []


async def test_a_request_the_database_cannot_serve_now_is_a_503_with_retry_after() -> None:
    """A database restart or a full connection table (found by the chaos suite: scoring's API answered 500
    while PostgreSQL restarted) is 503 + Retry-After; a bug stays a 500."""
    import asyncpg

    app = create_app(title="t", description="d", health=Health())
    failures: dict[str, Exception] = {
        "restart": OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused")),
        "full": asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        "closed": asyncpg.InterfaceError("connection is closed"),
        "bug": IntegrityError("INSERT", {}, ValueError("duplicate key")),
    }

    @app.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        raise failures[kind]

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for kind in ("restart", "full", "closed"):
            answer = await client.get(f"/fail/{kind}")
            assert answer.status_code == 503, (kind, answer.text)
            assert answer.headers["retry-after"] == "2"
            assert "database is unavailable" in answer.json()["detail"]
        assert (await client.get("/fail/bug")).status_code == 500


async def test_health_metrics_and_readiness_endpoints() -> None:
    health = Health(check_timeout_seconds=0.2)
    app = create_app(title="t", description="t", health=health)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    healthy = True

    async def dependency() -> None:
        if not healthy:
            raise ConnectionRefusedError("db down")

    health.add_check("database", dependency)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/readyz")).status_code == 503  # not started yet
        health.started = True
        assert (await client.get("/readyz")).json() == {"status": "ready", "checks": {"database": "ok"}}
        healthy = False
        failing = await client.get("/readyz")
        assert failing.status_code == 503
        assert "db down" in failing.json()["checks"]["database"]
        healthy = True
        health.draining = True
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/livez")).status_code == 200
        await client.get("/hello")
        metrics = (await client.get("/metrics")).text
    assert 'pulse_http_requests_total{method="GET",route="/hello",status="200"}' in metrics


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_api_docs_load_everything_from_the_service_itself(page: str) -> None:
    """Offline /docs: every script, stylesheet and icon the page names is served by the service (none from a
    CDN), also below a proxy's ASGI root_path."""
    app = create_app(title="t", description="t", health=Health())
    for root in ("", "/pulse"):
        transport = httpx.ASGITransport(app=app, root_path=root)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            html = (await client.get(f"{root}{page}")).text
            assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"url: *'([^']+)'", html)
            assert assets, html
            assert not [a for a in assets if "//" in a], html  # nothing from elsewhere
            for asset in assets:
                assert asset.startswith(f"{root}/"), asset
                loaded = await client.get(asset)
                assert loaded.status_code == 200, asset
                assert len(loaded.content) > 50, asset


async def test_a_dying_worker_marks_the_process_dead_and_asks_for_exit_code_1() -> None:
    runtime = Runtime("test", grace_seconds=2)
    stopped_cleanly = asyncio.Event()

    async def crashes(_stop: asyncio.Event) -> None:
        raise RuntimeError("bug in the handler")

    async def drains(stop: asyncio.Event) -> None:
        await stop.wait()
        stopped_cleanly.set()

    @asynccontextmanager
    async def resources(_stop: asyncio.Event) -> AsyncIterator[Sequence[Worker]]:
        yield [Worker("crashes", crashes), Worker("drains", drains)]

    app = FastAPI(lifespan=runtime.lifespan(resources))
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.05)
        assert runtime.health.dead_reason is not None
        assert "bug in the handler" in runtime.health.dead_reason
        assert runtime.exit_code == 1
    assert stopped_cleanly.is_set()


async def test_a_worker_that_ignores_stop_is_cancelled_after_the_grace_period() -> None:
    runtime = Runtime("test", grace_seconds=0.2)

    async def stubborn(_stop: asyncio.Event) -> None:
        await asyncio.sleep(3600)

    @asynccontextmanager
    async def resources(_stop: asyncio.Event) -> AsyncIterator[Sequence[Worker]]:
        yield [Worker("stubborn", stubborn)]

    app = FastAPI(lifespan=runtime.lifespan(resources))
    async with asyncio.timeout(5), app.router.lifespan_context(app):
        pass
    assert runtime.exit_code == 1


def test_embedded_postgres_starts_without_a_runtime_dir_warning(tmp_path: Path) -> None:
    # Seen at every `make run` in a container: platformdirs' RuntimeDirWarning when XDG_RUNTIME_DIR is unset.
    script = ("import sys; from pathlib import Path; from pulse_shared.localinfra import EmbeddedPostgres; "
              "server = EmbeddedPostgres(Path(sys.argv[1]), delete_on_stop=True); server.stop()")
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "pg")], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "RuntimeDirWarning" not in done.stderr
    assert "XDG_RUNTIME_DIR" not in done.stderr
