"""``/v1/responses``: recent answers with their comments, newest first, keyset-paginated."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.events import Category, category_of, sentiments_of
from scoring.api.models import PROBLEMS, ResponseOut, ResponsePage
from scoring.queries import list_responses

router = APIRouter(prefix="/v1", tags=["responses"], responses=PROBLEMS)


def encode_cursor(submitted_at: datetime, account_id: str, response_id: str) -> str:
    """An opaque cursor pointing after one answer."""
    raw = json.dumps([submitted_at.isoformat(), account_id, response_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    """The position a cursor points after; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, account_id, response_id = json.loads(raw)
        moment = datetime.fromisoformat(at)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not valid; pass the next_cursor of a previous page") from exc
    if moment.tzinfo is None or not isinstance(account_id, str) or not isinstance(response_id, str):
        raise ValueError("cursor is not valid; pass the next_cursor of a previous page")
    return moment, account_id, response_id


@router.get("/responses", response_model=ResponsePage, summary="List recent answers with their comments")
async def recent_responses(
    request: Request,
    account_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    category: Annotated[Category | None, Query(
        description="NPS: promoter, passive, detractor; CSAT: satisfied, neutral, dissatisfied; CES: easy, neutral, "
                    "difficult (neutral matches CSAT and CES answers)")] = None,
    survey_type: Annotated[Literal["nps", "csat", "ces"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> ResponsePage:
    """Answers with their comments, newest first; filter by account, category and survey type."""
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"cursor: {exc}") from exc
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as conn:
        rows = await list_responses(conn, account_id=account_id, survey_type=survey_type, after=after,
                                    sentiments=sentiments_of(category) if category else None, limit=limit + 1)
    items = [
        ResponseOut(response_id=r.response_id, account_id=r.account_id, survey_type=r.survey_type, score=r.score,
                    scale_min=r.scale_min, scale_max=r.scale_max, category=category_of(r.survey_type, r.sentiment),
                    comment=r.comment,
                    respondent_id=r.respondent_id, properties=r.properties, submitted_at=r.submitted_at,
                    source=r.source, erased=r.erased)
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last.submitted_at, last.account_id, last.response_id)
    return ResponsePage(items=items, next_cursor=next_cursor)
