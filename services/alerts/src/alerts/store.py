"""Turns events into alert rows (the delivery outbox) and into what alerts knows about accounts.

Runs inside a TransactionalHandler's transaction, so the rows and the consumed offsets commit together:
- answers: the rules they fire, routed to receivers, one row per (rule, response, receiver); a detractor
  without a comment is held (``ALERTS_COMMENT_HOLD_SECONDS``) for the update that brings it; a later revision
  refreshes the row (an already posted message becomes an edit); a revision that no longer fires a rule
  withdraws its pending alert (or edits the posted one to say so);
- score events: the latest summary per account, and significant-drop rules (once per drop);
- owner events: the account's owner (the newest change wins);
- erasures: personal fields leave every stored alert (posted ones are edited) and stay gone on replays.
A committed change wakes the dispatchers of every replica with ``NOTIFY``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, literal, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts.config import AlertsConfig, DropRule
from alerts.domain.grouping import OUT, WAITING, Join, Leader, place
from alerts.domain.message import PERSONAL, AlertFacts, without_personal
from alerts.domain.routing import Receiver, route
from alerts.domain.rules import Answer, Fired, answer_labels, drop_transition, fired_for_answer, in_drop
from alerts.tables import account_owners, accounts, alerts, drop_state, erased_respondents
from pulse_shared.consumer import Record
from pulse_shared.events import (
    AccountOwnerChanged,
    RespondentErased,
    ResponseSubmitted,
    ResponseUpdated,
    ScoreUpdated,
    utcnow,
)

AlertInput = ResponseSubmitted | ResponseUpdated | RespondentErased | AccountOwnerChanged | ScoreUpdated
NOTIFY_CHANNEL = "pulse_alerts_due"
#: Statuses of an alert that is out (in Slack, or in the log): a change of it is an edit.
DELIVERED = ("sent", "update_pending", "logged")
ACCOUNT_NAME_PROPERTIES = ("account_name", "company_name", "company")


def alert_id(rule: str, account_id: str, response_id: str, receiver: str = "owner") -> str:
    """The alert's idempotency key: one alert per rule, response and receiver."""
    base = f"{rule}:{account_id}:{response_id}"
    return base if receiver == "owner" else f"{base}:{receiver}"


def _fatigue_columns(receiver: Receiver) -> dict[str, Any]:
    return {"quiet_hours": receiver.quiet_hours.model_dump() if receiver.quiet_hours else None,
            "cooldown_s": int(receiver.cooldown) if receiver.cooldown else None,
            "group_wait_s": int(receiver.group_wait) if receiver.group_wait else None,
            "group_interval_s": int(receiver.group_interval) if receiver.group_interval else None}


def _upsert_alerts_statement() -> Any:
    values = insert(alerts)
    ex = values.excluded
    # A later revision (typically the comment arriving after the score) refreshes the facts; an alert
    # already in Slack becomes an edit of its message, never a second post; a comment ends the hold.
    return values.on_conflict_do_update(
        index_elements=[alerts.c.alert_id],
        set_={
            "facts": ex.facts,
            "traceparent": ex.traceparent,
            "revised_at": ex.revised_at,
            "severity": ex.severity,
            "status": case(
                (_one_of(alerts.c.status, DELIVERED), "update_pending"),
                (alerts.c.status == "withdrawn", "pending"),
                else_=alerts.c.status,
            ),
            "next_attempt_at": case(
                (_one_of(alerts.c.status, (*DELIVERED, "withdrawn")), func.now()),
                else_=func.least(alerts.c.next_attempt_at, ex.next_attempt_at),
            ),
            "updated_at": func.now(),
        },
        where=and_(alerts.c.facts != ex.facts,
                   or_(alerts.c.revised_at.is_(None), alerts.c.revised_at <= ex.revised_at)),
    ).returning(alerts.c.alert_id, alerts.c.group_leader)


