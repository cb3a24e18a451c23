"""HubSpot companies: match existing companies, never invent them; read owners back.

Contract (integrations.md):
- scores go with ``POST /crm/v3/objects/companies/batch/update``, each input ``{"id": <account id>,
  "idProperty": <unique property>, "properties": {...}}`` (update only: an account no company holds comes
  back as ``OBJECT_NOT_FOUND`` and nothing is created), at most 100 inputs;
- an account not found is linked, when a match property is configured (``domain``) and the account's answers
  carry its value, by ``POST /crm/v3/objects/companies/search`` (exactly one company must match, and it must
  not hold another account's id), then updated by record id with the id property set; else it is unmatched,
  or created with ``batch/create`` only when ``HUBSPOT_CREATE_COMPANIES=true``;
- properties live in Pulse's own group (``POST /crm/v3/properties/companies/groups``), created when missing;
  one that exists with another type is reported and left out of writes, never changed;
- owners: ``POST /crm/v3/objects/companies/batch/read`` with ``idProperty`` for ``hubspot_owner_id``, then
  ``GET /crm/v3/owners/{id}`` (cached) for the email and name.
Every call first waits at the connector's gate (the shared budget).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
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
from crm_sync.connectors.calls import instrumented, json_object, no_gate, transport_failure
from crm_sync.connectors.hubspot_answers import OUTAGE_PAUSE, batch_answer, message_of, pause_for
from crm_sync.domain.properties import PropertyDef, property_defs

log = logging.getLogger(__name__)

MAX_INPUTS = 100
GROUP = {"name": "pulse", "label": "Pulse customer feedback", "displayOrder": -1}
OWNER_PROPERTY = "hubspot_owner_id"
OWNER_CACHE_SECONDS = 3600.0


@dataclass(frozen=True)
class HubSpotOptions:
    """How the connector matches and what it may create."""

    id_property: str = "pulse_account_id"
    create_properties: bool = True
    create_companies: bool = False
    match_property: str | None = None
    write_comments: bool = False


class Unreachable(ConnectorUnavailable):
    """HubSpot could not be reached or refused the call (the message says why)."""


class HubSpotConnector:
    """Writes scores onto existing HubSpot companies and reads their owners."""

    name = "hubspot"
    max_batch = MAX_INPUTS

    def __init__(self, base_url: str, token: str, options: HubSpotOptions | None = None, *,
                 timeout: float = 20.0, gate: Gate = no_gate) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
        self.options = options or HubSpotOptions()
        self.gate = gate
        self._owners: dict[str, tuple[float, Owner | None]] = {}

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # --- properties ---------------------------------------------------------------------------------------------

    async def prepare(self) -> Schema:
        """Create Pulse's group and missing properties; report (and leave out) properties of another type."""
        defs = property_defs(self.options.id_property, write_comments=self.options.write_comments)
        response = await self._call("list_properties", "GET", "/crm/v3/properties/companies")
        if response.status_code != 200:
            raise Unreachable(f"listing company properties: HTTP {response.status_code} {_text(response)}")
        existing = {str(p.get("name")): p for p in json_object(response).get("results", []) if isinstance(p, dict)}
        excluded: set[str] = set()
        problems: list[str] = []
        missing = [d for d in defs if d.name not in existing]
        if missing and self.options.create_properties:
            await self._create_group()
        for d in defs:
            found = existing.get(d.name)
            if found is None:
                if not self.options.create_properties:
                    excluded.add(d.name)
                    problems.append(f"{d.name} does not exist (HUBSPOT_CREATE_PROPERTIES=false)")
                    continue
                await self._create_property(d)
            elif str(found.get("type")) != d.type:
                excluded.add(d.name)
                problems.append(f"{d.name} exists with type {found.get('type')}, Pulse writes {d.type}: left out")
            elif d.unique and not found.get("hasUniqueValue"):
                raise Unreachable(f"{d.name} exists but is not unique (hasUniqueValue), so it cannot be the id "
                                  f"property; choose another HUBSPOT_ID_PROPERTY or make it unique")
        if self.options.id_property in excluded:
            raise Unreachable(f"the id property {self.options.id_property} cannot be used: {problems}")
        for problem in problems:
            log.error("HubSpot property not usable", extra={"problem": problem})
        return Schema(frozenset(excluded), tuple(problems))

    async def _create_group(self) -> None:
        response = await self._call("create_group", "POST", "/crm/v3/properties/companies/groups", GROUP)
        if response.status_code not in (200, 201, 409):
            raise Unreachable(f"creating the property group pulse: HTTP {response.status_code} {_text(response)}")

    async def _create_property(self, d: PropertyDef) -> None:
        body: dict[str, Any] = {"name": d.name, "label": d.label, "type": d.type, "fieldType": d.field_type,
                                "groupName": GROUP["name"], "description": d.description}
        if d.unique:
            body["hasUniqueValue"] = True
        if d.options:
            body["options"] = d.options
        response = await self._call("create_property", "POST", "/crm/v3/properties/companies", body)
        if response.status_code not in (200, 201, 409):
            raise Unreachable(f"creating property {d.name}: HTTP {response.status_code} {_text(response)}")
        log.info("HubSpot property created", extra={"property": d.name, "status": response.status_code})

    # --- writes -------------------------------------------------------------------------------------------------

    async def write(self, writes: list[PendingWrite]) -> WriteOutcome:
        """Update the companies holding these accounts; link, create or list as unmatched those not found."""
        outcome, not_found = await self._update(writes[:MAX_INPUTS])
        if not_found and outcome.pause is None:
            by_id = {w.account_id: w for w in writes}
            outcome.merge(await self._not_found([by_id[a] for a in not_found]))
        return outcome

    async def _update(self, writes: list[PendingWrite]) -> tuple[WriteOutcome, list[str]]:
        ids = [w.account_id for w in writes]
        body = {"inputs": [{"id": w.account_id, "idProperty": self.options.id_property, "properties": w.properties}
                           for w in writes]}
        try:
            response = await self._call("batch_update", "POST", "/crm/v3/objects/companies/batch/update", body)
        except httpx.HTTPError as exc:
            return _transport_failure(ids, exc), []
        answer = batch_answer(response.status_code, json_object(response), ids)
        if not answer.split:
            return answer.outcome, answer.not_found
        # HubSpot refused the whole batch for one input's value: halve it until the input is found.
        middle = len(writes) // 2
        outcome, not_found = await self._update(writes[:middle])
        if outcome.pause is None:
            rest, rest_missing = await self._update(writes[middle:])
            outcome.merge(rest)
            not_found += rest_missing
        else:
            outcome.retry |= dict.fromkeys(ids[middle:], outcome.pause.message)
        return outcome, not_found

    async def _not_found(self, writes: list[PendingWrite]) -> WriteOutcome:
        outcome = WriteOutcome()
        to_create: list[PendingWrite] = []
        for w in writes:
            if self.options.match_property and w.match_value:
                step = await self._link(w)
                if step.pause is not None:
                    outcome.merge(step)
                    outcome.retry |= {x.account_id: step.pause.message for x in writes
                                      if x.account_id not in outcome.written | set(outcome.failed)}
                    return outcome
                if w.account_id not in step.unmatched:
                    outcome.merge(step)
                    continue
            if self.options.create_companies:
                to_create.append(w)
            else:
                how = (f"no company has {self.options.id_property}={w.account_id}"
                       + (f" or {self.options.match_property}={w.match_value}"
                          if self.options.match_property and w.match_value else ""))
                outcome.unmatched[w.account_id] = how
        if to_create:
            outcome.merge(await self._create(to_create))
        return outcome

    async def _link(self, w: PendingWrite) -> WriteOutcome:
        prop = self.options.match_property
        assert prop is not None
        body = {"filterGroups": [{"filters": [{"propertyName": prop, "operator": "EQ", "value": w.match_value}]}],
                "properties": [self.options.id_property, prop], "limit": 2}
        try:
            response = await self._call("search", "POST", "/crm/v3/objects/companies/search", body)
        except httpx.HTTPError as exc:
            return _transport_failure([w.account_id], exc)
        payload = json_object(response)
        pause = pause_for(response.status_code, payload)
        if pause is not None:
            return WriteOutcome(retry={w.account_id: pause.message}, pause=pause)
        if response.status_code != 200:
            return WriteOutcome(retry={w.account_id: f"HubSpot search {response.status_code}: "
                                                     f"{message_of(payload, '')}"})
        results = [r for r in payload.get("results") or [] if isinstance(r, dict)]
        if not results:
            return WriteOutcome(unmatched={w.account_id: f"no company has {prop}={w.match_value}"})
        if len(results) > 1 or int(payload.get("total") or 1) > 1:
            return WriteOutcome(failed={w.account_id: Failure(
                "ambiguous_match", f"{payload.get('total', len(results))} companies have {prop}={w.match_value}; "
                                   f"set {self.options.id_property}={w.account_id} on the right one")})
        company = results[0]
        holder = (company.get("properties") or {}).get(self.options.id_property)
        if holder and holder != w.account_id:
            return WriteOutcome(failed={w.account_id: Failure(
                "already_linked", f"company {company.get('id')} with {prop}={w.match_value} already belongs to "
                                  f"Pulse account {holder}")})
        record_id = str(company.get("id"))
        body2 = {"inputs": [{"id": record_id, "properties": {**w.properties,
                                                              self.options.id_property: w.account_id}}]}
        try:
            response = await self._call("batch_update", "POST", "/crm/v3/objects/companies/batch/update", body2)
        except httpx.HTTPError as exc:
            return _transport_failure([w.account_id], exc)
        answer = batch_answer(response.status_code, json_object(response), [record_id])
        outcome = WriteOutcome(pause=answer.outcome.pause)
        if record_id in answer.outcome.written:
            outcome.written.add(w.account_id)
            outcome.linked.add(w.account_id)
            log.info("HubSpot company linked", extra={"account_id": w.account_id, "record_id": record_id,
                                                      "match": f"{prop}={w.match_value}"})
        elif record_id in answer.outcome.failed:
            outcome.failed[w.account_id] = answer.outcome.failed[record_id]
        elif answer.not_found:
            outcome.retry[w.account_id] = f"company {record_id} vanished while linking"
        else:
            outcome.retry[w.account_id] = next(iter(answer.outcome.retry.values()), "link not confirmed")
        return outcome

    async def _create(self, writes: list[PendingWrite]) -> WriteOutcome:
        ids = [w.account_id for w in writes]
        inputs = []
        for w in writes:
            props = {**w.properties, self.options.id_property: w.account_id, "name": w.account_id}
            if self.options.match_property and w.match_value:
                props[self.options.match_property] = w.match_value
            inputs.append({"properties": props})
        try:
            response = await self._call("batch_create", "POST", "/crm/v3/objects/companies/batch/create",
                                        {"inputs": inputs})
        except httpx.HTTPError as exc:
            return _transport_failure(ids, exc)
        answer = batch_answer(response.status_code, json_object(response), ids)
        answer.outcome.created = set(answer.outcome.written)
        return answer.outcome

    # --- owners -------------------------------------------------------------------------------------------------

    async def owners(self, account_ids: list[str]) -> tuple[dict[str, Owner | None], Pause | None]:
        """Read ``hubspot_owner_id`` of the companies holding these accounts and resolve each owner."""
        id_property = self.options.id_property
        body = {"idProperty": id_property, "inputs": [{"id": a} for a in account_ids[:MAX_INPUTS]],
                "properties": [id_property, OWNER_PROPERTY]}
        try:
            response = await self._call("batch_read", "POST", "/crm/v3/objects/companies/batch/read", body)
        except httpx.HTTPError as exc:
            return {}, Pause("outage", OUTAGE_PAUSE, f"HubSpot unreachable: {type(exc).__name__}")
        payload = json_object(response)
        pause = pause_for(response.status_code, payload)
        if pause is not None or response.status_code not in (200, 207):
            return {}, pause
        found: dict[str, Owner | None] = {}
        for result in payload.get("results") or []:
            props = result.get("properties") or {} if isinstance(result, dict) else {}
            account_id = props.get(id_property)
            if not account_id:
                continue
            owner_id = props.get(OWNER_PROPERTY)
            if not owner_id:
                found[str(account_id)] = None
                continue
            owner, pause = await self._owner(str(owner_id))
            if pause is not None:
                return found, pause
            found[str(account_id)] = owner
        return found, None

    async def _owner(self, owner_id: str) -> tuple[Owner | None, Pause | None]:
        cached = self._owners.get(owner_id)
        if cached is not None and time.monotonic() - cached[0] < OWNER_CACHE_SECONDS:
            return cached[1], None
        try:
            response = await self._call("owner", "GET", f"/crm/v3/owners/{owner_id}")
        except httpx.HTTPError as exc:
            return None, Pause("outage", OUTAGE_PAUSE, f"HubSpot unreachable: {type(exc).__name__}")
        payload = json_object(response)
        pause = pause_for(response.status_code, payload)
        if pause is not None:
            return None, pause
        owner: Owner | None = None
        if response.status_code == 200:
            name = " ".join(p for p in (payload.get("firstName"), payload.get("lastName")) if p) or None
            owner = Owner(owner_id, payload.get("email") or None, name)
        else:
            # A deactivated user: the company has an owner id nobody answers to; route as if it had none.
            log.warning("HubSpot owner not found", extra={"owner_id": owner_id, "status": response.status_code})
        self._owners[owner_id] = (time.monotonic(), owner)
        return owner, None

    # --- HTTP ---------------------------------------------------------------------------------------------------

    async def _call(self, operation: str, method: str, path: str, body: Any = None) -> httpx.Response:
        await self.gate()
        return await instrumented(self._client, "hubspot", operation, method, path, json=body)


def _transport_failure(ids: list[str], exc: Exception) -> WriteOutcome:
    return transport_failure("HubSpot", ids, exc)


def _text(response: httpx.Response) -> str:
    return response.text[:300]
