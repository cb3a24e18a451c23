"""Escalation: an alert nobody acknowledged within its route's ``escalate_after`` goes to the route's
``escalate_to``, exactly once, across restarts and replicas.

One statement marks the due alerts escalated (``escalated_at`` set where it was NULL: whichever replica runs
it first takes each alert, no other can), and in the same transaction writes the escalation's work:

- ``channel:C...``: a new alert row for that channel (``<alert id>:escalated``), which the dispatcher posts
  with the same exactly-once delivery as every alert;
- ``pagerduty``: an Events v2 ``trigger`` with ``dedup_key`` = the alert id in the PagerDuty outbox; the
  acknowledgement in Slack queues its ``resolve``. PagerDuty deduplicates by the key, so a repeated send is
  harmless; no personal data (comment, respondent) leaves for PagerDuty.

A snoozed alert escalates when its snooze ends, if still unacknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter, Gauge
from sqlalchemy import cast, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import TIMESTAMP, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerts.domain.message import AlertFacts, headline
from alerts.store import NOTIFY, NOTIFY_CHANNEL
from alerts.tables import alerts, pagerduty_events
from pulse_shared.db import is_transient
from pulse_shared.events import utcnow
from pulse_shared.loops import sleep_or_stop
from pulse_shared.outbox import Claimer

log = logging.getLogger(__name__)

ESCALATIONS = Counter("pulse_alerts_escalations_total", "Alerts escalated, by where they went.", ["to"])
PAGERDUTY = Counter("pulse_alerts_pagerduty_events_total", "PagerDuty events by action and outcome.",
                    ["action", "outcome"])
OPEN_UNACKED = Gauge("pulse_alerts_open_unacknowledged",
                     "Alerts posted in the last 7 days that nobody acknowledged yet (escalation copies excluded).")
OPEN_WINDOW = timedelta(days=7)
#: The id of an alert's escalation copy (the message posted to the team channel) is the alert's id with this.
ESCALATED = ":escalated"
PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
BATCH = 200


async def escalate_due(engine: AsyncEngine, now: datetime) -> int:
    """Escalate every alert whose time is up at ``now``; return how many (each one exactly once)."""
    a = alerts.c
    ack_at = a.handling["ack_at"].astext
    snoozed_until = cast(a.handling["snoozed_until"].astext, TIMESTAMP(timezone=True))
    due = (
        update(alerts)
        .where(a.escalate_to.is_not(None), a.escalated_at.is_(None), a.delivered_at.is_not(None),
               a.status.in_(("sent", "update_pending")), ack_at.is_(None),
               a.delivered_at + a.escalate_after_s * literal_column("interval '1 second'") <= now,
               or_(snoozed_until.is_(None), snoozed_until <= now))
        .values(escalated_at=now, updated_at=func.now())
        .returning(a.alert_id, a.rule, a.account_id, a.response_id, a.severity, a.facts, a.escalate_to,
                   a.escalate_after_s, a.traceparent)
    )
    async with engine.begin() as conn:
        rows = (await conn.execute(due)).all()
        for row in rows:
            if row.escalate_to == "pagerduty":
                await _trigger(conn, row)
            else:
                await _to_channel(conn, row)
            ESCALATIONS.labels("pagerduty" if row.escalate_to == "pagerduty" else "channel").inc()
        if rows:
            await conn.execute(NOTIFY, {"channel": NOTIFY_CHANNEL})
    for row in rows:
        log.warning("alert escalated: nobody acknowledged it in time",
                    extra={"alert_id": row.alert_id, "to": row.escalate_to, "after_s": row.escalate_after_s})
    return len(rows)


async def count_open(engine: AsyncEngine, now: datetime) -> int:
    """Alerts posted in the week before ``now`` that nobody acknowledged (what a team lead looks at)."""
    a = alerts.c
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(alerts).where(
            a.status.in_(("sent", "update_pending")), a.delivered_at > now - OPEN_WINDOW,
            a.handling["ack_at"].astext.is_(None), ~a.alert_id.endswith(ESCALATED)))).scalar()
    OPEN_UNACKED.set(int(count or 0))
    return int(count or 0)


async def _to_channel(conn: AsyncConnection, row: Any) -> None:
    facts = {**row.facts, "escalated_from": row.alert_id, "escalated_after_s": row.escalate_after_s}
    await conn.execute(insert(alerts).values(
        alert_id=f"{row.alert_id}{ESCALATED}", rule=row.rule, account_id=row.account_id,
        response_id=row.response_id, receiver=row.escalate_to, severity=row.severity, facts=facts,
        traceparent=row.traceparent, next_attempt_at=func.now(),
    ).on_conflict_do_nothing())


async def _trigger(conn: AsyncConnection, row: Any) -> None:
    facts = AlertFacts.model_validate(row.facts)
    body = {
        "event_action": "trigger", "dedup_key": row.alert_id, "client": "Pulse",
        "payload": {
            "summary": headline(facts)[:1024], "source": "pulse", "severity": PD_SEVERITY.get(row.severity, "warning"),
            "component": row.account_id, "group": row.rule, "class": facts.rule_type,
            # Facts to act on, never personal data: no comment, no respondent.
            "custom_details": {"account_id": row.account_id, "rule": row.rule, "alert_id": row.alert_id,
                               "survey_type": facts.survey_type, "score": facts.score, "category": facts.sentiment,
                               "unacknowledged_for_s": row.escalate_after_s},
        },
    }
    await conn.execute(insert(pagerduty_events).values(dedup_key=row.alert_id, action="trigger", body=body)
                       .on_conflict_do_nothing())


async def resolve_if_paged(conn: AsyncConnection, alert_id: str) -> None:
    """Queue PagerDuty's ``resolve`` for an alert that was escalated there (called when it is acknowledged)."""
    paged = (await conn.execute(select(pagerduty_events.c.id).where(
        pagerduty_events.c.dedup_key == alert_id, pagerduty_events.c.action == "trigger"))).first()
    if paged is not None:
        await conn.execute(insert(pagerduty_events).values(
            dedup_key=alert_id, action="resolve", body={"event_action": "resolve", "dedup_key": alert_id})
            .on_conflict_do_nothing())