def _bump_leaders_statement() -> Any:
    """A member joined or changed: its leader's message is (re)rendered, as an edit once it is out."""
    status = alerts.c.status
    out = _one_of(status, DELIVERED)
    return (
        update(alerts).where(alerts.c.alert_id.in_(bindparam("leaders", expanding=True)))
        .values(group_version=alerts.c.group_version + 1,
                status=case((out, "update_pending"), (status == "withdrawn", "pending"), else_=status),
                next_attempt_at=case((or_(out, status == "withdrawn"), func.now()), else_=alerts.c.next_attempt_at),
                updated_at=func.now())
        .returning(alerts.c.alert_id)
    )


def _upsert_account_labels_statement() -> Any:
    stmt = insert(accounts)
    return stmt.on_conflict_do_update(
        index_elements=[accounts.c.account_id],
        set_={"labels": stmt.excluded.labels, "labels_at": stmt.excluded.labels_at,
              "name": func.coalesce(stmt.excluded.name, accounts.c.name), "updated_at": func.now()},
        where=or_(accounts.c.labels_at.is_(None), accounts.c.labels_at <= stmt.excluded.labels_at),
    )


def _upsert_account_scores_statement() -> Any:
    stmt = insert(accounts)
    return stmt.on_conflict_do_update(
        index_elements=[accounts.c.account_id],
        set_={"scores": stmt.excluded.scores, "scores_version": stmt.excluded.scores_version,
              "updated_at": func.now()},
        where=accounts.c.scores_version < stmt.excluded.scores_version,
    )


def _one_of(column: Any, values: tuple[str, ...]) -> Any:
    """``column IN (...)`` spelled out, which (unlike an expanding IN) runs in an executemany."""
    return or_(*(column == v for v in values))


UPSERT_ALERTS = _upsert_alerts_statement()
BUMP_LEADERS = _bump_leaders_statement()
KNOWN_ALERTS = select(alerts.c.alert_id, alerts.c.created_at, alerts.c.group_leader).where(
    alerts.c.alert_id.in_(bindparam("ids", expanding=True)))
#: The groups alerts could join: leaders of these (account, rule, receiver), newest first.
GROUP_LEADERS = (
    select(alerts.c.alert_id, alerts.c.account_id, alerts.c.rule, alerts.c.receiver, alerts.c.status,
           alerts.c.delivered_at, alerts.c.group_interval_s)
    .where(tuple_(alerts.c.account_id, alerts.c.rule, alerts.c.receiver).in_(bindparam("keys", expanding=True)),
           alerts.c.group_wait_s.is_not(None), alerts.c.group_leader.is_(None),
           alerts.c.status.in_((WAITING, *OUT)))
    .order_by(alerts.c.created_at.desc(), alerts.c.alert_id.desc())
)
UPSERT_ACCOUNT_LABELS = _upsert_account_labels_statement()
UPSERT_ACCOUNT_SCORES = _upsert_account_scores_statement()
NOTIFY = text("SELECT pg_notify(:channel, '')")
ALERTS_OF_RESPONSES = (
    select(alerts.c.alert_id, alerts.c.rule, alerts.c.account_id, alerts.c.response_id, alerts.c.facts,
           alerts.c.status, alerts.c.revised_at, alerts.c.attempt_at, alerts.c.slack_ts, alerts.c.group_wait_s,
           alerts.c.group_leader)
    .where(tuple_(alerts.c.account_id, alerts.c.response_id).in_(bindparam("keys", expanding=True)),
           alerts.c.status.notin_(("withdrawn", "failed")))
)
ERASED_AMONG = select(erased_respondents.c.account_id, erased_respondents.c.respondent_id).where(
    tuple_(erased_respondents.c.account_id, erased_respondents.c.respondent_id).in_(
        bindparam("pairs", expanding=True)))


