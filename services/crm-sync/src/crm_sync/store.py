"""crm-sync's write path from the scores and responses topics (inside a TransactionalHandler's transaction).

Each batch updates what crm-sync knows of the accounts it touches (their latest scores, their latest answer,
erasures), then recomputes the properties every connector should hold for them: a connector's row becomes
pending only when those properties changed. Rows are keyed by (connector, account), so a redelivered or older
event changes nothing, and many events for one account between two flushes make one write (coalescing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.domain.properties import LastAnswer, desired_properties, score_properties
from crm_sync.tables import account_state, crm_writes, erased_respondents
from pulse_shared.consumer import Record
from pulse_shared.events import RespondentErased, ResponseSubmitted, ResponseUpdated, ScoreUpdated

CrmInput = ScoreUpdated | ResponseSubmitted | ResponseUpdated | RespondentErased
Answer = ResponseSubmitted | ResponseUpdated


@dataclass(frozen=True)
class StoreOptions:
    """What the write path keeps: comments only when they may be written; the answer property to match by."""

    write_comments: bool = False
    #: ``properties.<name>``: the answer property whose value finds the account's CRM record (e.g. a domain).
    match_from: str | None = None


class WriteStore:
    """Turns events into account state and pending CRM writes, one row per (connector, account)."""

    def __init__(self, connectors: Sequence[str], options: StoreOptions | None = None) -> None:
        self._connectors = tuple(connectors)
        self._options = options or StoreOptions()

    async def apply(self, conn: AsyncConnection, records: Sequence[Record[CrmInput]]) -> dict[str, Any] | None:
        """Apply one batch; return what to log."""
        scores: dict[str, ScoreUpdated] = {}
        answers: dict[str, Answer] = {}
        erasures: list[RespondentErased] = []
        traces: dict[str, str | None] = {}
        for record in records:
            event = record.value
            account = event.account_id
            if isinstance(event, ScoreUpdated):
                if account not in scores or event.version > scores[account].version:
                    scores[account] = event
                    traces[account] = record.traceparent
            elif isinstance(event, RespondentErased):
                erasures.append(event)
            elif account not in answers or _newer(event, answers[account]):
                answers[account] = event
                traces.setdefault(account, record.traceparent)
        if erasures:
            await self._erase(conn, erasures)
        if answers:
            await self._answers(conn, list(answers.values()))
        if scores:
            await self._scores(conn, list(scores.values()))
        touched = set(scores) | set(answers) | {e.account_id for e in erasures}
        if not touched:
            return None
        queued = await self.queue(conn, sorted(touched), traces)
        return {"accounts": len(touched), "queued": queued}

    async def _scores(self, conn: AsyncConnection, events: list[ScoreUpdated]) -> None:
        stmt = insert(account_state).values([
            {"account_id": e.account_id, "scores": score_properties(e), "scores_version": e.version} for e in events])
        stmt = stmt.on_conflict_do_update(
            index_elements=[account_state.c.account_id],
            set_={"scores": stmt.excluded.scores, "scores_version": stmt.excluded.scores_version,
                  "updated_at": func.now()},
            where=account_state.c.scores_version < stmt.excluded.scores_version,
        )
        await conn.execute(stmt)

    async def _answers(self, conn: AsyncConnection, events: list[Answer]) -> None:
        erased = await self._erased(conn, [(e.account_id, e.respondent_id) for e in events if e.respondent_id])
        rows = []
        for e in events:
            keep_comment = self._options.write_comments and (e.account_id, e.respondent_id) not in erased
            rows.append({
                "account_id": e.account_id, "last_response_id": e.response_id, "last_respondent_id": e.respondent_id,
                "last_survey_type": e.survey_type, "last_score": e.score, "last_submitted_at": e.submitted_at,
                "last_revised_at": e.revised_at, "last_comment": e.comment if keep_comment else None,
                "match_value": self._match_value(e),
            })
        stmt = insert(account_state).values(rows)
        current = account_state.c
        new = stmt.excluded
        same = new.last_response_id == current.last_response_id
        stmt = stmt.on_conflict_do_update(
            index_elements=[current.account_id],
            set_={"last_response_id": new.last_response_id, "last_respondent_id": new.last_respondent_id,
                  "last_survey_type": new.last_survey_type, "last_score": new.last_score,
                  # An answer is given once: a revision (or a re-post) of it keeps its first time.
                  "last_submitted_at": case((same, func.least(new.last_submitted_at, current.last_submitted_at)),
                                            else_=new.last_submitted_at),
                  "last_revised_at": new.last_revised_at,
                  "last_comment": new.last_comment,
                  "match_value": func.coalesce(new.match_value, current.match_value), "updated_at": func.now()},
            # The latest answer wins; a newer revision of that same answer replaces it.
            where=or_(current.last_submitted_at.is_(None),
                      and_(~same, new.last_submitted_at > current.last_submitted_at),
                      and_(same, new.last_revised_at > current.last_revised_at)),
        )
        await conn.execute(stmt)

    def _match_value(self, event: Answer) -> str | None:
        source = self._options.match_from
        if not source:
            return None
        value = event.properties.get(source.removeprefix("properties."))
        return value.strip().lower() if isinstance(value, str) and value.strip() else None

    async def _erased(self, conn: AsyncConnection, pairs: list[tuple[str, str | None]]) -> set[tuple[str, str]]:
        if not pairs or not self._options.write_comments:
            return set()
        t = erased_respondents.c
        rows = await conn.execute(select(t.account_id, t.respondent_id).where(
            tuple_(t.account_id, t.respondent_id).in_(pairs)))
        return {(r.account_id, r.respondent_id) for r in rows}

    async def _erase(self, conn: AsyncConnection, events: list[RespondentErased]) -> None:
        pairs = {(e.account_id, e.respondent_id) for e in events}
        tomb = insert(erased_respondents).values([{"account_id": a, "respondent_id": r} for a, r in pairs])
        await conn.execute(tomb.on_conflict_do_nothing())
        s = account_state.c
        await conn.execute(
            update(account_state).where(tuple_(s.account_id, s.last_respondent_id).in_(pairs))
            .values(last_comment=None, last_respondent_id=None, updated_at=func.now())
        )

    async def queue(self, conn: AsyncConnection, accounts: list[str], traces: dict[str, str | None]) -> int:
        """Recompute what each connector should hold for ``accounts``; queue the rows that changed."""
        if not self._connectors:
            return 0
        state = (await conn.execute(select(account_state).where(account_state.c.account_id.in_(accounts)))).all()
        rows = []
        for s in state:
            last = (LastAnswer(s.last_response_id, s.last_survey_type, s.last_score, s.last_submitted_at,
                               s.last_comment) if s.last_response_id else None)
            desired = desired_properties(dict(s.scores), last, write_comments=self._options.write_comments)
            rows += [{"connector": c, "account_id": s.account_id, "version": 1, "properties": desired,
                      "traceparent": traces.get(s.account_id)} for c in self._connectors]
        if not rows:
            return 0
        return await queue_rows(conn, rows)


async def queue_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> int:
    """Upsert the desired properties of (connector, account) rows; a row whose properties changed becomes
    pending (a new version; a row already pending keeps its place). Return how many changed."""
    new = insert(crm_writes).values(rows)
    w = crm_writes.c
    stmt = new.on_conflict_do_update(
        index_elements=[w.connector, w.account_id],
        set_={"version": w.version + 1, "properties": new.excluded.properties,
              "traceparent": new.excluded.traceparent, "status": "pending", "attempts": 0, "last_error": None,
              "reason": None,
              "status_since": case((w.status == "pending", w.status_since), else_=func.now()),
              "next_attempt_at": case((w.status == "pending", w.next_attempt_at), else_=func.now())},
        where=w.properties.is_distinct_from(new.excluded.properties),
    ).returning(w.account_id)
    return len((await conn.execute(stmt)).all())


def _newer(a: Answer, b: Answer) -> bool:
    return (a.submitted_at, a.revised_at) > (b.submitted_at, b.revised_at)
