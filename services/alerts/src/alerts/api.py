"""Alerts' admin API (bearer ``ALERTS_ADMIN_TOKEN``): account owners, and the alerts with their delivery state."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as PathParam
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.config import duration_seconds
from alerts.store import upsert_owner_rows
from alerts.tables import account_owners, alerts, silences
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


STATUSES = ("pending", "sent", "update_pending", "failed", "logged", "withdrawn", "silenced", "suppressed",
            "grouped")
STATUS_PATTERN = f"^({'|'.join(STATUSES)})?$"


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
    grouped_into: str | None = Field(None, description="For a grouped alert (status `grouped`): the alert whose "
                                     "message lists it; channel, slack_ts and handling are that message's.")
    escalate_to: str | None = Field(None, description="Where it goes if nobody acknowledges it in time.")
    escalated_at: datetime | None = None


class AlertPage(BaseModel):
    """A page of alerts, newest first; pass ``next_cursor`` as ``cursor`` for the next one."""

    alerts: list[AlertOut]
    next_cursor: str | None


class SilenceIn(NulFree):
    """Alerts to keep quiet: every matcher given must match; at least one is required."""

    model_config = ConfigDict(extra="forbid")
    nul_where: ClassVar[str] = "silence"

    account_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    rule: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    labels: dict[Annotated[str, Field(min_length=1, max_length=100)], Annotated[str, Field(max_length=255)]] = Field(
        default_factory=dict, description="Answer properties that must match, e.g. {\"plan\": \"enterprise\"}.")
    starts_at: AwareDatetime | None = Field(None, description="Default: now.")
    ends_at: AwareDatetime | None = Field(None, description="When it ends; or give `duration` instead.")
    duration: Annotated[str, Field(max_length=20)] | None = Field(
        None, description="How long from `starts_at` (or now) it lasts, instead of `ends_at`: 90s, 30m, 2h, 7d.")
    author: Annotated[str, Field(min_length=1, max_length=255)]
    comment: Annotated[str, Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _sensible(self) -> SilenceIn:
        if self.account_id is None and self.rule is None and not self.labels:
            raise ValueError("a silence needs at least one matcher (account_id, rule or labels)")
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give either ends_at or duration (like 2h)")
        if self.duration is not None:
            duration_seconds(self.duration)  # a clear error for a malformed duration
        elif self.ends_at is not None and self.ends_at <= (self.starts_at or utcnow()):
            raise ValueError("ends_at must be after starts_at (or after now)")
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """When it starts and ends."""
        starts = self.starts_at or now
        if self.duration is not None:
            return starts, starts + timedelta(seconds=duration_seconds(self.duration))
        assert self.ends_at is not None
        return starts, self.ends_at


class SilenceOut(BaseModel):
    """A silence as stored."""

    id: int
    account_id: str | None
    rule: str | None
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str
    created_at: datetime


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
        """The owner alerts route the account's alerts to, and where it came from (the CRM or this API)."""
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
        status_: Annotated[str | None, Query(alias="status", pattern=STATUS_PATTERN)] = None,
        rule: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
    ) -> AlertPage:
        """Alerts newest first, with their delivery state (pending, sent, grouped, silenced, suppressed, failed...),
        the Slack message they went out as and how the CSM handled them; filter by account, status and rule, page
        with ``next_cursor``."""
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
        leader = alerts.alias("leader")
        query = (select(alerts, leader.c.channel.label("leader_channel"), leader.c.slack_ts.label("leader_ts"),
                        leader.c.handling.label("leader_handling"))
                 .outerjoin(leader, leader.c.alert_id == alerts.c.group_leader)
                 .where(*conditions).order_by(alerts.c.created_at.desc(), alerts.c.alert_id.desc())
                 .limit(limit + 1))
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        page = rows[:limit]
        more = len(rows) > limit
        return AlertPage(
            alerts=[AlertOut(alert_id=r.alert_id, rule=r.rule, severity=r.severity, account_id=r.account_id,
                             response_id=r.response_id, receiver=r.receiver, status=r.status,
                             channel=r.channel or r.leader_channel, slack_ts=r.slack_ts or r.leader_ts,
                             attempts=r.attempts, last_error=r.last_error, created_at=r.created_at,
                             delivered_at=r.delivered_at, facts=r.facts,
                             handling=(r.leader_handling if r.group_leader else r.handling) or {},
                             grouped_into=r.group_leader, escalate_to=r.escalate_to,
                             escalated_at=r.escalated_at) for r in page],
            next_cursor=_encode_cursor(page[-1].created_at, page[-1].alert_id) if more and page else None,
        )

    @api.post("/silences", summary="Silence alerts (by account, rule, labels) for a while", status_code=201,
              response_model=SilenceOut, responses={422: {"description": "No matcher, or the end is not after the "
                                                                          "start."}})
    async def post_silence(silence: SilenceIn) -> SilenceOut:
        """Matching alerts raised while it is active are stored as ``silenced`` (listed, never posted)."""
        starts, ends = silence.window(utcnow())
        async with engine.begin() as conn:
            row = (await conn.execute(insert(silences).values(
                account_id=silence.account_id, rule=silence.rule, labels=silence.labels, starts_at=starts,
                ends_at=ends, author=silence.author, comment=silence.comment).returning(silences))).one()
        return _silence_out(row)

    @api.get("/silences", summary="List silences (active ones by default)", response_model=list[SilenceOut])
    async def list_silences(all_: Annotated[bool, Query(alias="all")] = False) -> list[SilenceOut]:
        """The silences in force (``all=true``: ended ones too, newest first)."""
        query = select(silences).order_by(silences.c.id.desc()).limit(500)
        if not all_:
            query = query.where(silences.c.ends_at > func.now())
        async with engine.connect() as conn:
            return [_silence_out(r) for r in await conn.execute(query)]

    @api.delete("/silences/{silence_id}", summary="End a silence now", response_model=SilenceOut,
                responses={404: {"description": "No silence has this id."}})
    async def delete_silence(silence_id: Annotated[int, PathParam(ge=1)]) -> SilenceOut:
        """End a silence now (it stays listed with ``all=true``); alerts raised from now on go out again."""
        async with engine.begin() as conn:
            row = (await conn.execute(update(silences).where(silences.c.id == silence_id).values(
                ends_at=func.least(silences.c.ends_at, func.now())).returning(silences))).first()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no silence has id {silence_id}")
        return _silence_out(row)

    return api


def _silence_out(row: Any) -> SilenceOut:
    return SilenceOut(id=row.id, account_id=row.account_id, rule=row.rule, labels=row.labels or {},
                      starts_at=row.starts_at, ends_at=row.ends_at, author=row.author, comment=row.comment,
                      created_at=row.created_at)


def _encode_cursor(at: datetime, alert_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), alert_id]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, alert_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(alert_id)
    except (ValueError, TypeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="cursor is not one this API gave out") from exc