class AlertStore:
    """Alerts' write path from the topics."""

    def __init__(self, config: AlertsConfig | None = None, *, hold_seconds: float = 60.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._config = config or AlertsConfig()
        self._clock = clock
        self._hold = timedelta(seconds=hold_seconds)
        self._drop_rules = [r for r in self._config.rules if isinstance(r, DropRule)]
        #: Set when a batch wrote alert rows; the composition root wakes the local dispatcher after commit.
        self.wrote_alerts = False
        self.held = 0

    async def apply(self, conn: AsyncConnection, records: Sequence[Record[AlertInput]]) -> dict[str, Any] | None:
        """Record what ``records`` mean; return what to log when alerts were written."""
        answers: dict[tuple[str, str], Answer] = {}
        owners: dict[str, AccountOwnerChanged] = {}
        scores: list[ScoreUpdated] = []
        written = 0
        self.held = 0
        for record in records:
            event = record.value
            if isinstance(event, AccountOwnerChanged):
                if event.account_id not in owners or owners[event.account_id].occurred_at <= event.occurred_at:
                    owners[event.account_id] = event
            elif isinstance(event, ScoreUpdated):
                scores.append(event)
            elif isinstance(event, RespondentErased):
                # In offset order: answers seen before the erasure are applied first, then erased.
                written += await self._answers(conn, answers, records)
                answers.clear()
                written += await self._erase(conn, event)
            else:
                key = (event.account_id, event.response_id)
                if key not in answers or answers[key].revised_at <= event.revised_at:
                    answers[key] = event
        written += await self._answers(conn, answers, records)
        if owners:
            await self._upsert_owners(conn, list(owners.values()))
        if scores:
            written += await self._scores(conn, scores)
        if written:
            await conn.execute(NOTIFY, {"channel": NOTIFY_CHANNEL})
            self.wrote_alerts = True
        if not written:
            return None
        # Held alerts wait for the comment that usually follows the score (ALERTS_COMMENT_HOLD_SECONDS).
        return {"alerts": written, **({"held_for_comment": self.held} if self.held else {})}

    # --- answers ---------------------------------------------------------------------------------------

    async def _answers(self, conn: AsyncConnection, answers: dict[tuple[str, str], Answer],
                       records: Sequence[Record[AlertInput]]) -> int:
        if not answers:
            return 0
        traces = {(r.value.account_id, r.value.response_id): r.traceparent for r in records
                  if isinstance(r.value, ResponseSubmitted | ResponseUpdated)}
        erased = await self._erased(conn, answers.values())
        await self._remember_accounts(conn, answers.values())
        rows: list[dict[str, Any]] = []
        fired_by_response: dict[tuple[str, str], set[str]] = {}
        for key, answer in answers.items():
            fired = fired_for_answer(self._config.rules, answer)
            fired_by_response[key] = {f.rule for f in fired}
            for hit in fired:
                rows.extend(self._rows(answer, hit, erased=(answer.account_id, answer.respondent_id) in erased,
                                       traceparent=traces.get(key)))
        written = 0
        if rows:
            written += await self._upsert_alerts(conn, rows)
            self.held += sum(1 for r in rows if r["held"])
        written += await self._withdraw(conn, answers, fired_by_response)
        return written

    def _rows(self, answer: Answer, hit: Fired, *, erased: bool, traceparent: str | None) -> list[dict[str, Any]]:
        labels = answer_labels(answer)
        facts = _facts(answer, hit, labels)
        if erased:
            facts = AlertFacts.model_validate(without_personal(facts.model_dump()))
        held = hit.rule_type == "detractor" and not answer.comment and self._hold > timedelta(0)
        due = answer.revised_at + self._hold if held else answer.revised_at
        rows = []
        next_attempt_at = _hold_until(due, held, self._hold, now=self._clock())
        for receiver in route(self._config.routes, rule=hit.rule, severity=hit.severity, labels=labels):
            rows.append({
                "alert_id": alert_id(hit.rule, answer.account_id, answer.response_id, receiver.key),
                "rule": hit.rule, "account_id": answer.account_id, "response_id": answer.response_id,
                "receiver": receiver.key, "fallback_channel": receiver.channel if receiver.kind == "owner" else None,
                "severity": hit.severity, "facts": facts.model_dump(mode="json"), "traceparent": traceparent,
                "revised_at": answer.revised_at, "next_attempt_at": next_attempt_at,
                "escalate_to": receiver.escalate_to, "escalate_after_s": int(receiver.escalate_after),
                **_fatigue_columns(receiver),
                "held": held,
            })
        return rows

    async def _upsert_alerts(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> int:
        # Executed with a list of parameter sets: one statement, built and compiled once, whatever the batch.
        params = [{"status": "pending", "group_leader": None, **{k: v for k, v in row.items() if k != "held"}}
                  for row in rows]
        await self._place_in_groups(conn, [p for p in params if p["group_wait_s"]])
        written = (await conn.execute(UPSERT_ALERTS, params)).all()
        return len(written) + await self._bump(conn, {r.group_leader for r in written if r.group_leader})

    async def _place_in_groups(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """New alerts on grouping routes join an open group of their account and rule, or lead a new one
        (due after ``group_wait``); a revision of a leader keeps its wait, counted from its creation."""
        if not rows:
            return
        now = self._clock()
        known = {r.alert_id: r for r in await conn.execute(KNOWN_ALERTS, {"ids": [p["alert_id"] for p in rows]})}
        keys = sorted({(p["account_id"], p["rule"], p["receiver"]) for p in rows})
        leaders: dict[tuple[str, str, str], list[Leader]] = {}
        for r in await conn.execute(GROUP_LEADERS, {"keys": keys}):
            leaders.setdefault((r.account_id, r.rule, r.receiver), []).append(
                Leader(r.alert_id, r.status, r.delivered_at, timedelta(seconds=r.group_interval_s or 0)))
        for p in rows:
            wait = timedelta(seconds=p["group_wait_s"])
            existing = known.get(p["alert_id"])
            if existing is not None:
                if existing.group_leader is None:
                    p["next_attempt_at"] = max(p["next_attempt_at"], existing.created_at + wait)
                continue
            key = (p["account_id"], p["rule"], p["receiver"])
            placed = place(p["next_attempt_at"], group_wait=wait, leaders=leaders.get(key, []), now=now)
            if isinstance(placed, Join):
                p.update(status="grouped", group_leader=placed.leader_id)
            else:
                p["next_attempt_at"] = placed.due
                # Later alerts of this batch join it.
                leaders[key] = [Leader(p["alert_id"], WAITING, None, timedelta(0)), *leaders.get(key, [])]

    async def _bump(self, conn: AsyncConnection, leaders: set[str]) -> int:
        if not leaders:
            return 0
        return len((await conn.execute(BUMP_LEADERS, {"leaders": sorted(leaders)})).all())

    async def _withdraw(self, conn: AsyncConnection, answers: dict[tuple[str, str], Answer],
                        fired: dict[tuple[str, str], set[str]]) -> int:
        """Alerts of these responses whose rule the newest revision no longer fires."""
        keys = list(answers)
        existing = (await conn.execute(ALERTS_OF_RESPONSES, {"keys": keys})).all()
        count = 0
        leaders: set[str] = set()
        for row in existing:
            key = (row.account_id, row.response_id)
            answer = answers[key]
            if row.rule in fired[key] or row.facts.get("withdrawn") or (
                row.revised_at is not None and row.revised_at > answer.revised_at
            ):
                continue
            facts = {**row.facts, "withdrawn": True, "score": answer.score, "sentiment": answer.sentiment}
            if answer.comment is not None and "comment" in row.facts:
                facts["comment"] = answer.comment
            in_doubt = row.attempt_at is not None and row.slack_ts is None
            # A group's leader not posted yet stays with the dispatcher: its members may still go out.
            leads = row.group_wait_s is not None and row.group_leader is None
            status = "update_pending" if row.status in DELIVERED else (
                # A post in doubt stays with the dispatcher: read back, and edited if it was made.
                "withdrawn" if row.status == "pending" and not in_doubt and not leads else row.status)
            values: dict[str, Any] = {"facts": facts, "status": status, "revised_at": answer.revised_at,
                                      "updated_at": func.now()}
            if not (leads and row.status == "pending"):
                values["next_attempt_at"] = func.now()
            await conn.execute(alerts.update().where(alerts.c.alert_id == row.alert_id).values(**values))
            if row.group_leader:
                leaders.add(row.group_leader)
            count += 1
        return count + await self._bump(conn, leaders)

    async def _erased(self, conn: AsyncConnection, answers: Any) -> set[tuple[str, str | None]]:
        pairs = {(a.account_id, a.respondent_id) for a in answers if a.respondent_id}
        if not pairs:
            return set()
        found = await conn.execute(ERASED_AMONG, {"pairs": list(pairs)})
        return {(r.account_id, r.respondent_id) for r in found}

    async def _remember_accounts(self, conn: AsyncConnection, answers: Any) -> None:
        latest: dict[str, Answer] = {}
        for answer in answers:
            if answer.account_id not in latest or latest[answer.account_id].revised_at < answer.revised_at:
                latest[answer.account_id] = answer
        values = [{"account_id": a.account_id, "name": _account_name(a), "labels": answer_labels(a),
                   "labels_at": a.revised_at} for a in latest.values()]
        await conn.execute(UPSERT_ACCOUNT_LABELS, values)

    # --- scores and drops ---------------------------------------------------------------------------------

    async def _scores(self, conn: AsyncConnection, events: list[ScoreUpdated]) -> int:
        ids = sorted({e.account_id for e in events})
        known = {r.account_id: r for r in (await conn.execute(
            select(accounts.c.account_id, accounts.c.scores_version, accounts.c.labels)
            .where(accounts.c.account_id.in_(ids)))).all()}
        states = {(r.rule, r.account_id): bool(r.active) for r in (await conn.execute(
            select(drop_state).where(drop_state.c.account_id.in_(ids)))).all()}
        versions = {a: int(r.scores_version) for a, r in known.items()}
        newest: dict[str, ScoreUpdated] = {}
        rows: list[dict[str, Any]] = []
        changed_states: dict[tuple[str, str], tuple[bool, int]] = {}
        for event in sorted(events, key=lambda e: e.version):
            if event.version <= versions.get(event.account_id, 0):
                continue  # a redelivery or an older event
            versions[event.account_id] = event.version
            newest[event.account_id] = event
            labels = dict(known[event.account_id].labels) if event.account_id in known else {}
            for rule in self._drop_rules:
                summary = in_drop(rule, event.scores)
                was = states.get((rule.name, event.account_id), False)
                fire, active = drop_transition(was, summary is not None and _labels_ok(rule, labels))
                if active != was or fire:
                    states[(rule.name, event.account_id)] = active
                    changed_states[(rule.name, event.account_id)] = (active, event.version)
                if fire and summary is not None:
                    rows.extend(self._drop_rows(rule, event, summary, labels))
        if newest:
            await conn.execute(UPSERT_ACCOUNT_SCORES, [
                {"account_id": account_id, "scores": [s.model_dump(mode="json") for s in event.scores],
                 "scores_version": event.version} for account_id, event in newest.items()])
        if changed_states:
            stmt = insert(drop_state).values([
                {"rule": rule, "account_id": account, "active": active, "since_version": version}
                for (rule, account), (active, version) in changed_states.items()])
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[drop_state.c.rule, drop_state.c.account_id],
                set_={"active": stmt.excluded.active, "since_version": stmt.excluded.since_version,
                      "updated_at": func.now()},
            ))
        return await self._upsert_alerts(conn, rows) if rows else 0

    def _drop_rows(self, rule: DropRule, event: ScoreUpdated, summary: Any, labels: dict[str, str]
                   ) -> list[dict[str, Any]]:
        response_id = f"drop-v{event.version}"
        facts = AlertFacts(kind="drop", rule=rule.name, rule_type=rule.type, severity=rule.severity,
                           account_id=event.account_id, response_id=response_id, labels=labels, drop=summary,
                           source="scoring")
        return [{
            "alert_id": alert_id(rule.name, event.account_id, response_id, receiver.key), "rule": rule.name,
            "account_id": event.account_id, "response_id": response_id, "receiver": receiver.key,
            "fallback_channel": receiver.channel if receiver.kind == "owner" else None,
            "severity": rule.severity, "facts": facts.model_dump(mode="json"), "traceparent": None,
            "revised_at": event.computed_at, "next_attempt_at": self._clock(),
            "escalate_to": receiver.escalate_to, "escalate_after_s": int(receiver.escalate_after),
            **_fatigue_columns(receiver),
        } for receiver in route(self._config.routes, rule=rule.name, severity=rule.severity, labels=labels)]

    # --- owners and erasure -----------------------------------------------------------------------------------

    async def _upsert_owners(self, conn: AsyncConnection, owners: list[AccountOwnerChanged]) -> None:
        await upsert_owner_rows(conn, [
            {"account_id": o.account_id, "owner_email": o.owner_email, "owner_name": o.owner_name, "crm": o.crm,
             "changed_at": o.occurred_at} for o in owners])

    async def _erase(self, conn: AsyncConnection, erasure: RespondentErased) -> int:
        await conn.execute(
            insert(erased_respondents).values(account_id=erasure.account_id, respondent_id=erasure.respondent_id)
            .on_conflict_do_nothing()
        )
        # The same shape as facts built for an erased respondent (personal fields null), so a replayed
        # answer compares equal and changes nothing.
        erased = {**dict.fromkeys(PERSONAL), "erased": True}
        cleared = alerts.c.facts.op("||")(literal(erased, type_=alerts.c.facts.type))
        done = await conn.execute(
            alerts.update()
            .where(alerts.c.account_id == erasure.account_id,
                   alerts.c.facts["respondent_id"].astext == erasure.respondent_id)
            .values(
                facts=cleared,
                # A posted message is edited so the comment and the respondent leave Slack too.
                status=case((alerts.c.status.in_(DELIVERED), "update_pending"), else_=alerts.c.status),
                next_attempt_at=case((alerts.c.status.in_(DELIVERED), func.now()), else_=alerts.c.next_attempt_at),
                updated_at=func.now(),
            )
            .returning(alerts.c.alert_id, alerts.c.group_leader)
        )
        erased_rows = done.all()
        return len(erased_rows) + await self._bump(conn, {r.group_leader for r in erased_rows if r.group_leader})


async def upsert_owner_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Record account owners; the newest change of each account wins."""
    stmt = insert(account_owners).values(rows)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=[account_owners.c.account_id],
        set_={"owner_email": stmt.excluded.owner_email, "owner_name": stmt.excluded.owner_name,
              "crm": stmt.excluded.crm, "changed_at": stmt.excluded.changed_at, "updated_at": func.now()},
        where=or_(account_owners.c.changed_at.is_(None), account_owners.c.changed_at <= stmt.excluded.changed_at),
    ))


def _labels_ok(rule: DropRule, labels: dict[str, str]) -> bool:
    return all(labels.get(k, "").casefold() == v.casefold() for k, v in rule.labels.items())


def _hold_until(due: datetime, held: bool, hold: timedelta, *, now: datetime) -> datetime:
    """When a held alert is due: the hold counted from the answer's revision time, but never in the past
    (a late or replayed answer still gets its chance to be completed) nor longer than the hold from now
    (a client clock running ahead cannot delay it)."""
    if not held:
        return now
    return min(max(due, now), now + hold)


def _account_name(answer: Answer) -> str | None:
    for key in ACCOUNT_NAME_PROPERTIES:
        value = answer.properties.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:255]
    return None


def _facts(answer: Answer, hit: Fired, labels: dict[str, str]) -> AlertFacts:
    return AlertFacts(
        kind="answer", rule=hit.rule, rule_type=hit.rule_type, severity=hit.severity,
        account_id=answer.account_id, account_name=_account_name(answer), response_id=answer.response_id,
        survey_type=answer.survey_type, score=answer.score, scale_min=answer.scale_min, scale_max=answer.scale_max,
        sentiment=answer.sentiment, comment=answer.comment, respondent_id=answer.respondent_id,
        respondent_email=answer.respondent_email, source=answer.source, labels=labels, keywords=hit.keywords,
    )
