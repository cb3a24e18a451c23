"""HubSpot companies: batch upsert by Pulse's unique account-id property.

Contract (integrations.md): ``POST /crm/v3/objects/companies/batch/upsert`` with at most 100 inputs, each
``{"id": <value>, "idProperty": <unique property>, "properties": {...}}``; 207 carries per-item errors;
429 ``TEN_SECONDLY_ROLLING`` → wait about 10 s, ``DAILY`` → no calls until the next day; 5xx → short
backoff. Custom properties are created with ``POST /crm/v3/properties/companies`` (409 = exists).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from crm_sync.connectors.base import PendingWrite, WriteOutcome
from crm_sync.domain.properties import property_defs
from pulse_shared.metrics import EXTERNAL_CALLS, EXTERNAL_LATENCY

log = logging.getLogger(__name__)

MAX_INPUTS = 100
PROPERTY_GROUP = "companyinformation"


class HubSpotConnector:
    """Writes scores onto HubSpot companies."""

    name = "hubspot"
    max_batch = MAX_INPUTS

    def __init__(self, base_url: str, token: str, *, id_property: str, create_properties: bool,
                 timeout: float = 20.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
        self._id_property = id_property
        self._create_properties = create_properties
        self._prepared = False

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def prepare(self) -> None:
        """Create Pulse's custom company properties once (existing ones are left as they are)."""
        if self._prepared or not self._create_properties:
            self._prepared = True
            return
        for d in property_defs(self._id_property):
            body: dict[str, Any] = {"name": d.name, "label": d.label, "type": d.type, "fieldType": d.field_type,
                                    "groupName": PROPERTY_GROUP}
            if d.unique:
                body["hasUniqueValue"] = True
            response = await self._request("create_property", "/crm/v3/properties/companies", body)
            if response.status_code not in (200, 201, 409):
                raise RuntimeError(f"HubSpot refused property {d.name}: {response.status_code} {response.text[:300]}")
        self._prepared = True

    async def write(self, writes: list[PendingWrite]) -> WriteOutcome:
        """Upsert the companies; classify the answer per account."""
        ids = [w.account_id for w in writes]
        body = {"inputs": [{"id": w.account_id, "idProperty": self._id_property, "properties": w.properties}
                           for w in writes[:MAX_INPUTS]]}
        try:
            response = await self._request("batch_upsert", "/crm/v3/objects/companies/batch/upsert", body)
        except httpx.HTTPError as exc:
            return WriteOutcome(retry=dict.fromkeys(ids, f"transport: {type(exc).__name__}"), pause_seconds=5.0,
                                pause_reason="outage")
        status = response.status_code
        if status in (200, 201):
            return WriteOutcome(written=set(ids))
        if status == 207:
            return _multi_status(ids, _json(response))
        if status == 429:
            payload = _json(response)
            if payload.get("policyName") == "DAILY":
                return WriteOutcome(retry=dict.fromkeys(ids, "HubSpot daily limit"), pause_seconds=_until_tomorrow(),
                                    pause_reason="daily_limit")
            return WriteOutcome(retry=dict.fromkeys(ids, "HubSpot rate limit"), pause_seconds=10.0,
                                pause_reason="rate_limit")
        if status in (401, 403):
            return WriteOutcome(retry=dict.fromkeys(ids, f"HubSpot refused the token ({status})"), pause_seconds=60.0,
                                pause_reason="auth")
        if status >= 500:
            return WriteOutcome(retry=dict.fromkeys(ids, f"HubSpot {status}"), pause_seconds=5.0, pause_reason="outage")
        message = str(_json(response).get("message", response.text[:300]))
        return WriteOutcome(retry=dict.fromkeys(ids, f"HubSpot {status}: {message}"))

    async def _request(self, operation: str, path: str, body: dict[str, Any]) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError:
            EXTERNAL_CALLS.labels("hubspot", operation, "transport_error").inc()
            raise
        finally:
            EXTERNAL_LATENCY.labels("hubspot", operation).observe(time.perf_counter() - started)
        EXTERNAL_CALLS.labels("hubspot", operation, str(response.status_code)).inc()
        return response


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _multi_status(ids: list[str], payload: dict[str, Any]) -> WriteOutcome:
    failed_ids: dict[str, str] = {}
    for error in payload.get("errors", []) or []:
        context = error.get("context", {}) if isinstance(error, dict) else {}
        for key in ("ids", "id", "idProperty"):
            for value in context.get(key, []) or []:
                failed_ids[str(value)] = str(error.get("message", "item error"))[:300]
    written = {i for i in ids if i not in failed_ids}
    return WriteOutcome(written=written, retry={i: m for i, m in failed_ids.items() if i in ids})


def _until_tomorrow() -> float:
    now = datetime.now(UTC)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    return (tomorrow - now).total_seconds()
