"""crm-sync's admin API (bearer ``CRM_SYNC_ADMIN_TOKEN``): connector status, unmatched accounts, dead letters
and their replay, reconcile runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.reconcile import progress, start_reconcile
from crm_sync.store import StoreOptions
from crm_sync.tables import account_state, connector_state, crm_writes
from pulse_shared.auth import bearer_guard

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong admin token."},
    503: {"description": "The admin API is off (CRM_SYNC_ADMIN_TOKEN is not set)."},
}
#: Dependency: the admin token (CRM_SYNC_ADMIN_TOKEN) as a bearer token.
admin = bearer_guard("CRM_SYNC_ADMIN_TOKEN", lambda request: request.app.state.settings.admin_token)

Cursor = Annotated[str | None, Query(max_length=30, pattern=r"^\d*$",
                                     description="next_cursor of the previous page (empty: the first page).")]
Limit = Annotated[int, Query(ge=1, le=500)]


class ConnectorStatus(BaseModel):
    """One connector as the CRM writer sees it."""

    connector: str
    accounts: dict[str, int]
    dead_letters: dict[str, int]
    paused_until: datetime | None
    pause_reason: str | None
    writer: str | None
    writer_since: datetime | None
    last_call_at: datetime | None
    problems: list[str]


class UnmatchedOut(BaseModel):
    """An account no CRM record holds (not written; retried by reconcile, or linked once a match is found)."""

    id: int
    connector: str
    account_id: str
    since: datetime
    message: str | None
    match_value: str | None


class FailureOut(BaseModel):
    """A dead letter: an account's write the CRM refused for good, with the CRM's reason."""

    id: int
    connector: str
    account_id: str
    reason: str | None
    message: str | None
    attempts: int
    since: datetime
    properties: dict[str, str]


class UnmatchedPage(BaseModel):
    """A page of unmatched accounts; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[UnmatchedOut]
    next_cursor: str | None