class PagerDutySender:
    """Drains the PagerDuty outbox to the Events v2 API (a resolve only after its trigger was accepted)."""

    def __init__(self, engine: AsyncEngine, *, url: str, routing_key: str, timeout: float = 10.0,
                 max_attempts: int = 8, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._url = url
        self._key = routing_key
        self._client = httpx.AsyncClient(timeout=timeout)
        self._max_attempts = max_attempts
        self._clock = clock
        e = pagerduty_events.c
        self._claimer = Claimer(pagerduty_events, pending=e.status == "pending", lease_seconds=60)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def send_due(self) -> int:
        """Send what is due; return how many events PagerDuty accepted."""
        rows = sorted(await self._claimer.claim(self._engine, BATCH), key=lambda r: r.id)
        accepted = 0
        for row in rows:
            if row.action == "resolve" and not await self._trigger_sent(row.dedup_key):
                await self._set(row.id, status="pending", next_attempt_at=self._clock() + timedelta(seconds=5),
                                lease_until=None)
                continue
            accepted += await self._send(row)
        return accepted

    async def _trigger_sent(self, dedup_key: str) -> bool:
        e = pagerduty_events.c
        async with self._engine.connect() as conn:
            return (await conn.execute(select(e.id).where(e.dedup_key == dedup_key, e.action == "trigger",
                                                          e.status == "sent"))).first() is not None

    async def _send(self, row: Any) -> int:
        body = {"routing_key": self._key, **row.body}
        try:
            response = await self._client.post(self._url, json=body)
            status, text = response.status_code, response.text[:300]
        except httpx.HTTPError as exc:
            status, text = 0, f"unreachable: {type(exc).__name__}"
        if status == 202:
            PAGERDUTY.labels(row.action, "accepted").inc()
            await self._set(row.id, status="sent", sent_at=func.now(), lease_until=None, last_error=None)
            return 1
        permanent = status == 400 or row.attempts + 1 >= self._max_attempts
        PAGERDUTY.labels(row.action, "failed" if permanent else "retry").inc()
        wait = min(600.0, 2.0 ** (row.attempts + 1))
        await self._set(row.id, status="failed" if permanent else "pending", attempts=row.attempts + 1,
                        last_error=f"PagerDuty {status}: {text}", lease_until=None,
                        next_attempt_at=self._clock() + timedelta(seconds=wait))
        log.warning("PagerDuty event not accepted", extra={"dedup_key": row.dedup_key, "action": row.action,
                                                           "status": status, "permanent": permanent})
        return 0

    async def _set(self, event_id: int, **values: Any) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(pagerduty_events).where(pagerduty_events.c.id == event_id).values(**values))


async def run_escalations(stop: asyncio.Event, engine: AsyncEngine, sender: PagerDutySender | None, *,
                          interval: float, clock: Callable[[], datetime] = utcnow) -> None:
    """Until ``stop``: escalate what is due and send PagerDuty's events, every ``interval`` seconds."""
    while not stop.is_set():
        try:
            await escalate_due(engine, clock())
            await count_open(engine, clock())
            if sender is not None:
                while await sender.send_due():
                    pass
        except Exception as exc:
            if not is_transient(exc):
                raise  # a bug: crash loudly rather than skip escalations quietly
            log.warning("escalation round failed; retrying", extra={"error": repr(exc)[:300]})
        await sleep_or_stop(stop, interval)

