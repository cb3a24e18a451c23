"""``POST /v1/slack/interactions``: the buttons on an alert (Acknowledge, Assign to me, Snooze 24 h).

Slack signs the request (``SLACK_SIGNING_SECRET``); the signature is checked over the raw body before anything
is parsed, and an unsigned, mis-signed or stale request gets 401 and changes nothing. A click is applied in one
transaction: its key (Slack's ``action_ts``, the action, the user, the message) is recorded, the alert's
handling changes, and the alert becomes an edit of its message (the outbox the dispatcher drains), so the
answer goes back to Slack well inside its 3 seconds and the message update follows, durably. A redelivered
click finds its key and changes nothing.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from prometheus_client import Counter, Histogram
from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.domain.handling import ACTION_IDS, Handling, apply, check_signature
from alerts.escalation import ESCALATED, resolve_if_paged
from alerts.store import NOTIFY, NOTIFY_CHANNEL
from alerts.tables import alerts, slack_interactions
from alerts.wakeup import Wakeup
from pulse_shared.events import utcnow

log = logging.getLogger(__name__)

INTERACTIONS = Counter("pulse_alerts_interactions_total", "Clicks on alert buttons by action and result.",
                       ["action", "result"])
TIME_TO_ACK = Histogram("pulse_alerts_time_to_ack_seconds", "From an alert's post to its acknowledgement.",
                        buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200))
MAX_BODY = 64 * 1024


def router(engine: AsyncEngine, wakeup: Wakeup) -> APIRouter:
    """The interactions route (signed by Slack, so not behind the admin token)."""
    api = APIRouter(prefix="/v1/slack", tags=["slack"])

    @api.post("/interactions", summary="Receive a click on an alert's buttons (signed by Slack)", status_code=200,
              responses={401: {"description": "Not signed by Slack with SLACK_SIGNING_SECRET, or older than 5 "
                                              "minutes: nothing changed."},
                         503: {"description": "Interactivity is off (SLACK_SIGNING_SECRET is not set)."}})
    async def interactions(request: Request) -> Response:
        """Slack's interactivity request URL: a CSM's click on Acknowledge, Snooze or Assign, verified with
        ``SLACK_SIGNING_SECRET`` (``X-Slack-Signature``, five-minute replay window), recorded once and shown on the
        message."""
        secret = request.app.state.settings.slack_signing_secret
        if secret is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                detail="interactivity is off: set SLACK_SIGNING_SECRET")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, detail="an interaction is at most 64 KB")
        refused = check_signature(secret.get_secret_value(), request.headers.get("x-slack-request-timestamp"),
                                  request.headers.get("x-slack-signature"), body, time.time())
        if refused is not None:
            INTERACTIONS.labels("unknown", "refused").inc()
            log.warning("Slack interaction refused", extra={"reason": refused})
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=refused)
        payload = _payload(body)
        changed = 0
        for click in _clicks(payload):
            changed += await _apply(engine, click)
        if changed:
            wakeup.notify()
        return Response(status_code=200)

    return api


def _payload(body: bytes) -> dict[str, Any]:
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    try:
        payload = json.loads(form.get("payload", [""])[0])
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the body has no JSON payload field") from exc
    if not isinstance(payload, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the payload is not a JSON object")
    return payload


def _clicks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The alert buttons pressed in a ``block_actions`` payload (other payloads and actions are ignored)."""
    if payload.get("type") != "block_actions":
        return []
    user = payload.get("user") or {}
    container = payload.get("container") or {}
    clicks = []
    for action in payload.get("actions") or []:
        if not isinstance(action, dict) or action.get("action_id") not in ACTION_IDS or not action.get("value"):
            continue
        clicks.append({
            "action": ACTION_IDS[action["action_id"]], "alert_id": str(action["value"]),
            "user_id": str(user.get("id") or ""), "user_name": user.get("name") or user.get("username"),
            "key": ":".join(str(x) for x in (action.get("action_ts"), action["action_id"], user.get("id"),
                                             container.get("channel_id"), container.get("message_ts"))),
        })
    return [c for c in clicks if c["user_id"]]


async def _apply(engine: AsyncEngine, click: dict[str, Any]) -> int:
    now = utcnow()
    async with engine.begin() as conn:
        fresh = (await conn.execute(insert(slack_interactions).values(
            key=click["key"][:500], alert_id=click["alert_id"], action=click["action"], user_id=click["user_id"])
            .on_conflict_do_nothing().returning(slack_interactions.c.key))).first()
        if fresh is None:
            INTERACTIONS.labels(click["action"], "repeat").inc()
            return 0  # a redelivery: this click was applied already
        # A click on an escalation's copy (in the team channel) handles the alert itself; both messages show it.
        original = click["alert_id"].removesuffix(ESCALATED)
        row = (await conn.execute(select(alerts.c.handling, alerts.c.status, alerts.c.delivered_at)
                                  .where(alerts.c.alert_id == original).with_for_update())).first()
        if row is None:
            INTERACTIONS.labels(click["action"], "unknown_alert").inc()
            log.warning("click on an unknown alert", extra={"alert_id": click["alert_id"]})
            return 0
        after = apply(Handling.model_validate(row.handling or {}), click["action"], click["user_id"],
                      click["user_name"], now)
        if after is None:
            INTERACTIONS.labels(click["action"], "no_change").inc()
            return 0
        out = alerts.c.status.in_(("sent", "update_pending"))
        await conn.execute(update(alerts).where(alerts.c.alert_id.in_((original, f"{original}{ESCALATED}"))).values(
            handling=after.model_dump(mode="json"), handling_version=alerts.c.handling_version + 1,
            status=case((out, "update_pending"), else_=alerts.c.status),
            next_attempt_at=func.now(), updated_at=func.now()))
        if click["action"] == "ack":
            await resolve_if_paged(conn, original)
        await conn.execute(NOTIFY, {"channel": NOTIFY_CHANNEL})
    INTERACTIONS.labels(click["action"], "applied").inc()
    if click["action"] == "ack" and row.delivered_at is not None:
        TIME_TO_ACK.observe(max(0.0, (now - row.delivered_at).total_seconds()))
    log.info("alert handled in Slack", extra={"alert_id": click["alert_id"], "action": click["action"],
                                              "user": click["user_id"]})
    return 1