class FailurePage(BaseModel):
    """A page of dead letters; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[FailureOut]
    next_cursor: str | None


class ReconcileIn(BaseModel):
    """What to reconcile."""

    model_config = ConfigDict(extra="forbid")

    connector: Annotated[str | None, Field(max_length=50, description="One connector; all when left out.")] = None
    dry_run: bool = False


def router(engine: AsyncEngine, connectors: Sequence[str], options: StoreOptions) -> APIRouter:
    """The admin routes."""
    api = APIRouter(prefix="/v1/crm", dependencies=[Depends(admin)], responses=REFUSALS, tags=["admin"])
    w = crm_writes.c

    def chosen(connector: str | None) -> list[str]:
        if connector is None or connector == "":
            return list(connectors)
        if connector not in connectors:
            raise HTTPException(422,
                                detail=f"unknown connector {connector!r}; configured: {', '.join(connectors)}")
        return [connector]

    @api.get("/status", summary="Show each connector's accounts, pause and writer",
             response_model=list[ConnectorStatus])
    async def get_status() -> list[ConnectorStatus]:
        """Per connector: accounts pending, synced, unmatched and failed, dead letters by reason, whether writes are
        paused (and why), which replica holds the writer lease, the last call."""
        async with engine.connect() as conn:
            counts = (await conn.execute(select(w.connector, w.status, w.reason, func.count())
                                         .group_by(w.connector, w.status, w.reason))).all()
            states = {r.connector: r for r in (await conn.execute(select(connector_state))).all()}
        out = []
        for name in connectors:
            accounts = dict.fromkeys(("pending", "synced", "unmatched", "failed"), 0)
            dead: dict[str, int] = {}
            for connector, status_, reason, count in counts:
                if connector == name:
                    accounts[status_] = accounts.get(status_, 0) + count
                    if status_ == "failed":
                        dead[reason or "unknown"] = dead.get(reason or "unknown", 0) + count
            s = states.get(name)
            out.append(ConnectorStatus(
                connector=name, accounts=accounts, dead_letters=dead,
                paused_until=s.paused_until if s else None, pause_reason=s.pause_reason if s else None,
                writer=s.writer if s else None, writer_since=s.writer_since if s else None,
                last_call_at=s.last_call_at if s else None, problems=list(s.problems) if s else []))
        return out

    @api.get("/unmatched", summary="List accounts no CRM record holds", response_model=UnmatchedPage)
    async def list_unmatched(connector: Annotated[str | None, Query(max_length=50)] = None, limit: Limit = 100,
                             cursor: Cursor = None) -> UnmatchedPage:
        """Accounts whose scores no CRM record would take (no record holds the account id), with the value matched
        on; page with ``next_cursor``."""
        query = (select(w.id, w.connector, w.account_id, w.status_since, w.last_error, account_state.c.match_value)
                 .select_from(crm_writes.outerjoin(account_state, account_state.c.account_id == w.account_id))
                 .where(w.status == "unmatched", w.connector.in_(chosen(connector))))
        rows, more = await _page(engine, query, cursor, limit)
        return UnmatchedPage(
            items=[UnmatchedOut(id=r.id, connector=r.connector, account_id=r.account_id, since=r.status_since,
                                message=r.last_error, match_value=r.match_value) for r in rows],
            next_cursor=str(rows[-1].id) if more else None)

    @api.get("/failures", summary="List dead letters (writes the CRM refused)", response_model=FailurePage)
    async def list_failures(
        connector: Annotated[str | None, Query(max_length=50)] = None,
        reason: Annotated[str | None, Query(
            pattern="^(invalid_value|ambiguous_match|already_linked|rejected|gave_up)?$")] = None,
        limit: Limit = 100, cursor: Cursor = None,
    ) -> FailurePage:
        """Writes the CRM refused for good (an invalid value, an ambiguous match, a record already linked) or that
        were given up after retries; retry one with ``POST /v1/crm/failures/{id}/retry`` once fixed."""
        query = select(crm_writes).where(w.status == "failed", w.connector.in_(chosen(connector)))
        if reason:
            query = query.where(w.reason == reason)
        rows, more = await _page(engine, query, cursor, limit)
        return FailurePage(
            items=[FailureOut(id=r.id, connector=r.connector, account_id=r.account_id, reason=r.reason,
                              message=r.last_error, attempts=r.attempts, since=r.status_since,
                              properties=dict(r.properties)) for r in rows],
            next_cursor=str(rows[-1].id) if more else None)

    @api.post("/failures/{failure_id}/retry", summary="Send a dead letter again", status_code=202,
              responses={404: {"description": "No dead letter has this id."}})
    async def retry_failure(failure_id: Annotated[int, PathParam(ge=1)]) -> dict[str, Any]:
        """The account's current properties are written again on the next flush (all of them)."""
        async with engine.begin() as conn:
            row = (await conn.execute(
                update(crm_writes).where(w.id == failure_id, w.status == "failed")
                .values(status="pending", reason=None, attempts=0, sent={}, next_attempt_at=func.now(),
                        status_since=func.now())
                .returning(w.id, w.connector, w.account_id))).first()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no dead letter has id {failure_id}")
        return {"id": row.id, "connector": row.connector, "account_id": row.account_id, "status": "pending"}

    @api.post("/reconcile", summary="Re-push every account, re-read owners, re-try unmatched", status_code=202,
              responses={422: {"description": "Unknown connector."}})
    async def post_reconcile(body: ReconcileIn | None = None) -> dict[str, Any]:
        """Marks the accounts of one connector (or all) for a full write, paced by the connector's budget.
        Follow it with ``GET /v1/crm/reconcile/{run_id}``. A dry run changes nothing and says what it would cover."""
        body = body or ReconcileIn()
        summary = await start_reconcile(engine, chosen(body.connector), options=options, dry_run=body.dry_run,
                                        requested_by="api")
        return {"run_id": summary.run_id, "connectors": summary.connectors, "dry_run": summary.dry_run,
                "accounts": summary.accounts, "before": summary.before, "summary": summary.line()}

    @api.get("/reconcile/{run_id}", summary="Show a reconcile run's progress",
             responses={404: {"description": "No reconcile run has this id."}})
    async def get_reconcile(run_id: Annotated[int, PathParam(ge=1)]) -> dict[str, Any]:
        """A reconcile run's progress: accounts queued and done, and when it started and ended."""
        found = await progress(engine, run_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no reconcile run has id {run_id}")
        return found

    return api


async def _page(engine: AsyncEngine, query: Any, cursor: str | None, limit: int) -> tuple[list[Any], bool]:
    if cursor:
        query = query.where(crm_writes.c.id > int(cursor))
    async with engine.connect() as conn:
        rows = list((await conn.execute(query.order_by(crm_writes.c.id).limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit
