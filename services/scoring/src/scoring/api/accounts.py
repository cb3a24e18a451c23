"""``/v1/accounts/{account_id}/scores``: an account's current scores with n and intervals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.events import ScoreSummary, utcnow
from scoring.domain.windows import rolling
from scoring.queries import account_exists, account_metrics, summary

router = APIRouter(prefix="/v1", tags=["scores"])


class AccountScores(BaseModel):
    """Scores of one account over one window."""

    account_id: str
    window: str
    start: str
    end: str
    scores: dict[str, ScoreSummary]


@router.get("/accounts/{account_id}/scores", response_model=AccountScores,
            responses={404: {"description": "No answer of this account was ever counted."}})
async def account_scores(
    request: Request,
    account_id: Annotated[str, Path(min_length=1, max_length=255)],
    window: Annotated[str, Query(pattern=r"^(7|30|90|365)d$", description="Rolling window: 7d, 30d, 90d, 365d")]
    = "30d",
) -> AccountScores:
    """NPS, CSAT and CES of the account with sample sizes and 95 % intervals."""
    engine: AsyncEngine = request.app.state.engine
    span = rolling(window, utcnow().date())
    async with engine.connect() as conn:
        if not await account_exists(conn, account_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no answers for account {account_id!r}")
        metrics = await account_metrics(conn, account_id, span)
    return AccountScores(
        account_id=account_id, window=window, start=span.start.isoformat(), end=span.end.isoformat(),
        scores={name: summary(m, window) for name, m in metrics.items()},
    )
