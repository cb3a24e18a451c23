"""`make run`: the whole Pulse platform on one machine.

Starts (unless given by KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL) a tansu broker and an embedded PostgreSQL
whose data lives in .pulse/postgres, creates the topics, applies every migration, starts the four services
as separate processes, waits until each is ready, serves a demo page with the widget on PULSE_DEMO_PORT (3000)
and prints where everything is. Ctrl-C stops it all: services first (they drain), then the broker and the
database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import httpx

from pulse_shared.localinfra import Broker, EmbeddedPostgres, create_topics, ensure_database
from pulse_shared.topics import Topics

ROOT = Path(__file__).resolve().parent.parent
#: Where `make run` keeps PostgreSQL's data, the logs and dev.env (PULSE_STATE_DIR moves it; the smoke test does).
STATE = Path(os.environ.get("PULSE_STATE_DIR") or ROOT / ".pulse")
SERVICES = (
    # module, port variable, default port
    ("ingest", "INGEST_PORT", 8000),
    ("scoring", "SCORING_PORT", 8001),
    ("alerts", "ALERTS_PORT", 8002),
    ("crm_sync", "CRM_SYNC_PORT", 8003),
)
STATEFUL = ("ingest", "scoring", "alerts", "crm_sync")
#: The ingest admin token of `make run` (set INGEST_ADMIN_TOKEN to choose another).
DEV_INGEST_ADMIN_TOKEN = "dev-ingest-admin-token"
#: The alerts admin token of `make run` (set ALERTS_ADMIN_TOKEN to choose another).
DEV_ALERTS_ADMIN_TOKEN = "dev-alerts-admin-token"
#: The crm-sync admin token of `make run` (set CRM_SYNC_ADMIN_TOKEN to choose another).
DEV_CRM_ADMIN_TOKEN = "dev-crm-admin-token"
#: The scoring API token of `make run` (set SCORING_API_TOKENS to choose others).
DEV_SCORING_TOKEN = "dev-scoring-token"
DEMO = ROOT / "deploy" / "dev" / "demo.html"
COLORS = {"ingest": "36", "scoring": "35", "alerts": "33", "crm_sync": "32", "dev": "1"}


def say(source: str, line: str) -> None:
    color = COLORS.get(source, "0") if sys.stdout.isatty() else ""
    prefix = f"\033[{color}m{source:>8} |\033[0m" if color else f"{source:>8} |"
    if source == "dev":  # the services' JSON lines carry their own ts
        line = f"{datetime.now(UTC).strftime('%H:%M:%S')} {line}" if line else line
    sys.stdout.write(f"{prefix} {line}\n")
    sys.stdout.flush()


def pump(name: str, stream: IO[bytes], log_file: Path) -> None:
    with log_file.open("ab") as sink:
        for raw in iter(stream.readline, b""):
            sink.write(raw)
            sink.flush()
            say(name, raw.decode("utf-8", "replace").rstrip())


def main() -> int:
    STATE.mkdir(exist_ok=True)
    logs = STATE / "logs"
    logs.mkdir(exist_ok=True)
    env = dict(os.environ)
    broker: Broker | None = None
    postgres: EmbeddedPostgres | None = None
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = threading.Event()
    demo: ThreadingHTTPServer | None = None

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            broker = Broker(log_file=logs / "broker.log").start()
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
            # The dev broker has no idempotent producer (and forgets its topics when it stops).
            env.setdefault("KAFKA_ENABLE_IDEMPOTENCE", "false")
            say("dev", f"started the dev broker (tansu, memory storage) on {broker.bootstrap}")
        if not env.get("DATABASE_URL"):
            postgres = EmbeddedPostgres(STATE / "postgres")
            env["DATABASE_URL"] = asyncio.run(ensure_database(postgres.url, "pulse"))
            say("dev", f"started embedded PostgreSQL (data in {STATE / 'postgres'})")
        env.setdefault("INGEST_SEED_FILE", str(ROOT / "deploy" / "dev" / "seed.yaml"))
        env.setdefault("ALERTS_CONFIG_FILE", str(ROOT / "deploy" / "dev" / "alerts.yaml"))
        env.setdefault("INGEST_ADMIN_TOKEN", DEV_INGEST_ADMIN_TOKEN)
        env.setdefault("ALERTS_ADMIN_TOKEN", DEV_ALERTS_ADMIN_TOKEN)
        env.setdefault("CRM_SYNC_ADMIN_TOKEN", DEV_CRM_ADMIN_TOKEN)
        env.setdefault("SCORING_API_TOKENS", DEV_SCORING_TOKEN)
        topics = Topics(env.get("KAFKA_TOPIC_PREFIX", ""))
        partitions = int(env.get("KAFKA_TOPIC_PARTITIONS", "3"))
        asyncio.run(create_topics(env["KAFKA_BOOTSTRAP_SERVERS"], topics.all(), partitions=partitions))
        say("dev", f"topics ready: {', '.join(topics.all())}")
        for module in STATEFUL:
            done = subprocess.run([sys.executable, "-m", module, "migrate"], env=env, capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                say("dev", f"{module} migrations failed:\n{done.stdout}{done.stderr}")
                return 1
        say("dev", "migrations applied")
        for module, port_var, default in SERVICES:
            port = env.get(port_var, str(default))
            proc = subprocess.Popen([sys.executable, "-m", module], env={**env, port_var: port},
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            processes[module] = proc
            assert proc.stdout is not None
            threading.Thread(target=pump, args=(module, proc.stdout, logs / f"{module}.log"), daemon=True).start()
        if not wait_ready(env, processes, stopping):
            return 1
        # For `make rebuild` and other commands run beside the platform.
        (STATE / "dev.env").write_text(
            f"DATABASE_URL={env['DATABASE_URL']}\nKAFKA_BOOTSTRAP_SERVERS={env['KAFKA_BOOTSTRAP_SERVERS']}\n"
            f"KAFKA_ENABLE_IDEMPOTENCE={env.get('KAFKA_ENABLE_IDEMPOTENCE', 'true')}\n"
            f"KAFKA_TOPIC_PREFIX={env.get('KAFKA_TOPIC_PREFIX', '')}\n"
        )
        demo = start_demo(env)
        print_summary(env, demo)
        while not stopping.is_set():
            for module, proc in processes.items():
                if proc.poll() is not None:
                    say("dev", f"{module} exited with {proc.returncode}; stopping the platform")
                    stopping.set()
            stopping.wait(0.5)
        return 0
    finally:
        say("dev", "stopping...")
        (STATE / "dev.env").unlink(missing_ok=True)
        if demo is not None:
            demo.shutdown()
        for proc in processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for module, proc in processes.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                say("dev", f"{module} did not drain in time; killing it")
                proc.kill()
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        say("dev", "stopped")


def wait_ready(env: dict[str, str], processes: dict[str, subprocess.Popen[bytes]], stopping: threading.Event) -> bool:
    deadline = time.monotonic() + 120
    pending = {m: env.get(var, str(default)) for m, var, default in SERVICES}
    while pending and time.monotonic() < deadline and not stopping.is_set():
        for module, port in list(pending.items()):
            if processes[module].poll() is not None:
                say("dev", f"{module} exited during start-up (see .pulse/logs/{module}.log)")
                return False
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    del pending[module]
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    if pending:
        say("dev", f"not ready in time: {', '.join(pending)}")
    return not pending


def start_demo(env: dict[str, str]) -> ThreadingHTTPServer | None:
    """Serve deploy/dev/demo.html (the widget on an app-like page) on PULSE_DEMO_PORT, or say why not."""
    port = int(env.get("PULSE_DEMO_PORT", "3000"))
    ingest = f"http://localhost:{env.get('INGEST_PORT', '8000')}"
    page = DEMO.read_text(encoding="utf-8").replace("INGEST_ORIGIN", ingest).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path.split("?")[0] == "/" else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page if self.path.split("?")[0] == "/" else b"not found")

        def log_message(self, format: str, *args: object) -> None:
            pass

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Page)
    except OSError as exc:
        say("dev", f"no demo page: port {port} is taken ({exc.strerror}); set PULSE_DEMO_PORT to another")
        return None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def print_summary(env: dict[str, str], demo: ThreadingHTTPServer | None) -> None:
    port = {m: env.get(var, str(default)) for m, var, default in SERVICES}
    slack = "Slack API" if env.get("SLACK_BOT_TOKEN") else "the log (no SLACK_BOT_TOKEN)"
    crm = "HubSpot" if env.get("HUBSPOT_ACCESS_TOKEN") else "the log (no HUBSPOT_ACCESS_TOKEN)"
    lines = [
        "",
        "Pulse is running.",
        f"  ingest    http://127.0.0.1:{port['ingest']}   (API docs: /docs)",
        f"  scoring   http://127.0.0.1:{port['scoring']}   (API docs: /docs)",
        f"  alerts    http://127.0.0.1:{port['alerts']}   -> alerts go to {slack}",
        f"  crm-sync  http://127.0.0.1:{port['crm_sync']}   -> scores go to {crm}",
        f"  broker    {env['KAFKA_BOOTSTRAP_SERVERS']}",
        f"  database  {env['DATABASE_URL']}",
        "  logs      .pulse/logs/",
        "",
        *([f"  widget    http://localhost:{demo.server_address[1]}/   (a demo page with the survey widget)"]
          if demo else []),
        "",
        "Try it:",
        f"  curl -s -X POST http://127.0.0.1:{port['ingest']}/v1/responses -H 'content-type: application/json' \\",
        "    -H 'X-Pulse-Key: pk_dev_product_nps_local_0001' \\",
        "    -d '{\"survey_type\": \"nps\", \"score\": 3, \"account_id\": \"acme-42\", \"comment\": \"Too slow\"}'",
        f"  curl -s http://127.0.0.1:{port['scoring']}/v1/accounts/acme-42/scores \\",
        f"    -H 'Authorization: Bearer {env.get('SCORING_API_TOKENS', '').split(',')[0].strip()}'",
        "  # who gets acme-42's alerts (a DM once Slack is connected), and the alerts so far:",
        f"  curl -s -X PUT http://127.0.0.1:{port['alerts']}/v1/accounts/acme-42/owner \\",
        f"    -H 'Authorization: Bearer {env.get('ALERTS_ADMIN_TOKEN', '')}' -H 'content-type: application/json' \\",
        "    -d '{\"email\": \"csm@example.com\", \"name\": \"Casey\"}'",
        f"  curl -s 'http://127.0.0.1:{port['alerts']}/v1/alerts?account_id=acme-42' \\",
        f"    -H 'Authorization: Bearer {env.get('ALERTS_ADMIN_TOKEN', '')}'",
        "  # what crm-sync has written, and what it could not match:",
        f"  curl -s http://127.0.0.1:{port['crm_sync']}/v1/crm/status \\",
        f"    -H 'Authorization: Bearer {env.get('CRM_SYNC_ADMIN_TOKEN', '')}'",
        "",
        "Ctrl-C stops everything.",
    ]
    for line in lines:
        say("dev", line)


if __name__ == "__main__":
    sys.exit(main())
