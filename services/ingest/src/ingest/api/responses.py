"""``/v1/responses``: accept one answer, answer 202 only once the broker has it."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from pydantic import BaseModel

from ingest.domain.submission import ResponseIn, ScoreOutOfScale, to_event
from ingest.publisher import ResponsePublisher
from pulse_shared.events import utcnow
from pulse_shared.producer import PublishFailed
from pulse_shared.tracing import continue_trace

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["responses"])


class Accepted(BaseModel):
    """The answer is durably on the responses topic."""

    response_id: str
    status: str = "accepted"


class Problem(BaseModel):
    """Why a request was refused."""

    detail: str


@router.post(
    "/responses",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={
        422: {"description": "The answer is malformed (the message names the field)."},
        503: {"model": Problem, "description": "The broker cannot take the answer now; retry after Retry-After."},
    },
)
async def submit_response(
    answer: ResponseIn,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    traceparent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Accepted:
    """Accept one answer. The same ``response_id`` (or ``Idempotency-Key``) sent again is acknowledged
    again with no second effect; a later submission that changes it is an update of that answer."""
    publisher: ResponsePublisher = request.app.state.publisher
    continue_trace(traceparent)
    try:
        event = to_event(answer, now=utcnow(), source="api", idempotency_key=idempotency_key)
    except ScoreOutOfScale as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    try:
        await publisher.publish(event)
    except PublishFailed as exc:
        log.warning("answer not accepted: broker unavailable", extra={"error": str(exc)[:300]})
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the event log is unavailable; retry later",
            headers={"Retry-After": str(publisher.retry_after_seconds)},
        ) from exc
    log.info("answer accepted", extra={"response_id": event.response_id, "account_id": event.account_id})
    response.headers["Location"] = f"/v1/responses/{event.response_id}"
    return Accepted(response_id=event.response_id)
