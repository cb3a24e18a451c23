"""Applies response events to PostgreSQL: the answers' winning revisions, the count changes, erasures,
and the account's version (the score-event outbox). It runs inside a TransactionalHandler's transaction,
which fences re-application by offset and stores the next offset with these effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from pydantic_core import to_json
from sqlalchemy import tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pulse_shared.consumer import Record
from pulse_shared.db import is_transient as db_transient
from pulse_shared.events import RespondentErased, ResponseSubmitted, ResponseUpdated
from scoring import sql
from scoring.domain.answers import (
    Answer,
    BucketKey,
    Placement,
    Revision,
    day_of,
    latest_per_response,
    placement,
)
from scoring.tables import erased_respondents, responses

ResponseEvent = ResponseSubmitted | ResponseUpdated | RespondentErased



class ResponseStore:
    """Scoring's write path (run inside the transaction of a TransactionalHandler, with the offset)."""

    def __init__(self, segment_properties: Sequence[str]) -> None:
        self._segments = tuple(segment_properties)

    async def apply(self, conn: AsyncConnection, records: Sequence[Record[ResponseEvent]]) -> dict[str, Any]:
        """Apply records not applied before; return what changed (for the log)."""
        fresh = [r.value for r in records]
        traces = {r.value.account_id: r.traceparent for r in records}
        erasures = [e for e in fresh if isinstance(e, RespondentErased)]
        answers = [e for e in fresh if not isinstance(e, RespondentErased)]
        changed: set[str] = set()
        outcome = {"new": 0, "revised": 0, "unchanged": 0}
        if erasures:
            await self._erase(conn, erasures)
        if answers:
            accounts, outcome = await self._upsert_answers(conn, answers)
            changed |= accounts
        if changed:
            await self._bump_versions(conn, changed, traces)
        # "unchanged": answers already stored as they are (a duplicate, a redelivery) or older revisions.
        return {"applied": len(fresh), **{k: v for k, v in outcome.items() if v}, **(
            {"erasures": len(erasures)} if erasures else {}), "accounts": sorted(changed)[:20]}

    async def _erase(self, conn: AsyncConnection, erasures: Sequence[RespondentErased]) -> None:
        keys = {(e.account_id, e.respondent_id) for e in erasures}
        await conn.execute(
            insert(erased_respondents)
            .values([{"account_id": a, "respondent_id": r} for a, r in sorted(keys)])
            .on_conflict_do_nothing()
        )
        await conn.execute(
            update(responses)
            .where(tuple_(responses.c.account_id, responses.c.respondent_id).in_(list(keys)))
            .values(comment=None, respondent_id=None, respondent_email=None, erased=True)
        )

    async def _upsert_answers(self, conn: AsyncConnection, answers: Sequence[Answer]
                              ) -> tuple[set[str], dict[str, int]]:
        latest = latest_per_response(answers)
        keys = list(latest)
        rows = (
            await conn.execute(sql.SELECT_EXISTING, {"accounts": [k[0] for k in keys], "ids": [k[1] for k in keys]})
        ).all()
        existing = {(r.account_id, r.response_id): r for r in rows}
        respondents = {(a.account_id, a.respondent_id) for a, _ in latest.values() if a.respondent_id}
        erased: set[tuple[str, str]] = set()
        if respondents:
            pairs = sorted(respondents)
            found = await conn.execute(
                sql.SELECT_ERASED, {"accounts": [a for a, _ in pairs], "respondents": [r for _, r in pairs]}
            )
            erased = {(r.account_id, r.respondent_id) for r in found}
        changes: list[tuple[Placement | None, Placement]] = []
        inserts: list[ResponseRow] = []  # answers not stored yet
        updates: list[ResponseRow] = []  # newer revisions of stored answers
        time_moves: list[dict[str, Any]] = []
        for key, (answer, revision) in latest.items():
            old = existing.get(key)
            if old is not None:
                # An answer is given once: its time is the earliest of all revisions (order-independent).
                first_given = min(old.submitted_at, answer.submitted_at)
                old_place = _stored_placement(old)
                newer = old.content_hash != revision.content_hash and revision.supersedes(
                    Revision(old.revised_at, old.content_hash))
                if not newer:
                    if first_given < old.submitted_at:
                        moved = old_place._replace(day=day_of(first_given))
                        changes.append((old_place, moved))
                        time_moves.append({"a": old.account_id, "r": old.response_id, "sub": first_given,
                                           "day": moved.day})
                    continue
                answer = answer.model_copy(update={"submitted_at": first_given})  # noqa: PLW2901
            new_place = placement(answer, self._segments)
            changes.append((_stored_placement(old) if old is not None else None, new_place))
            is_erased = (answer.account_id, answer.respondent_id or "") in erased
            (updates if old is not None else inserts).append(_row(answer, revision, new_place, erased=is_erased))
        if time_moves:
            await conn.execute(sql.MOVE_SUBMITTED_AT, {
                "accounts": [m["a"] for m in time_moves], "ids": [m["r"] for m in time_moves],
                "submitted_at": [m["sub"] for m in time_moves], "day": [m["day"] for m in time_moves],
            })
        if inserts:
            await _insert_new(conn, inserts)
        if updates:
            revised = [dict(zip(sql.RESPONSE_COLUMNS, row, strict=True)) for row in updates]
            await conn.execute(sql.UPSERT_RESPONSES, {"rows": to_json(revised).decode()})
        await _apply_count_changes(conn, changes)
        accounts = {row[0] for row in inserts} | {row[0] for row in updates} | {m["a"] for m in time_moves}
        return accounts, {"new": len(inserts), "revised": len(updates) + len(time_moves),
                          "unchanged": len(answers) - len(inserts) - len(updates) - len(time_moves)}

    async def _bump_versions(self, conn: AsyncConnection, accounts: set[str], traces: dict[str, str | None]) -> None:
        ordered = sorted(accounts)
        await conn.execute(sql.BUMP_VERSIONS, {"accounts": ordered, "traceparents": [traces.get(a) for a in ordered]})


