"""Delivers pending alerts to Slack: a DM to the account's owner, else the default channel.

Alerts are rows (the outbox). Each is posted at most once per delivery attempt and its Slack ``ts`` is
recorded, so a later revision edits the message instead of posting a second one. Permanent Slack errors
fail the alert at once (and count it); rate limits wait for Retry-After; other failures back off and give up
after a bounded number of attempts. Without a Slack token the alert is written to the log, clearly
labelled, so the platform still does its whole job on a laptop.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Counter
from sqlalchemy import func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.domain.message import AlertFacts, render
from alerts.slack import SlackClient, SlackResult
from alerts.tables import account_owners, alerts
from pulse_shared.outbox import claim_due
from pulse_shared.tracing import traced

log = logging.getLogger(__name__)

ALERTS = Counter("pulse_alerts_total", "Alerts by rule and delivery outcome.", ["rule", "outcome"])
PENDING = ("pending", "update_pending")


class AlertDispatcher:
    """Drains the alerts outbox."""

    def __init__(
        self,
        engine: AsyncEngine,
        slack: SlackClient | None,
        *,
        default_channel: str | None,
        max_attempts: int,
        batch_size: int = 20,
        retry_base_seconds: float = 2.0,
    ) -> None:
        self._engine = engine
        self._slack = slack
        self._default_channel = default_channel
        self._max_attempts = max_attempts
        self._batch_size = batch_size
        self._retry_base = retry_base_seconds

    async def deliver_due(self) -> bool:
        """Deliver the alerts that are due; return whether there were any."""
        rows = await claim_due(self._engine, alerts, pending=alerts.c.status.in_(PENDING), limit=self._batch_size)
        for row in rows:
            await self._deliver(row)
        return bool(rows)

    async def _deliver(self, row: Any) -> None:
        # The Slack post continues the trace of the answer that raised the alert.
        with traced("alerts.deliver", row.traceparent, alert_id=row.alert_id):
            await self._deliver_traced(row)

    async def _deliver_traced(self, row: Any) -> None:
        facts = AlertFacts.model_validate(row.facts)
        if self._slack is None:
            text, _blocks = render(facts, owner_mention=None)
            log.warning(
                "ALERT (Slack not configured: set SLACK_BOT_TOKEN to post it)",
                extra={"alert_id": row.alert_id, "alert": text, "comment": facts.comment},
            )
            await self._finish(row, status="logged", outcome="logged")
            return
        if row.status == "update_pending" and row.slack_ts and row.channel:
            text, blocks = render(facts, owner_mention=None)
            result = await self._slack.update_message(row.channel, row.slack_ts, text, blocks)
            await self._record(row, result, channel=row.channel)
            return
        channel, mention = await self._target(facts.account_id)
        if channel is None:
            await self._finish(row, status="failed", outcome="no_target",
                               error="the account's owner is not on Slack and SLACK_DEFAULT_CHANNEL is not set")
            return
        text, blocks = render(facts, owner_mention=mention)
        result = await self._slack.post_message(channel, text, blocks)
        await self._record(row, result, channel=channel)

    async def _target(self, account_id: str) -> tuple[str | None, str | None]:
        """Where to send: the owner's Slack user (DM) if known, else the default channel."""
        assert self._slack is not None
        async with self._engine.connect() as conn:
            owner = (
                await conn.execute(select(account_owners).where(account_owners.c.account_id == account_id))
            ).first()
        if owner is None or not owner.owner_email:
            return self._default_channel, None
        if owner.slack_user_id:
            return owner.slack_user_id, f"<@{owner.slack_user_id}>"
        if owner.slack_lookup_at is None:
            found = await self._slack.lookup_user_id(owner.owner_email)
            user_id = (found.data or {}).get("user", {}).get("id") if found.ok else None
            if found.ok or found.permanent:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        update(account_owners)
                        .where(account_owners.c.account_id == account_id)
                        .values(slack_user_id=user_id, slack_lookup_at=func.now())
                    )
            if user_id:
                return str(user_id), f"<@{user_id}>"
        return self._default_channel, None

    async def _record(self, row: Any, result: SlackResult, *, channel: str) -> None:
        if result.ok:
            await self._finish(row, status="sent", outcome="sent", channel=result.channel or channel,
                               ts=result.ts or row.slack_ts)
            log.info("alert posted to Slack", extra={"alert_id": row.alert_id, "channel": result.channel or channel})
        elif result.retry_after is not None:
            ALERTS.labels(row.rule, "rate_limited").inc()
            await self._retry(row, delay=result.retry_after, count_attempt=False, error="ratelimited")
        elif result.permanent:
            await self._finish(row, status="failed", outcome="failed", error=result.error)
            log.error("alert failed permanently", extra={"alert_id": row.alert_id, "error": result.error})
        elif row.attempts + 1 >= self._max_attempts:
            await self._finish(row, status="failed", outcome="gave_up", error=result.error)
            log.error("alert given up after transient failures", extra={"alert_id": row.alert_id,
                                                                        "error": result.error})
        else:
            ALERTS.labels(row.rule, "retried").inc()
            await self._retry(row, delay=min(300.0, self._retry_base * 2.0**row.attempts), count_attempt=True,
                              error=result.error)

    async def _finish(self, row: Any, *, status: str, outcome: str, error: str | None = None,
                      channel: str | None = None, ts: str | None = None) -> None:
        ALERTS.labels(row.rule, outcome).inc()
        values: dict[str, Any] = {"status": status, "lease_until": None, "last_error": error}
        if channel is not None:
            values["channel"] = channel
        if ts is not None:
            values["slack_ts"] = ts
        if status in {"sent", "logged"}:
            values["delivered_at"] = func.now()
        async with self._engine.begin() as conn:
            # Only if no newer revision arrived meanwhile; if one did, the alert stays queued and, when this
            # attempt posted a message, it becomes an edit of that message rather than a second post.
            await conn.execute(
                update(alerts)
                .where(alerts.c.alert_id == row.alert_id, alerts.c.facts == row.facts)
                .values(**values)
            )
            requeued: dict[str, Any] = {"lease_until": None}
            if ts is not None:
                requeued.update(status="update_pending", slack_ts=ts, channel=channel)
            await conn.execute(
                update(alerts)
                .where(alerts.c.alert_id == row.alert_id, alerts.c.facts != row.facts)
                .values(**requeued)
            )

    async def _retry(self, row: Any, *, delay: float, count_attempt: bool, error: str | None) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(alerts)
                .where(alerts.c.alert_id == row.alert_id)
                .values(
                    attempts=alerts.c.attempts + (1 if count_attempt else 0),
                    next_attempt_at=func.now() + literal_column(f"interval '{float(delay)} seconds'"),
                    lease_until=None,
                    last_error=error,
                )
            )
