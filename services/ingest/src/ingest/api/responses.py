"""``/v1/responses``: accept answers, and answer 202 only once the broker has them."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, Field, ValidationError

from ingest.access import SubmitterDep
from ingest.domain.submission import MAX_BATCH, NotForSurvey, ResponseIn, to_event
from ingest.publisher import ResponsePublisher
from pulse_shared.events import utcnow
from pulse_shared.producer import PublishFailed
from pulse_shared.tracing import traced

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["responses"])


class Accepted(BaseModel):
    """The answer is durably on the responses topic."""

    response_id: str
    status: Literal["accepted"] = "accepted"


class Problem(BaseModel):
    """Why a request was refused."""

    detail: Any


REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No write key, or an unknown or revoked one."},
    403: {"model": Problem, "description": "The browser origin is not on the key's list."},
    410: {"model": Problem, "description": "The survey is closed."},
    413: {"model": Problem, "description": "The body is over the size limit."},
    422: {"description": "The answer is malformed (the message names the field)."},
    429: {"model": Problem, "description": "Rate limit exceeded; retry after Retry-After."},
    503: {"model": Problem, "description": "The broker cannot take the answer now; retry after Retry-After."},
}


@router.post("/responses", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, responses=REFUSALS)
async def submit_response(
    answer: ResponseIn,
    who: SubmitterDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
    traceparent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Accepted:
    """Accept one answer. The same ``response_id`` (or ``Idempotency-Key``) sent again is acknowledged
    again with no second effect; a later submission that changes it is an update of that answer."""
    publisher: ResponsePublisher = request.app.state.publisher
    with traced("ingest.submit_response", traceparent):
        source = "widget" if who.origin else "api"
        try:
            event = to_event(answer, who.survey, now=utcnow(), source=source, idempotency_key=idempotency_key)
        except NotForSurvey as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
        try:
            await publisher.publish(event)
        except PublishFailed as exc:
            log.warning("answer not accepted: broker unavailable", extra={"error": str(exc)[:300]})
            raise publisher.unavailable() from exc
        log.info("answer accepted", extra={"response_id": event.response_id, "account_id": event.account_id})
        response.headers["Location"] = f"/v1/responses/{event.response_id}"
        return Accepted(response_id=event.response_id)


class BatchIn(BaseModel):
    """Up to 500 answers; each is validated on its own."""

    responses: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class ItemResult(BaseModel):
    """The outcome of one answer of a batch."""

    index: int
    status: Literal["accepted", "rejected", "unavailable"]
    response_id: str | None = None
    reason: Any = None


class BatchResult(BaseModel):
    """Per-answer outcomes, in the order sent."""

    accepted: int
    rejected: int
    unavailable: int
    results: list[ItemResult]


@router.post("/responses/batch", response_model=BatchResult, status_code=status.HTTP_202_ACCEPTED,
             responses=REFUSALS)
async def submit_batch(
    batch: BatchIn,
    who: SubmitterDep,
    request: Request,
    response: Response,
    traceparent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> BatchResult:
    """Accept up to 500 answers at once. Each gets its own result: accepted, rejected with the reason, or
    unavailable (the broker did not take it: send it again). 503 when none could be published."""
    publisher: ResponsePublisher = request.app.state.publisher
    with traced("ingest.submit_batch", traceparent, answers=len(batch.responses)):
        now = utcnow()
        results: list[ItemResult] = []
        pending: list[tuple[int, Any]] = []
        for index, raw in enumerate(batch.responses):
            try:
                event = to_event(ResponseIn.model_validate(raw), who.survey, now=now, source="api")
            except ValidationError as exc:
                results.append(ItemResult(index=index, status="rejected", reason=exc.errors(include_url=False,
                                                                                            include_context=False)))
                continue
            except NotForSurvey as exc:
                results.append(ItemResult(index=index, status="rejected", reason=str(exc)))
                continue
            results.append(ItemResult(index=index, status="accepted", response_id=event.response_id))
            pending.append((index, event))
        outcomes = await publisher.publish_many([e for _, e in pending])
        for (index, _event), error in zip(pending, outcomes, strict=True):
            if error is not None:
                results[index] = ItemResult(index=index, status="unavailable", response_id=results[index].response_id,
                                            reason="the event log did not take it; send it again")
        counts = {s: sum(1 for r in results if r.status == s) for s in ("accepted", "rejected", "unavailable")}
        if counts["unavailable"] and not counts["accepted"]:
            raise publisher.unavailable()
        if counts["unavailable"]:
            response.headers["Retry-After"] = str(publisher.retry_after_seconds)
        return BatchResult(results=results, **counts)
