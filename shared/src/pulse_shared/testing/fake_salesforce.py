"""A local stand-in for the Salesforce REST API (OAuth client credentials, SOQL, sObject Collections) that
checks the documented request shapes (integrations.md).

- ``POST /services/oauth2/token`` (``grant_type=client_credentials``): a new access token each time, with
  ``instance_url`` = this server;
- ``GET /services/data/{v}/query?q=`` for ``SELECT <fields> FROM Account WHERE <field> IN ('a', ...)``
  (``Owner.Email`` / ``Owner.Name`` resolve through :attr:`FakeSalesforce.users`);
- ``PATCH /services/data/{v}/composite/sobjects`` (update by ``id``, nothing created) and
  ``PATCH /services/data/{v}/composite/sobjects/Account/{field}`` (upsert by external id): ``allOrNone:
  false``, at most 200 records, no duplicate id in one call, results per record in request order;
- ``GET /services/data/{v}/sobjects/Account/describe``: the fields and their types.

Accounts are kept by Id (``001...``) with their fields. Violations (no bearer token, more than 200 records,
duplicate ids, a field that does not exist, a record without ``attributes.type``) are answered as Salesforce
answers them and recorded in :attr:`FakeSalesforce.violations`. Scripts for the next calls:
``request_limit`` (403 ``REQUEST_LIMIT_EXCEEDED``), ``multiple_choices`` (300, as an upsert by external id
answers when several records hold the id), ``server_error`` (500); :meth:`expire_tokens` (401
``INVALID_SESSION_ID`` until a new token is fetched); per-record errors with :meth:`record_errors`.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from pulse_shared.testing.server import ThreadedServer

MAX_RECORDS = 200
QUERY = re.compile(r"^SELECT (?P<fields>.+?) FROM Account WHERE (?P<field>\w+) IN \((?P<values>.*)\)$", re.S)
VALUE = re.compile(r"'((?:[^'\\]|\\.)*)'")
STANDARD_FIELDS = {"Id": "id", "Name": "string", "OwnerId": "reference", "Website": "url"}


@dataclass
class SalesforceCall:
    """One request the fake received."""

    operation: str
    path: str
    body: Any
    at: float
    status: int = 0


@dataclass
class FakeSalesforce:
    """State and script of the fake Salesforce org."""

    client_id: str = "sf-client-id"
    client_secret: str = "sf-client-secret"
    external_id_field: str = "Pulse_Account_Id__c"
    #: Custom fields of Account (API name -> type), as an admin created them.
    fields: dict[str, str] = field(default_factory=dict)
    #: Account Id -> fields.
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: User Id -> {"Email", "Name"}.
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: list[SalesforceCall] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    tokens_issued: int = 0
    _valid_tokens: set[str] = field(default_factory=set)
    _script: dict[str, deque[str]] = field(default_factory=dict)
    _record_errors: dict[str, deque[str]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedServer | None = None

    def __post_init__(self) -> None:
        self.fields.setdefault(self.external_id_field, "string")

    @property
    def url(self) -> str:
        """The login URL (``SALESFORCE_LOGIN_URL``); it is also the instance URL."""
        assert self.server is not None
        return self.server.url

    def add_account(self, **values: Any) -> str:
        """An Account that exists in the org; return its Id."""
        with self._lock:
            account_id = f"001{next(self._ids):015d}"
            self.accounts[account_id] = {"Id": account_id, **values}
        return account_id

    def account(self, external_id: str) -> dict[str, Any] | None:
        """The one Account holding ``external_id`` (None if none)."""
        found = [a for a in self.accounts.values() if a.get(self.external_id_field) == external_id]
        assert len(found) <= 1, f"{len(found)} accounts hold {external_id}"
        return found[0] if found else None

    def fail_next(self, error: str, times: int = 1, *, operation: str = "any") -> None:
        """Answer the next ``times`` data calls of ``operation`` (``query``, ``update``, ``upsert``,
        ``describe``, or ``any``; never the token endpoint) with ``error``."""
        with self._lock:
            self._script.setdefault(operation, deque()).extend([error] * times)

    def expire_tokens(self) -> None:
        """Every token issued so far is refused (401 INVALID_SESSION_ID) from now on."""
        with self._lock:
            self._valid_tokens.clear()

    def record_errors(self, *external_or_ids: str, code: str = "FIELD_CUSTOM_VALIDATION_EXCEPTION") -> None:
        """The next write of these records (by Id or external id) fails for them with ``code``."""
        with self._lock:
            for key in external_or_ids:
                self._record_errors.setdefault(key, deque()).append(code)

    def calls_of(self, *operations: str) -> list[SalesforceCall]:
        """Calls of these operations (``token``, ``query``, ``update``, ``upsert``, ``describe``)."""
        return [c for c in self.calls if c.operation in operations]

    # --- the API ---------------------------------------------------------------------------------------------

    def app(self) -> FastAPI:
        """The ASGI app of the fake."""
        app = FastAPI()

        @app.post("/services/oauth2/token")
        async def token(request: Request) -> JSONResponse:
            form = {k: v[0] for k, v in urllib.parse.parse_qs((await request.body()).decode()).items()}
            self.calls.append(SalesforceCall("token", request.url.path, {k: v for k, v in form.items()
                                                                         if k != "client_secret"}, time.monotonic()))
            if form.get("grant_type") != "client_credentials":
                self.violations.append(f"token: grant_type {form.get('grant_type')!r}")
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                return JSONResponse({"error": "invalid_client", "error_description": "invalid client credentials"},
                                    status_code=400)
            with self._lock:
                issued = f"00D!{uuid.uuid4().hex}"
                self._valid_tokens.add(issued)
                self.tokens_issued += 1
            return JSONResponse({"access_token": issued, "instance_url": self.url, "token_type": "Bearer",
                                 "issued_at": str(int(time.time() * 1000))})

        @app.get("/services/data/{version}/query")
        async def query(version: str, request: Request) -> Response:
            return self._handle("query", request, None, lambda: self._query(request.query_params.get("q", "")))

        @app.get("/services/data/{version}/sobjects/Account/describe")
        async def describe(version: str, request: Request) -> Response:
            return self._handle("describe", request, None, self._describe)

        @app.patch("/services/data/{version}/composite/sobjects")
        async def update(version: str, request: Request) -> Response:
            body = await request.json()
            return self._handle("update", request, body, lambda: self._write(body, upsert_field=None))

        @app.patch("/services/data/{version}/composite/sobjects/Account/{field_name}")
        async def upsert(version: str, field_name: str, request: Request) -> Response:
            body = await request.json()
            return self._handle("upsert", request, body, lambda: self._write(body, upsert_field=field_name))

        return app

    def _handle(self, operation: str, request: Request, body: Any, handler: Any) -> Response:
        with self._lock:
            call = SalesforceCall(operation, request.url.path + ("?" + request.url.query if request.url.query else ""),
                                  body, time.monotonic())
            self.calls.append(call)
            queue = self._script.get(operation) or self._script.get("any")
            scripted = queue.popleft() if queue else None
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or header.removeprefix("Bearer ") not in self._valid_tokens:
            call.status = 401
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if scripted == "request_limit":
            call.status = 403
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if scripted == "multiple_choices":
            call.status = 300
            return _errors(300, "MULTIPLE_CHOICES", "more than one record matches the external id")
        if scripted == "server_error":
            call.status = 500
            return _errors(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred.")
        response: Response = handler()
        call.status = response.status_code
        if response.status_code == 400:
            self.violations.append(f"{operation}: {bytes(response.body)[:300].decode()}")
        return response

    def _query(self, soql: str) -> Response:
        match = QUERY.match(soql.strip())
        if match is None:
            return _errors(400, "MALFORMED_QUERY",
                           f"the fake understands SELECT ... FROM Account WHERE f IN (...): {soql}")
        wanted = [f.strip() for f in match["fields"].split(",")]
        where = match["field"]
        values = [v.replace("\\'", "'").replace("\\\\", "\\") for v in VALUE.findall(match["values"])]
        for name in [*wanted, where]:
            if name not in self.fields and name not in STANDARD_FIELDS and name not in ("Owner.Email", "Owner.Name"):
                return _errors(400, "INVALID_FIELD", f"No such column '{name}' on entity 'Account'")
        records = []
        with self._lock:
            for account in self.accounts.values():
                if account.get(where) in values:
                    url = f"/services/data/v61.0/sobjects/Account/{account['Id']}"
                    record: dict[str, Any] = {"attributes": {"type": "Account", "url": url}}
                    for name in wanted:
                        if name.startswith("Owner."):
                            owner = self.users.get(str(account.get("OwnerId")))
                            record["Owner"] = ({"attributes": {"type": "User"}, "Email": owner["Email"],
                                                "Name": owner["Name"]} if owner else None)
                        else:
                            record[name] = account.get(name)
                    records.append(record)
        return JSONResponse({"totalSize": len(records), "done": True, "records": records})

    def _describe(self) -> Response:
        fields = [{"name": n, "type": t, "externalId": n == self.external_id_field, "custom": n.endswith("__c")}
                  for n, t in {**STANDARD_FIELDS, **self.fields}.items()]
        return JSONResponse({"name": "Account", "fields": fields})

    def _check_records(self, body: Any, key: str) -> Response | None:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return _errors(400, "JSON_PARSER_ERROR", "body must be {allOrNone, records: [...]}")
        if body.get("allOrNone") is not False:
            self.violations.append("allOrNone is not false")
        records = body["records"]
        if not records or len(records) > MAX_RECORDS:
            return _errors(400, "EXCEEDED_ID_LIMIT", f"records must hold 1 to {MAX_RECORDS} items, got {len(records)}")
        seen: set[str] = set()
        for record in records:
            if not isinstance(record, dict) or (record.get("attributes") or {}).get("type") != "Account":
                return _errors(400, "INVALID_TYPE", "every record needs attributes.type = Account")
            value = record.get(key)
            if not value:
                return _errors(400, "MISSING_ARGUMENT", f"every record needs {key}")
            if value in seen:
                self.violations.append(f"duplicate {key} {value} in one call")
                return _errors(400, "DUPLICATE_VALUE", f"duplicate {key} {value} in one call")
            seen.add(value)
            unknown = [n for n in record if n not in ("attributes", "id", *self.fields, *STANDARD_FIELDS)]
            if unknown:
                return _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type Account")
        return None

    def _write(self, body: Any, *, upsert_field: str | None) -> Response:
        key = upsert_field or "id"
        refused = self._check_records(body, key)
        if refused is not None:
            return refused
        records = body["records"]
        results = []
        with self._lock:
            for record in records:
                value = str(record[key])
                external = str(self.accounts.get(value, {}).get(self.external_id_field, value))
                scripted = self._record_errors.get(value) or self._record_errors.get(external)
                if scripted:
                    code = scripted.popleft()
                    results.append({"success": False, "errors": [{"statusCode": code, "message": f"{code} for {value}",
                                                                  "fields": []}]})
                    continue
                fields = {k: v for k, v in record.items() if k not in ("attributes", "id")}
                if upsert_field is None:
                    if value not in self.accounts:
                        results.append({"success": False, "errors": [{
                            "statusCode": "ENTITY_IS_DELETED" if value.startswith("001") else "MALFORMED_ID",
                            "message": "entity is deleted", "fields": []}]})
                        continue
                    self.accounts[value].update(fields)
                    results.append({"id": value, "success": True, "errors": []})
                    continue
                matches = [a for a in self.accounts.values() if a.get(upsert_field) == value]
                if len(matches) > 1:
                    results.append({"success": False, "errors": [{
                        "statusCode": "DUPLICATE_EXTERNAL_ID",
                        "message": f"{upsert_field}: more than one record found for external id field: "
                                   f"{[a['Id'] for a in matches]}", "fields": [upsert_field]}]})
                    continue
                if matches:
                    matches[0].update(fields)
                    results.append({"id": matches[0]["Id"], "success": True, "errors": [], "created": False})
                else:
                    new_id = f"001{next(self._ids):015d}"
                    self.accounts[new_id] = {"Id": new_id, **fields}
                    results.append({"id": new_id, "success": True, "errors": [], "created": True})
        return JSONResponse(results)

    def start(self) -> FakeSalesforce:
        """Start serving on a free port."""
        self.server = ThreadedServer(self.app()).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()


def _errors(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse([{"message": message, "errorCode": code, "fields": []}], status_code=status)