async def _apply_count_changes(conn: AsyncConnection, changes: Sequence[tuple[Placement | None, Placement]]) -> None:
    """Move the counts: each old placement loses the answer, each new one gains it, netted per bucket here
    (a bucket may appear only once in the statement, see :data:`sql.APPLY_COUNT_CHANGES`)."""
    net: dict[BucketKey, int] = {}
    for old, new in changes:
        if old is not None:
            gone = old.bucket()
            net[gone] = net.get(gone, 0) - 1
        key = new.bucket()
        net[key] = net.get(key, 0) + 1
    rows = [(*key[:6], dict(key[6]), n) for key, n in net.items() if n]
    if rows:
        await conn.execute(sql.APPLY_COUNT_CHANGES, {"changes": to_json(rows).decode()})


def _stored_placement(row: Any) -> Placement:
    return Placement(
        account_id=row.account_id,
        survey_type=row.survey_type,
        scale_min=row.scale_min,
        scale_max=row.scale_max,
        score=row.score,
        day=row.day,
        segments=tuple((seg, val) for seg, val in row.segments),
    )


async def _insert_new(conn: AsyncConnection, rows: Sequence[ResponseRow]) -> None:
    """Store answers not stored before with COPY (binary): a third of an upsert's cost per row.

    Nothing else writes these rows meanwhile: an account's answers are written only under its partition's
    offset lock (see TransactionalHandler). Should the same answer still be inserted concurrently (an
    account read from two partitions after the topic was re-partitioned), the key conflict fails the
    transaction and :class:`ConcurrentAnswer` asks for a retry, which finds the row stored and updates it.
    """
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    records = [(*row[:PROPERTIES], to_json(row[PROPERTIES]).decode(), to_json(row[SEGMENTS]).decode(),
                *row[SEGMENTS + 1 :]) for row in rows]
    try:
        await raw.copy_records_to_table(responses.name, schema_name=responses.schema, records=records,
                                        columns=sql.RESPONSE_COLUMNS)
    except asyncpg.UniqueViolationError as exc:
        raise ConcurrentAnswer(str(exc)) from exc


class ConcurrentAnswer(Exception):
    """An answer was stored by another transaction while this one inserted it: retry the batch."""


def is_transient(exc: BaseException) -> bool:
    """The consumer's retry rule: the shared one, plus an answer inserted concurrently."""
    return isinstance(exc, ConcurrentAnswer) or db_transient(exc)


#: One ``scoring.responses`` row, its values in the order of :data:`sql.RESPONSE_COLUMNS`.
ResponseRow = tuple[Any, ...]
PROPERTIES = sql.RESPONSE_COLUMNS.index("properties")
SEGMENTS = sql.RESPONSE_COLUMNS.index("segments")


def _row(answer: Answer, revision: Revision, place: Placement, *, erased: bool) -> ResponseRow:
    return (
        answer.account_id,
        answer.response_id,
        answer.survey_type,
        answer.score,
        answer.scale_min,
        answer.scale_max,
        answer.sentiment,
        None if erased else answer.comment,
        None if erased else answer.respondent_id,
        None if erased else answer.respondent_email,
        answer.properties,
        place.segments,
        answer.submitted_at,
        place.day,
        revision.revised_at,
        revision.content_hash,
        answer.source,
        answer.survey_id,
        erased,
    )
