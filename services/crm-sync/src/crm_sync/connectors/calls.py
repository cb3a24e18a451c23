"""What every connector's HTTP calls share: the metrics around a call, reading JSON answers, transport failures."""

from __future__ import annotations

import time
from typing import Any

import httpx

from crm_sync.connectors.base import Pause, WriteOutcome
from pulse_shared.metrics import EXTERNAL_CALLS, EXTERNAL_LATENCY

OUTAGE_PAUSE = 2.0


async def no_gate() -> None:
    """A gate that never waits (a connector used without a writer, as in tests)."""
    return None


async def instrumented(client: httpx.AsyncClient, crm: str, operation: str, method: str, url: str,
                       **kwargs: Any) -> httpx.Response:
    """``client.request`` counted by status (or ``transport_error``) and timed, labelled (crm, operation)."""
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError:
        EXTERNAL_CALLS.labels(crm, operation, "transport_error").inc()
        raise
    finally:
        EXTERNAL_LATENCY.labels(crm, operation).observe(time.perf_counter() - started)
    EXTERNAL_CALLS.labels(crm, operation, str(response.status_code)).inc()
    return response


def json_any(response: httpx.Response) -> Any:
    """The answer's JSON, whatever its shape (None when it is not JSON)."""
    try:
        return response.json()
    except ValueError:
        return None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object ({} when it is not one)."""
    data = json_any(response)
    return data if isinstance(data, dict) else {}


def transport_failure(crm: str, ids: list[str], exc: Exception) -> WriteOutcome:
    """A call that got no answer: every account is retried, and the connector's circuit opens."""
    message = f"{crm} unreachable: {type(exc).__name__}"
    return WriteOutcome(retry=dict.fromkeys(ids, message), pause=Pause("outage", OUTAGE_PAUSE, message))
