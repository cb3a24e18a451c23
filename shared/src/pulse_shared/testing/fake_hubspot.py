"""A local stand-in for the HubSpot CRM API (companies, properties, owners) that checks the documented shapes.

Companies are kept by record id (``"1001"``, ``"1002"``...), with their properties, so a test can tell a
company that was *updated* from one that was *created*. Implemented (integrations.md):

- ``POST /crm/v3/objects/companies/batch/update``: inputs by record id, or by a unique property with
  ``idProperty`` in the input; an id no company holds comes back in ``errors[]`` (207, ``OBJECT_NOT_FOUND``,
  ``context.ids``) and nothing is created;
- ``batch/upsert`` (creates what is missing), ``batch/create``, ``batch/read`` (``idProperty`` at the top
  level, ``properties`` to return; missing ids → 207);
- ``POST /crm/v3/objects/companies/search`` (``EQ`` filters);
- ``GET/POST /crm/v3/properties/companies`` and ``POST /crm/v3/properties/companies/groups`` (409 when the
  name exists);
- ``GET /crm/v3/owners/{ownerId}``.

Values of properties created with ``hasUniqueValue`` must be unique across companies. Violations (no bearer
token, more than 100 inputs, a duplicate id in one call, an input without ``id``/``properties``, a property
that does not exist, an upsert without ``idProperty``) are answered 400 and recorded in
:attr:`FakeHubSpot.violations`. Answers can be scripted for the next calls of an operation (or of any):
``rate_limit`` (429 TEN_SECONDLY_ROLLING), ``daily_limit`` (429 DAILY), ``server_error`` (500),
``unauthorized`` (401), ``timeout`` (no answer within the client's patience); and per-item errors with
:meth:`FakeHubSpot.item_errors` (207 with those ids in ``errors[]``, the rest applied). ``on_write`` is called
after a batch write was applied and before its answer (to kill the caller at that instant).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pulse_shared.testing.outage import Outage
from pulse_shared.testing.server import ThreadedServer

MAX_BATCH = 100
#: Properties every HubSpot portal has on companies.
BUILTIN_PROPERTIES = {"name": "string", "domain": "string", "hubspot_owner_id": "enumeration",
                      "hs_object_id": "number"}


@dataclass
class HubSpotCall:
    """One request the fake received."""

    operation: str
    path: str
    body: Any
    at: float
    size: int = 0
    status: int = 0


@dataclass
class FakeHubSpot:
    """State and script of the fake HubSpot API."""

    token: str = "pat-test-token"
    calls: list[HubSpotCall] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    #: Record id -> properties.
    companies: dict[str, dict[str, str]] = field(default_factory=dict)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Owner id -> {"id", "email", "firstName", "lastName"}.
    owners: dict[str, dict[str, str]] = field(default_factory=dict)
    #: How long a scripted ``timeout`` leaves the request unanswered.
    hang_seconds: float = 3.0
    _script: dict[str, deque[str]] = field(default_factory=dict)
    #: Called (from the server's thread) with each batch write after it was applied, before the answer.
    on_write: Callable[[HubSpotCall], None] | None = None
    #: A bad minute of HubSpot's (HTTP 502, then late answers) on every endpoint.
    outage: Outage = field(default_factory=Outage)
    _item_errors: dict[str, deque[str]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedServer | None = None

    @property
    def url(self) -> str:
        """The base URL to use as ``HUBSPOT_API_BASE_URL``."""
        assert self.server is not None
        return self.server.url

    # --- test set-up -------------------------------------------------------------------------------------------

    def add_company(self, **properties: str) -> str:
        """A company that exists in the portal (as a customer's CRM already holds them); return its record id."""
        with self._lock:
            record_id = str(next(self._ids))
            self.companies[record_id] = {"hs_object_id": record_id, **properties}
        return record_id

    def add_owner(self, owner_id: str, email: str, first: str = "", last: str = "") -> None:
        """A HubSpot user who can own companies."""
        self.owners[owner_id] = {"id": owner_id, "email": email, "firstName": first, "lastName": last}

    def company(self, **match: str) -> dict[str, str] | None:
        """The one company whose properties include ``match`` (None if there is none)."""
        found = [c for c in self.companies.values() if all(c.get(k) == v for k, v in match.items())]
        assert len(found) <= 1, f"{len(found)} companies match {match}"
        return found[0] if found else None

    def fail_next(self, error: str, times: int = 1, *, operation: str = "batch") -> None:
        """Answer the next ``times`` calls of ``operation`` (``batch`` = batch update/upsert/create, ``read``,
        ``search``, ``owners``, ``properties``, or ``any``) with ``error``."""
        with self._lock:
            self._script.setdefault(operation, deque()).extend([error] * times)

    def item_errors(self, *ids: str, category: str = "VALIDATION_ERROR", times: int = 1) -> None:
        """The next ``times`` batch writes naming these ids (record ids or id-property values) fail for those
        items with ``category`` in ``errors[]`` (207); the other items are applied."""
        with self._lock:
            for i in ids:
                self._item_errors.setdefault(i, deque()).extend([category] * times)

    def batch_calls(self) -> list[HubSpotCall]:
        """Batch update/upsert/create calls received (whatever their answer)."""
        return [c for c in self.calls if c.operation in ("update", "upsert", "create")]

    def calls_of(self, *operations: str) -> list[HubSpotCall]:
        """Calls of these operations (``update``, ``read``, ``search``, ``owner``, ``properties``...)."""
        return [c for c in self.calls if c.operation in operations]

    def max_calls_in_window(self, window: float) -> int:
        """The largest number of calls received within any ``window`` seconds (for rate-limit tests)."""
        times = sorted(c.at for c in self.calls)
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    # --- the API -----------------------------------------------------------------------------------------------

    def app(self) -> FastAPI:
        """The ASGI app of the fake."""
        app = FastAPI()
        self.outage.install(app, lambda: _error(502, "BAD_GATEWAY", "bad gateway"))

        @app.post("/crm/v3/objects/companies/search")
        async def search(request: Request) -> JSONResponse:
            return await self._handle("search", request, self._search)

        @app.post("/crm/v3/objects/companies/batch/{operation}")
        async def batch(operation: str, request: Request) -> JSONResponse:
            if operation not in {"update", "upsert", "create", "read"}:
                return _error(404, "NOT_FOUND", f"unknown batch operation {operation}")
            handler = {"update": self._update, "upsert": self._upsert, "create": self._create,
                       "read": self._read}[operation]
            return await self._handle(operation, request, handler)

        @app.get("/crm/v3/properties/companies")
        async def list_properties(request: Request) -> JSONResponse:
            return await self._handle("properties", request, lambda _body: self._list_properties())

        @app.post("/crm/v3/properties/companies")
        async def create_property(request: Request) -> JSONResponse:
            return await self._handle("create_property", request, self._create_property)

        @app.post("/crm/v3/properties/companies/groups")
        async def create_group(request: Request) -> JSONResponse:
            return await self._handle("create_group", request, self._create_group)

        @app.get("/crm/v3/owners/{owner_id}")
        async def owner(owner_id: str, request: Request) -> JSONResponse:
            return await self._handle("owner", request, lambda _body: self._owner(owner_id))

        return app

    async def _handle(self, operation: str, request: Request, handler: Any) -> JSONResponse:
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = await request.json()
            except ValueError:
                self.violations.append(f"{operation}: body is not JSON")
                return _error(400, "VALIDATION_ERROR", "body is not JSON")
        with self._lock:
            call = HubSpotCall(operation, request.url.path, body, time.monotonic(), len(raw))
            self.calls.append(call)
            scripted = self._scripted(operation)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            self.violations.append(f"{operation} without the bearer token")
            return self._answer(call, _error(401, "INVALID_AUTHENTICATION", "missing or wrong bearer token"))
        if scripted == "timeout":
            await asyncio.sleep(self.hang_seconds)
        elif scripted is not None:
            return self._answer(call, _scripted_answer(scripted))
        result: JSONResponse = handler(body)
        if self.on_write is not None and operation in ("update", "upsert", "create") and result.status_code < 300:
            self.on_write(call)
        return self._answer(call, result)

    def _answer(self, call: HubSpotCall, response: JSONResponse) -> JSONResponse:
        call.status = response.status_code
        if response.status_code == 400:
            self.violations.append(f"{call.operation}: {bytes(response.body)[:300].decode()}")
        return response

    def _scripted(self, operation: str) -> str | None:
        group = "batch" if operation in ("update", "upsert", "create") else operation
        for key in (operation, group, "any"):
            queue = self._script.get(key)
            if queue:
                return queue.popleft()
        return None

    def _find(self, value: str, id_property: str | None) -> str | None:
        if id_property is None:
            return value if value in self.companies else None
        for record_id, props in self.companies.items():
            if props.get(id_property) == value:
                return record_id
        return None

    def _check_inputs(self, body: Any, *, needs_properties: bool = True, needs_id: bool = True) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            return "body must be {'inputs': [...]}"
        inputs = body["inputs"]
        if not inputs or len(inputs) > MAX_BATCH:
            return f"inputs must hold 1 to {MAX_BATCH} items, got {len(inputs)}"
        seen = set()
        for item in inputs:
            if not isinstance(item, dict):
                return "every input must be an object"
            if needs_id and not item.get("id"):
                return "every input needs an id"
            if needs_properties and not isinstance(item.get("properties"), dict):
                return "every input needs properties"
            if needs_id:
                if item["id"] in seen:
                    return f"duplicate id {item['id']} in one batch"
                seen.add(item["id"])
            for name in (item.get("properties") or {}):
                if name not in self.properties and name not in BUILTIN_PROPERTIES:
                    return f"Property {name!r} does not exist"
            if item.get("idProperty") and item["idProperty"] not in self.properties:
                return f"idProperty {item['idProperty']!r} does not exist"
        return None

    def _unique_clash(self, record_id: str | None, props: dict[str, Any]) -> str | None:
        for name, value in props.items():
            if self.properties.get(name, {}).get("hasUniqueValue") and value not in ("", None):
                for other_id, other in self.companies.items():
                    if other_id != record_id and other.get(name) == str(value):
                        return f"{name}={value} already belongs to company {other_id}"
        return None

    def _write(self, inputs: list[dict[str, Any]], *, create_missing: bool, by_upsert: bool) -> JSONResponse:
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        invalid: dict[str, list[str]] = {}
        with self._lock:
            for item in inputs:
                key = str(item["id"])
                scripted = self._item_errors.get(key)
                if scripted:
                    invalid.setdefault(scripted.popleft(), []).append(key)
                    continue
                id_property = item.get("idProperty")
                record_id = self._find(key, id_property)
                props = {k: "" if v is None else str(v) for k, v in item["properties"].items()}
                if record_id is None:
                    if not create_missing:
                        missing.append(key)
                        continue
                    record_id = str(next(self._ids))
                    self.companies[record_id] = {"hs_object_id": record_id}
                    if by_upsert and id_property:
                        props[id_property] = key
                clash = self._unique_clash(record_id, props)
                if clash is not None:
                    invalid.setdefault("VALIDATION_ERROR", []).append(key)
                    continue
                self.companies[record_id].update(props)
                results.append({"id": record_id, "properties": dict(self.companies[record_id]),
                                "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-12-01T00:00:00Z",
                                "archived": False})
        return _batch_answer(results, missing, invalid)

    def _update(self, body: Any) -> JSONResponse:
        problem = self._check_inputs(body)
        if problem is not None:
            return _error(400, "VALIDATION_ERROR", problem)
        return self._write(body["inputs"], create_missing=False, by_upsert=False)

    def _upsert(self, body: Any) -> JSONResponse:
        problem = self._check_inputs(body)
        if problem is None and not all(item.get("idProperty") for item in body["inputs"]):
            problem = "an upsert input needs idProperty"
        if problem is not None:
            return _error(400, "VALIDATION_ERROR", problem)
        return self._write(body["inputs"], create_missing=True, by_upsert=True)

    def _create(self, body: Any) -> JSONResponse:
        problem = self._check_inputs(body, needs_id=False)
        if problem is not None:
            return _error(400, "VALIDATION_ERROR", problem)
        results = []
        with self._lock:
            for item in body["inputs"]:
                props = {k: str(v) for k, v in item["properties"].items()}
                clash = self._unique_clash(None, props)
                if clash is not None:
                    return _error(409, "CONFLICT", clash)
                record_id = str(next(self._ids))
                self.companies[record_id] = {"hs_object_id": record_id, **props}
                results.append({"id": record_id, "properties": dict(self.companies[record_id])})
        return JSONResponse({"status": "COMPLETE", "results": results}, status_code=201)

    def _read(self, body: Any) -> JSONResponse:
        problem = self._check_inputs(body, needs_properties=False)
        if problem is None and not isinstance(body.get("properties", []), list):
            problem = "properties must be a list of names"
        if problem is not None:
            return _error(400, "VALIDATION_ERROR", problem)
        wanted = body.get("properties") or []
        id_property = body.get("idProperty")
        results, missing = [], []
        with self._lock:
            for item in body["inputs"]:
                record_id = self._find(str(item["id"]), id_property)
                if record_id is None:
                    missing.append(str(item["id"]))
                    continue
                stored = self.companies[record_id]
                props = {name: stored.get(name) for name in wanted}
                props["hs_object_id"] = record_id
                results.append({"id": record_id, "properties": props})
        return _batch_answer(results, missing, {})

    def _search(self, body: Any) -> JSONResponse:
        groups = body.get("filterGroups") if isinstance(body, dict) else None
        if not isinstance(groups, list) or not groups:
            return _error(400, "VALIDATION_ERROR", "filterGroups is required")
        wanted = body.get("properties") or []
        found = []
        with self._lock:
            for record_id, props in self.companies.items():
                for group in groups:
                    filters = group.get("filters", [])
                    if filters and all(f.get("operator") == "EQ" and props.get(f.get("propertyName")) == f.get("value")
                                       for f in filters):
                        found.append({"id": record_id, "properties": {n: props.get(n) for n in wanted}})
                        break
        return JSONResponse({"total": len(found), "results": found[: int(body.get("limit") or 10)]})

    def _list_properties(self) -> JSONResponse:
        builtin = [{"name": n, "type": t, "groupName": "companyinformation"} for n, t in BUILTIN_PROPERTIES.items()]
        return JSONResponse({"results": builtin + list(self.properties.values())})

    def _create_property(self, body: Any) -> JSONResponse:
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not (body or {}).get(k)]
        if missing:
            return _error(400, "VALIDATION_ERROR", f"property without {missing}")
        if body["groupName"] not in self.groups and body["groupName"] != "companyinformation":
            return _error(400, "VALIDATION_ERROR", f"property group {body['groupName']} does not exist")
        if body["type"] == "enumeration" and not body.get("options"):
            return _error(400, "VALIDATION_ERROR", "an enumeration needs options")
        if body["name"] in self.properties or body["name"] in BUILTIN_PROPERTIES:
            return _error(409, "CONFLICT", f"property {body['name']} already exists")
        self.properties[body["name"]] = body
        return JSONResponse(body, status_code=201)

    def _create_group(self, body: Any) -> JSONResponse:
        if not (body or {}).get("name") or not body.get("label"):
            return _error(400, "VALIDATION_ERROR", "a group needs name and label")
        if body["name"] in self.groups:
            return _error(409, "CONFLICT", f"group {body['name']} already exists")
        self.groups[body["name"]] = body
        return JSONResponse(body, status_code=201)

    def _owner(self, owner_id: str) -> JSONResponse:
        owner = self.owners.get(owner_id)
        if owner is None:
            return JSONResponse({"status": "error", "category": "OBJECT_NOT_FOUND",
                                 "message": f"owner {owner_id} not found"}, status_code=404)
        return JSONResponse({**owner, "archived": False})

    def start(self) -> FakeHubSpot:
        """Start serving on a free port."""
        self.server = ThreadedServer(self.app()).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()


def _batch_answer(results: list[dict[str, Any]], missing: list[str],
                  failed: dict[str, list[str]]) -> JSONResponse:
    errors: list[dict[str, Any]] = []
    if missing:
        errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                       "message": "Could not get some COMPANY objects, they may be deleted or not exist.",
                       "context": {"ids": missing}})
    for category, ids in failed.items():
        message = "Property values were not valid" if category == "VALIDATION_ERROR" else f"{category} for these ids"
        errors.append({"status": "error", "category": category, "message": message, "context": {"ids": ids}})
    body: dict[str, Any] = {"status": "COMPLETE", "results": results,
                            "startedAt": "2026-12-01T00:00:00Z", "completedAt": "2026-12-01T00:00:01Z"}
    if errors:
        body |= {"numErrors": len(missing) + sum(len(ids) for ids in failed.values()), "errors": errors}
    return JSONResponse(body, status_code=207 if errors else 200)


def _scripted_answer(error: str) -> JSONResponse:
    if error == "rate_limit":
        return _rate_limited("TEN_SECONDLY_ROLLING")
    if error == "daily_limit":
        return _rate_limited("DAILY")
    if error == "unauthorized":
        return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
    return _error(500, "INTERNAL_ERROR", "internal error")


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
