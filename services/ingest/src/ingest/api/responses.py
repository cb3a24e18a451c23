"""``/v1/responses``: accept answers, and answer 202 only once the broker has them."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import to_json

from ingest.access import WRITE_KEY_SECURITY, authorize
from ingest.api.requests import documented, header, json_body, parameter, validation_error
from ingest.domain.submission import (
    MAX_BATCH,
    VALID_BATCH,
    Identifier,
    NotForSurvey,
    Problems,
    ResponseIn,
    encoded_event,
    event_fields,
    validate_answers,
)
from ingest.publisher import ResponsePublisher
from pulse_shared.events import nul_context, utcnow
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


IdempotencyKey = TypeAdapter(Annotated[str, Field(min_length=1, max_length=255)])
ANSWER = TypeAdapter(ResponseIn)


@router.post(
    "/responses", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, responses=REFUSALS,
    summary="Send one answer",
    openapi_extra=documented(ResponseIn, parameter(
        "idempotency-key", "header", "Stands for response_id when the answer has none: a retry with the same "
        "key is the same answer.", minLength=1, maxLength=255), security=WRITE_KEY_SECURITY),
)
async def submit_response(request: Request, response: Response) -> Accepted:
    """Accept one answer. The same ``response_id`` (or ``Idempotency-Key``) sent again is acknowledged
    again with no second effect; a later submission that changes it is an update of that answer."""
    return await accept_answer(request, response)


async def accept_answer(request: Request, response: Response) -> Accepted:
    """``POST /v1/responses``: authorise, validate, publish and wait for the broker's acknowledgement; set
    the response's headers; raise the refusal otherwise. Served by :class:`ingest.api.fastpath.AnswerFastPath`
    (documented by the route above)."""
    who = authorize(request, response)
    answer = await json_body(request, ANSWER)
    idempotency_key = header(request, "idempotency-key", IdempotencyKey)
    publisher: ResponsePublisher = request.app.state.publisher
    with traced("ingest.submit_response", request.headers.get("traceparent")):
        source = "widget" if who.origin else "api"
        try:
            fields = event_fields(answer, who.survey, now=utcnow(), source=source, idempotency_key=idempotency_key)
        except NotForSurvey as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
        response_id: str = fields["response_id"]
        try:
            await publisher.publish_one(encoded_event(fields))
        except PublishFailed as exc:
            log.warning("answer not accepted: broker unavailable", extra={"error": str(exc)[:300]})
            raise publisher.unavailable() from exc
        if log.isEnabledFor(logging.INFO):
            log.info("answer accepted", extra={"response_id": response_id, "account_id": answer.account_id})
        return Accepted(response_id=response_id)


class BatchIn(BaseModel):
    """Up to 500 answers; each is validated on its own."""

    responses: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class ItemResult(BaseModel):
    """The outcome of one answer of a batch."""

    index: int
    status: Literal["accepted", "rejected", "unavailable"]
    response_id: str | None = Field(None, description="The answer's id: the one it was sent with (also when "
                                    "rejected), or the one Pulse gave it.")
    reason: str | None = Field(None, description="Why it was rejected or not taken, in words.")
    errors: list[dict[str, Any]] | None = Field(None, description="For an answer that failed validation: each "
                                                "problem with its `loc` within the answer, `msg` and `type`.")


class BatchResult(BaseModel):
    """Per-answer outcomes, in the order sent."""

    accepted: int
    rejected: int
    unavailable: int
    results: list[ItemResult]


BATCH = TypeAdapter(BatchIn)


IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


def _sent_id(items: list[dict[str, Any]], index: int) -> str | None:
    """The ``response_id`` a rejected answer was sent with, when it is a valid identifier (else it is among
    the answer's problems)."""
    try:
        return IDENTIFIER.validate_python(items[index].get("response_id"), strict=True)
    except ValidationError:
        return None


def _in_words(problems: Problems) -> str:
    """``score: Input should be a valid integer; account_id: Field required``."""
    return "; ".join(f"{'.'.join(str(p) for p in problem.get('loc', ())) or 'answer'}: {problem.get('msg')}"
                     for problem in problems)[:2000]
UNAVAILABLE = "the event log did not take it; send it again"


@router.post("/responses/batch", response_model=BatchResult, status_code=status.HTTP_202_ACCEPTED,
             summary="Send up to 500 answers at once",
             responses=REFUSALS, openapi_extra=documented(BatchIn, security=WRITE_KEY_SECURITY))
async def submit_batch(request: Request, response: Response) -> Response:
    """Accept up to 500 answers at once. Each gets its own result: accepted, rejected with the reason, or
    unavailable (the broker did not take it: send it again). 503 when none could be published."""
    who = authorize(request, response)
    body = await request.body()
    context = nul_context(body)
    answers: list[ResponseIn | Problems]
    body_items: list[dict[str, Any]] = []
    try:  # the common case: every answer valid, read in one pass
        answers = list(VALID_BATCH.validate_json(body, context=context).responses)
    except ValidationError:
        try:
            batch = BATCH.validate_json(body, context=context)
        except ValidationError as exc:
            raise validation_error(exc, "body") from exc
        body_items = batch.responses
        answers = validate_answers(body_items, context=context)
    publisher: ResponsePublisher = request.app.state.publisher
    with traced("ingest.submit_batch", request.headers.get("traceparent"), answers=len(answers)):
        now = utcnow()
        results: list[dict[str, Any]] = []
        fields: list[tuple[int, dict[str, Any]]] = []
        for index, answer in enumerate(answers):
            if isinstance(answer, list):
                results.append({"index": index, "status": "rejected", "response_id": _sent_id(body_items, index),
                                "reason": _in_words(answer), "errors": answer})
                continue
            try:
                fields.append((index, event_fields(answer, who.survey, now=now, source="api")))
            except NotForSurvey as exc:
                results.append({"index": index, "status": "rejected", "response_id": answer.response_id,
                                "reason": str(exc)})
                continue
            results.append({"index": index, "status": "accepted", "response_id": fields[-1][1]["response_id"],
                            "reason": None})
        outcomes = await publisher.publish_encoded([encoded_event(f) for _, f in fields])
        for (index, _fields), error in zip(fields, outcomes, strict=True):
            if error is not None:
                results[index].update(status="unavailable", reason=UNAVAILABLE)
        counts = {s: sum(1 for r in results if r["status"] == s) for s in ("accepted", "rejected", "unavailable")}
        if counts["unavailable"] and not counts["accepted"]:
            raise publisher.unavailable()
        if counts["unavailable"]:
            response.headers["Retry-After"] = str(publisher.retry_after_seconds)
        # Built here rather than through the response model: 500 item models cost more than the answers.
        return Response(to_json({**counts, "results": results}), status_code=status.HTTP_202_ACCEPTED,
                        media_type="application/json", headers=dict(response.headers))
