"""Alerts' admin API (bearer ``ALERTS_ADMIN_TOKEN``): account owners, and the alerts with their delivery state."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.store import upsert_owner_rows
from alerts.tables import account_owners, alerts
from pulse_shared.auth import bearer_guard
from pulse_shared.events import NulFree, utcnow

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong admin token."},
    503: {"description": "The admin API is off (ALERTS_ADMIN_TOKEN is not set)."},
}
#: Dependency: the admin token (ALERTS_ADMIN_TOKEN) as a bearer token.
admin = bearer_guard("ALERTS_ADMIN_TOKEN", lambda request: request.app.state.settings.admin_token)


class OwnerIn(NulFree):
    """Who owns (is the CSM of) an account. ``email: null`` removes the owner."""

    model_config = ConfigDict(extra="forbid")
    nul_where: ClassVar[str] = "owner"

    email: Annotated[str, Field(min_length=3, max_length=320, examples=["jane@example.com"])] | None
    name: Annotated[str, Field(max_length=255)] | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        local, at, domain = value.partition("@")
        if not at or not local or "." not in domain or " " in value:
            raise ValueError("not an email address")
        return value


class OwnerOut(BaseModel):
    """An account's owner as alerts routes by it."""

    account_id: str
    email: str | None
    name: str | None
    source: str
    changed_at: datetime | None


class AlertOut(BaseModel):
    """One alert and its delivery state."""

    alert_id: str
    rule: str
    severity: str
    account_id: str
    response_id: str
    receiver: str
    status: str
    channel: str | None
    slack_ts: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    facts: dict[str, Any]
    handling: dict[str, Any] = Field(default_factory=dict,
                                     description="Acknowledged by/at, assigned to/at, snoozed until (from Slack).")


class AlertPage(BaseModel):
    """A page of alerts, newest first; pass ``next_cursor`` as ``cursor`` for the next one."""

    alerts: list[AlertOut]
    next_cursor: str | None


AccountPath = Annotated[str, PathParam(min_length=1, max_length=255, description="The account id Pulse uses.")]


def router(engine: AsyncEngine) -> APIRouter:
    """The admin routes."""
    api = APIRouter(prefix="/v1", dependencies=[Depends(admin)], responses=REFUSALS, tags=["admin"])

    @api.put("/accounts/{account_id}/owner", summary="Set the owner (CSM) of an account", response_model=OwnerOut)
    async def put_owner(account_id: AccountPath, owner: OwnerIn) -> OwnerOut:
        """Alerts for the account go to this person's Slack DM (found by email). A CRM connector that reports
        another owner later takes over: the newest change wins."""
        if "\x00" in account_id:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail="account_id contains a NUL character")
        now = utcnow()
        async with engine.begin() as conn:
            await upsert_owner_rows(conn, [{"account_id": account_id, "owner_email": owner.email,
                                            "owner_name": owner.name, "crm": "admin", "changed_at": now}])
        return OwnerOut(account_id=account_id, email=owner.email, name=owner.name, source="admin", changed_at=now)

    @api.get("/accounts/{account_id}/owner", summary="Show the owner (CSM) of an account", response_model=OwnerOut,
             responses={404: {"description": "No owner is known for the account."}})
    async def get_owner(account_id: AccountPath) -> OwnerOut:
        async with engine.connect() as conn:
            row = (await conn.execute(select(account_owners).where(account_owners.c.account_id == account_id))).first()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no owner is known for account {account_id!r}")
        return OwnerOut(account_id=row.account_id, email=row.owner_email, name=row.owner_name, source=row.crm,
                        changed_at=row.changed_at)

    @api.get("/alerts", summary="List alerts with their delivery state", response_model=AlertPage,
             responses={400: {"description": "The cursor is not one this API gave out."}})
    async def list_alerts(
        account_id: Annotated[str | None, Query(max_length=255)] = None,
        status_: Annotated[str | None, Query(alias="status", pattern="^(pending|sent|update_pending|failed|logged|"
                                                                        "withdrawn)?$")] = None,
        rule: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
    ) -> AlertPage:
        conditions = []
        if account_id:
            conditions.append(alerts.c.account_id == account_id)
        if status_:
            conditions.append(alerts.c.status == status_)
        if rule:
            conditions.append(alerts.c.rule == rule)
        if cursor:
            at, last = _decode_cursor(cursor)
            conditions.append(or_(alerts.c.created_at < at, and_(alerts.c.created_at == at, alerts.c.alert_id < last)))
        query = (select(alerts).where(*conditions).order_by(alerts.c.created_at.desc(), alerts.c.alert_id.desc())
                 .limit(limit + 1))
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        page = rows[:limit]
        more = len(rows) > limit
        return AlertPage(
            alerts=[AlertOut(alert_id=r.alert_id, rule=r.rule, severity=r.severity, account_id=r.account_id,
                             response_id=r.response_id, receiver=r.receiver, status=r.status, channel=r.channel,
                             slack_ts=r.slack_ts, attempts=r.attempts, last_error=r.last_error,
                             created_at=r.created_at, delivered_at=r.delivered_at, facts=r.facts,
                             handling=r.handling or {}) for r in page],
            next_cursor=_encode_cursor(page[-1].created_at, page[-1].alert_id) if more and page else None,
        )

    return api


def _encode_cursor(at: datetime, alert_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), alert_id]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, alert_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(alert_id)
    except (ValueError, TypeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="cursor is not one this API gave out") from exc
