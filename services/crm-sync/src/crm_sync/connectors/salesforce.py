"""Salesforce Accounts: found by an external id field, updated with sObject Collections, owners read back.

Contract (integrations.md):
- OAuth 2.0 client credentials at ``{login}/services/oauth2/token``; the token is cached and fetched again
  once when a call answers ``401 INVALID_SESSION_ID``;
- match, never invent: ``SELECT Id, <ext> FROM Account WHERE <ext> IN (...)`` finds the Ids (several Ids
  for one account: an ambiguous match, a dead letter), then ``PATCH /composite/sobjects`` updates them
  (``allOrNone: false``, at most 200 records, each Id once, results read per record in order); accounts no
  Account holds are unmatched, or created with ``PATCH /composite/sobjects/Account/<ext>`` (upsert by the
  external id) only when ``SALESFORCE_CREATE_ACCOUNTS=true``;
- fields: Pulse's properties map to Account fields (``SALESFORCE_FIELD_MAP``); the fields are created by the
  org's admin (``python -m crm_sync salesforce-fields`` lists them); a mapped field that does not exist, or
  has another type, is reported and left out;
- owners: ``SELECT <ext>, OwnerId, Owner.Email, Owner.Name FROM Account WHERE <ext> IN (...)``.
One call at a time per connector (the org allows 25 long requests at once; Pulse uses one), each at the gate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from crm_sync.connectors.base import (
    ConnectorUnavailable,
    Failure,
    Gate,
    Owner,
    Pause,
    PendingWrite,
    Schema,
    WriteOutcome,
)
from crm_sync.connectors.calls import instrumented, json_any, json_object, no_gate, transport_failure
from crm_sync.connectors.salesforce_answers import (
    OUTAGE_PAUSE,
    call_outcome,
    pause_for,
    record_outcomes,
    session_expired,
)
from crm_sync.domain.properties import property_defs, property_types, typed_value

log = logging.getLogger(__name__)

MAX_RECORDS = 200
#: Salesforce field types a Pulse property type may land in.
COMPATIBLE = {"number": {"double", "int", "percent", "currency", "long"}, "bool": {"boolean"},
              "datetime": {"datetime"}, "enumeration": {"picklist", "string"}, "string": {"string", "textarea"}}
SALESFORCE_TYPE = {"number": "Number(18, 2)", "bool": "Checkbox", "datetime": "Date/Time",
                   "enumeration": "Picklist (nps, csat, ces)", "string": "Long Text Area (32768)"}


def default_field(prop: str) -> str:
    """The Account field a Pulse property maps to by default: ``pulse_nps_30d_ci_low`` → ``Pulse_Nps_30d_Ci_Low__c``."""
    return "_".join(part[:1].upper() + part[1:] for part in prop.split("_")) + "__c"


def field_map(overrides: dict[str, str], *, write_comments: bool) -> dict[str, str]:
    """Pulse property → Account field, every property Pulse writes (``overrides`` win; ``""`` leaves one out)."""
    props = [d.name for d in property_defs("pulse_account_id", write_comments=write_comments)][1:]
    mapping = {p: overrides.get(p, default_field(p)) for p in props}
    return {p: f for p, f in mapping.items() if f}


@dataclass(frozen=True)
class SalesforceOptions:
    """How the connector finds Accounts and what it writes."""

    login_url: str
    client_id: str
    client_secret: str
    api_version: str = "v61.0"
    account_id_field: str = "Pulse_Account_Id__c"
    create_accounts: bool = False
    write_comments: bool = False
    fields: dict[str, str] = field(default_factory=dict)
    request_limit_pause: float = 3600.0


class SalesforceConnector:
    """Writes scores onto existing Salesforce Accounts and reads their owners."""

    name = "salesforce"
    max_batch = MAX_RECORDS

    def __init__(self, options: SalesforceOptions, *, timeout: float = 20.0, gate: Gate | None = None) -> None:
        self.options = options
        self.gate: Gate = gate or no_gate
        self._client = httpx.AsyncClient(timeout=timeout)
        self._token: str | None = None
        self._instance: str | None = None
        self._types = property_types()
        self._fields = field_map(options.fields, write_comments=options.write_comments)
        self.token_fetches = 0

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # --- set-up ---------------------------------------------------------------------------------------------

    async def prepare(self) -> Schema:
        """Check the external id field and the mapped fields on Account; leave out what is missing or mistyped."""
        response = await self._api("describe", "GET", "/sobjects/Account/describe")
        if response.status_code != 200:
            raise ConnectorUnavailable(f"describing Account: HTTP {response.status_code} {response.text[:300]}")
        fields = {str(f.get("name")): f for f in response.json().get("fields", []) if isinstance(f, dict)}
        ext = fields.get(self.options.account_id_field)
        if ext is None or not ext.get("externalId"):
            raise ConnectorUnavailable(
                f"Account has no External ID field {self.options.account_id_field} (SALESFORCE_ACCOUNT_ID_FIELD): "
                "create it (Text, External ID, Unique) first")
        excluded, problems = set(), []
        for prop, name in self._fields.items():
            found = fields.get(name)
            if found is None:
                excluded.add(prop)
                problems.append(f"{prop}: Account has no field {name} (create it, or map it in SALESFORCE_FIELD_MAP)")
            elif str(found.get("type")) not in COMPATIBLE[self._types[prop]]:
                excluded.add(prop)
                problems.append(f"{prop}: {name} is a {found.get('type')} field, Pulse writes {self._types[prop]}")
        for problem in problems:
            log.error("Salesforce field not usable", extra={"problem": problem})
        return Schema(frozenset(excluded), tuple(problems))

    # --- writes ---------------------------------------------------------------------------------------------

    async def write(self, writes: list[PendingWrite]) -> WriteOutcome:
        """Update the Accounts holding these accounts; create or list as unmatched those not found."""
        unique = list({w.account_id: w for w in writes[:MAX_RECORDS]}.values())  # each account once per call
        ids = [w.account_id for w in unique]
        found, failure = await self._find(ids)
        if failure is not None:
            return failure
        outcome = WriteOutcome()
        updates: list[tuple[PendingWrite, str]] = []
        missing: list[PendingWrite] = []
        for w in unique:
            record_ids = found.get(w.account_id, [])
            if len(record_ids) > 1:
                outcome.failed[w.account_id] = Failure(
                    "ambiguous_match", f"{len(record_ids)} Accounts have {self.options.account_id_field}="
                                       f"{w.account_id}: {', '.join(record_ids)}")
            elif record_ids:
                updates.append((w, record_ids[0]))
            else:
                missing.append(w)
        if updates:
            records = [{"attributes": {"type": "Account"}, "id": record_id, **self._values(w.properties)}
                       for w, record_id in updates]
            outcome.merge(await self._collections("update", "/composite/sobjects", records,
                                                  [w.account_id for w, _ in updates]))
        if missing and outcome.pause is None:
            if self.options.create_accounts:
                ext = self.options.account_id_field
                records = [{"attributes": {"type": "Account"}, ext: w.account_id, "Name": w.account_id,
                            **self._values(w.properties)} for w in missing]
                outcome.merge(await self._collections("upsert", f"/composite/sobjects/Account/{ext}", records,
                                                      [w.account_id for w in missing]))
            else:
                for w in missing:
                    outcome.unmatched[w.account_id] = f"no Account has {self.options.account_id_field}={w.account_id}"
        elif missing:
            outcome.retry |= {w.account_id: outcome.pause.message for w in missing}  # type: ignore[union-attr]
        return outcome

    async def _find(self, ids: list[str]) -> tuple[dict[str, list[str]], WriteOutcome | None]:
        ext = self.options.account_id_field
        try:
            response = await self._query(f"SELECT Id, {ext} FROM Account WHERE {ext} IN ({_soql_list(ids)})")
        except httpx.HTTPError as exc:
            return {}, _transport_failure(ids, exc)
        failed = call_outcome(response.status_code, json_any(response), ids)
        if failed is not None:
            return {}, failed
        found: dict[str, list[str]] = {}
        for record in json_object(response).get("records", []):
            found.setdefault(str(record.get(ext)), []).append(str(record.get("Id")))
        return found, None

    async def _collections(self, operation: str, path: str, records: list[dict[str, Any]],
                           ids: list[str]) -> WriteOutcome:
        try:
            response = await self._api(operation, "PATCH", path, {"allOrNone": False, "records": records})
        except httpx.HTTPError as exc:
            return _transport_failure(ids, exc)
        failed = call_outcome(response.status_code, json_any(response), ids)
        if failed is not None:
            return failed
        return record_outcomes(json_any(response), ids)

    def _values(self, properties: dict[str, str]) -> dict[str, Any]:
        return {self._fields[p]: _typed(self._types[p], v) for p, v in properties.items() if p in self._fields}

    # --- owners ---------------------------------------------------------------------------------------------

    async def owners(self, account_ids: list[str]) -> tuple[dict[str, Owner | None], Pause | None]:
        """``Owner.Email`` and ``Owner.Name`` of the Accounts holding these accounts."""
        ext = self.options.account_id_field
        soql = (f"SELECT {ext}, OwnerId, Owner.Email, Owner.Name FROM Account "
                f"WHERE {ext} IN ({_soql_list(account_ids[:MAX_RECORDS])})")
        try:
            response = await self._query(soql)
        except httpx.HTTPError as exc:
            return {}, Pause("outage", OUTAGE_PAUSE, f"Salesforce unreachable: {type(exc).__name__}")
        if response.status_code != 200:
            return {}, pause_for(response.status_code, json_any(response))
        found: dict[str, Owner | None] = {}
        for record in json_object(response).get("records", []):
            owner = record.get("Owner") or {}
            found[str(record.get(ext))] = (Owner(str(record.get("OwnerId")), owner.get("Email") or None,
                                                 owner.get("Name") or None) if record.get("OwnerId") else None)
        return found, None

    # --- HTTP -----------------------------------------------------------------------------------------------

    async def _query(self, soql: str) -> httpx.Response:
        return await self._api("query", "GET", "/query", params={"q": soql})

    async def _api(self, operation: str, method: str, path: str, body: Any = None,
                   params: dict[str, str] | None = None) -> httpx.Response:
        """A data call with the cached token; on 401 INVALID_SESSION_ID, one new token and one retry."""
        if self._token is None:
            await self._fetch_token()
        response = await self._call(operation, method, path, body, params)
        if session_expired(response.status_code, json_any(response)):
            log.info("Salesforce session expired; fetching a new token")
            await self._fetch_token()
            response = await self._call(operation, method, path, body, params)
        return response

    async def _fetch_token(self) -> None:
        await self.gate()
        self.token_fetches += 1
        url = f"{self.options.login_url.rstrip('/')}/services/oauth2/token"
        form = {"grant_type": "client_credentials", "client_id": self.options.client_id,
                "client_secret": self.options.client_secret}
        response = await instrumented(self._client, "salesforce", "token", "POST", url, data=form)
        payload = json_object(response)
        if response.status_code != 200 or not payload.get("access_token"):
            self._token = None
            raise ConnectorUnavailable(f"Salesforce token refused: HTTP {response.status_code} "
                                       f"{payload.get('error', '')} {payload.get('error_description', '')}".strip())
        self._token = str(payload["access_token"])
        self._instance = str(payload.get("instance_url") or self.options.login_url).rstrip("/")

    async def _call(self, operation: str, method: str, path: str, body: Any,
                    params: dict[str, str] | None) -> httpx.Response:
        await self.gate()
        url = f"{self._instance}/services/data/{self.options.api_version}{path}"
        return await instrumented(self._client, "salesforce", operation, method, url, json=body, params=params,
                                  headers={"Authorization": f"Bearer {self._token}"})


def _soql_list(values: list[str]) -> str:
    """A SOQL ``IN`` list, each value quoted with its backslashes and quotes escaped."""
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


def _typed(kind: str, value: str) -> Any:
    """The JSON Salesforce takes for the field (times with a ``Z``, as Salesforce writes them)."""
    typed = typed_value(kind, value)
    return typed.replace("+00:00", "Z") if kind == "datetime" and isinstance(typed, str) else typed


def _transport_failure(ids: list[str], exc: Exception) -> WriteOutcome:
    return transport_failure("Salesforce", ids, exc)
