"""Turns response and owner events into alert rows (the delivery outbox) and account-owner rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts.domain.message import AlertFacts
from alerts.domain.rules import triggered_rules
from alerts.tables import account_owners, alerts
from pulse_shared.consumer import Record
from pulse_shared.events import AccountOwnerChanged, RespondentErased, ResponseSubmitted, ResponseUpdated

AlertInput = ResponseSubmitted | ResponseUpdated | RespondentErased | AccountOwnerChanged


def alert_id(rule: str, account_id: str, response_id: str) -> str:
    """The alert's idempotency key: one alert per rule and response."""
    return f"{rule}:{account_id}:{response_id}"


class AlertStore:
    """Alerts' write path from the topics (run inside a TransactionalHandler's transaction)."""

    async def apply(self, conn: AsyncConnection, records: Sequence[Record[AlertInput]]) -> dict[str, Any] | None:
        """Record alerts and owners for ``records``; return what to log when alerts were written."""
        rows: dict[str, dict[str, Any]] = {}
        owners: dict[str, AccountOwnerChanged] = {}
        erasures: list[RespondentErased] = []
        for record in records:
            event = record.value
            if isinstance(event, AccountOwnerChanged):
                owners[event.account_id] = event
            elif isinstance(event, RespondentErased):
                erasures.append(event)
            else:
                for rule in triggered_rules(event):
                    key = alert_id(rule, event.account_id, event.response_id)
                    rows[key] = {
                        "alert_id": key, "rule": rule, "account_id": event.account_id,
                        "response_id": event.response_id, "facts": _facts(event).model_dump(mode="json"),
                        "traceparent": record.traceparent,
                    }
        if rows:
            await self._upsert_alerts(conn, list(rows.values()))
        if owners:
            await self._upsert_owners(conn, list(owners.values()))
        for erasure in erasures:
            await self._erase(conn, erasure)
        return {"alerts": len(rows)} if rows else None

    async def _upsert_alerts(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        stmt = insert(alerts).values(rows)
        # A later revision (typically the comment arriving after the score) refreshes the facts; an alert
        # already in Slack is then edited in place rather than posted twice.
        stmt = stmt.on_conflict_do_update(
            index_elements=[alerts.c.alert_id],
            set_={
                "facts": stmt.excluded.facts,
                "traceparent": stmt.excluded.traceparent,
                "status": case(
                    (alerts.c.status.in_(("sent", "update_pending")), "update_pending"), else_=alerts.c.status
                ),
                "next_attempt_at": func.now(),
            },
            where=alerts.c.facts != stmt.excluded.facts,
        )
        await conn.execute(stmt)

    async def _upsert_owners(self, conn: AsyncConnection, owners: list[AccountOwnerChanged]) -> None:
        stmt = insert(account_owners).values(
            [{"account_id": o.account_id, "owner_email": o.owner_email, "owner_name": o.owner_name, "crm": o.crm}
             for o in owners]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[account_owners.c.account_id],
            set_={
                "owner_email": stmt.excluded.owner_email, "owner_name": stmt.excluded.owner_name,
                "crm": stmt.excluded.crm, "updated_at": func.now(),
                # A new owner needs a new Slack lookup.
                "slack_user_id": case(
                    (account_owners.c.owner_email == stmt.excluded.owner_email, account_owners.c.slack_user_id),
                    else_=None,
                ),
                "slack_lookup_at": case(
                    (account_owners.c.owner_email == stmt.excluded.owner_email, account_owners.c.slack_lookup_at),
                    else_=None,
                ),
            },
        )
        await conn.execute(stmt)

    async def _erase(self, conn: AsyncConnection, erasure: RespondentErased) -> None:
        personal = ("comment", "respondent_id", "respondent_email")
        cleared = alerts.c.facts
        for field in personal:
            cleared = cleared.op("-")(field)  # type: ignore[assignment]
        await conn.execute(
            alerts.update()
            .where(alerts.c.account_id == erasure.account_id,
                   alerts.c.facts["respondent_id"].astext == erasure.respondent_id)
            .values(facts=cleared)
        )


def _facts(answer: ResponseSubmitted | ResponseUpdated) -> AlertFacts:
    return AlertFacts(
        account_id=answer.account_id, response_id=answer.response_id, survey_type=answer.survey_type,
        score=answer.score, scale_min=answer.scale_min, scale_max=answer.scale_max, sentiment=answer.sentiment,
        comment=answer.comment, respondent_id=answer.respondent_id, respondent_email=answer.respondent_email,
        source=answer.source,
    )
