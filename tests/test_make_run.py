"""`make run` as a newcomer runs it: the whole platform comes up on tansu and embedded PostgreSQL, takes an
answer, scores it, serves the widget's demo page, and stops cleanly on Ctrl-C. (Ports and the state folder are
moved to free ones, so a developer's own `make run` and data are untouched.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from pulse_shared.localinfra import free_port
from pulse_shared.testing.waiting import eventually

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


async def test_make_run_comes_up_scores_an_answer_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: str(free_port()) for name in ("INGEST_PORT", "SCORING_PORT", "ALERTS_PORT", "CRM_SYNC_PORT",
                                                 "PULSE_DEMO_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_URL", "TEST_"))}
    env.update(ports, PULSE_STATE_DIR=str(tmp_path / "state"))
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "dev.py")], env=env, cwd=ROOT,  # noqa: ASYNC220
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        await eventually(lambda: any("Pulse is running." in line for line in lines) or process.poll() is not None,
                         timeout=180, what="make run's summary")
        assert process.poll() is None, "".join(lines[-40:])
        ingest, scoring = (f"http://127.0.0.1:{ports[p]}" for p in ("INGEST_PORT", "SCORING_PORT"))
        async with httpx.AsyncClient(timeout=10) as client:
            sent = await client.post(f"{ingest}/v1/responses", headers={"X-Pulse-Key": "pk_dev_product_nps_local_0001"},
                                     json={"survey_type": "nps", "score": 3, "account_id": "acme-42"})
            assert sent.status_code == 202, sent.text

            async def scored() -> bool:
                body = (await client.get(f"{scoring}/v1/accounts/acme-42/scores",
                                         headers={"Authorization": "Bearer dev-scoring-token"})).json()
                return bool(((body.get("scores") or {}).get("nps") or {}).get("n") == 1)

            await eventually(scored, timeout=30, what="the answer scored")
            demo = await client.get(f"http://localhost:{ports['PULSE_DEMO_PORT']}/")
            assert demo.status_code == 200
            assert f"http://localhost:{ports['INGEST_PORT']}/widget.js" in demo.text
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, "".join(lines[-40:])
        reader.join(timeout=5)
        assert any("stopped" in line for line in lines[-5:])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
