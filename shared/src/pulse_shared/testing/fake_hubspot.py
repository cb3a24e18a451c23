"""A local stand-in for the HubSpot CRM API (companies) that checks the documented request shapes.

Implements batch update, batch upsert and property creation for companies. Violations (no bearer token,
more than 100 inputs, an input without ``id`` or ``properties``, an upsert without ``idProperty``) are
answered 400 and recorded in :attr:`FakeHubSpot.violations`. Errors can be scripted: ``rate_limit``
(429 TEN_SECONDLY_ROLLING), ``daily_limit`` (429 DAILY), ``server_error`` (500).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pulse_shared.testing.server import ThreadedServer

MAX_BATCH = 100


@dataclass
class HubSpotCall:
    """One request the fake received."""

    path: str
    body: Any
    at: float


@dataclass
class FakeHubSpot:
    """State and script of the fake HubSpot API."""

    token: str = "pat-test-token"
    calls: list[HubSpotCall] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    companies: dict[str, dict[str, str]] = field(default_factory=dict)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    _script: deque[str] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedServer | None = None

    @property
    def url(self) -> str:
        """The base URL to use as ``HUBSPOT_API_BASE_URL``."""
        assert self.server is not None
        return self.server.url

    def fail_next(self, error: str, times: int = 1) -> None:
        """Answer the next ``times`` batch calls with ``error``."""
        with self._lock:
            self._script.extend([error] * times)

    def batch_calls(self) -> list[HubSpotCall]:
        """Batch update/upsert calls received (whatever their answer)."""
        return [c for c in self.calls if c.path.endswith(("/batch/update", "/batch/upsert"))]

    def app(self) -> FastAPI:
        """The ASGI app of the fake."""
        app = FastAPI()

        @app.post("/crm/v3/objects/companies/batch/{operation}")
        async def batch(operation: str, request: Request) -> JSONResponse:
            return await self._batch(operation, request)

        @app.post("/crm/v3/properties/companies")
        async def create_property(request: Request) -> JSONResponse:
            if not self._authorized(request):
                return _error(401, "INVALID_AUTHENTICATION", "missing or wrong bearer token")
            body = await request.json()
            self.calls.append(HubSpotCall(request.url.path, body, time.monotonic()))
            missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
            if missing:
                self.violations.append(f"property without {missing}")
                return _error(400, "VALIDATION_ERROR", f"missing {missing}")
            if body["name"] in self.properties:
                return _error(409, "CONFLICT", f"property {body['name']} already exists")
            self.properties[body["name"]] = body
            return JSONResponse(body, status_code=201)

        return app

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def _batch(self, operation: str, request: Request) -> JSONResponse:
        if operation not in {"update", "upsert"}:
            return _error(404, "NOT_FOUND", f"unknown batch operation {operation}")
        if not self._authorized(request):
            self.violations.append("batch call without the bearer token")
            return _error(401, "INVALID_AUTHENTICATION", "missing or wrong bearer token")
        body = await request.json()
        with self._lock:
            self.calls.append(HubSpotCall(request.url.path, body, time.monotonic()))
            scripted = self._script.popleft() if self._script else None
        problem = _check_batch(body, upsert=operation == "upsert")
        if problem is not None:
            self.violations.append(problem)
            return _error(400, "VALIDATION_ERROR", problem)
        if scripted == "rate_limit":
            return _rate_limited("TEN_SECONDLY_ROLLING")
        if scripted == "daily_limit":
            return _rate_limited("DAILY")
        if scripted == "server_error":
            return _error(500, "INTERNAL_ERROR", "internal error")
        results = []
        for item in body["inputs"]:
            key = str(item["id"])
            with self._lock:
                stored = self.companies.setdefault(key, {})
                stored.update({k: str(v) for k, v in item["properties"].items()})
            results.append({"id": key, "properties": dict(stored)})
        return JSONResponse({"status": "COMPLETE", "results": results})

    def start(self) -> FakeHubSpot:
        """Start serving on a free port."""
        self.server = ThreadedServer(self.app()).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()


def _check_batch(body: Any, *, upsert: bool) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        return "body must be {'inputs': [...]}"
    inputs = body["inputs"]
    if not inputs or len(inputs) > MAX_BATCH:
        return f"inputs must hold 1 to {MAX_BATCH} items, got {len(inputs)}"
    ids = set()
    for item in inputs:
        if not isinstance(item, dict) or not item.get("id") or not isinstance(item.get("properties"), dict):
            return "every input needs an id and properties"
        if upsert and not item.get("idProperty"):
            return "an upsert input needs idProperty"
        if item["id"] in ids:
            return f"duplicate id {item['id']} in one batch"
        ids.add(item["id"])
    return None


def _error(status: int, category: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "message": message, "category": category, "correlationId": str(uuid.uuid4())},
        status_code=status,
    )


def _rate_limited(policy: str) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "errorType": "RATE_LIMIT", "policyName": policy,
         "message": "You have reached your secondly limit." if policy != "DAILY" else "daily limit reached",
         "correlationId": str(uuid.uuid4())},
        status_code=429,
    )
