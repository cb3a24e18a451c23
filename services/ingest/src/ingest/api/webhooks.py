"""``/v1/webhooks/{source}``: signed deliveries from survey tools become answers on the responses topic.

The signature is verified over the raw bytes before anything is parsed. The raw payload is kept on the
raw-webhooks topic (even when it cannot be mapped), so a mapping fix can be replayed.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel

from ingest.api.responses import Problem
from ingest.catalog import CatalogStore
from ingest.domain.catalog import Slug, WebhookSource
from ingest.domain.signatures import VERIFIERS, SignatureRejected
from ingest.domain.webhooks import Ignored, PayloadError, map_payload, parse_body, to_event
from ingest.publisher import ResponsePublisher
from ingest.settings import IngestSettings
from pulse_shared.producer import PublishFailed
from pulse_shared.topics import partition_key
from pulse_shared.tracing import traced

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["webhooks"])


class WebhookResult(BaseModel):
    """What became of a delivery."""

    status: Literal["accepted", "ignored"]
    response_id: str | None = None
    reason: str | None = None


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed signature headers or body."},
    401: {"model": Problem, "description": "Signature missing, wrong, made with a retired secret, or too old."},
    404: {"model": Problem, "description": "The source is not configured."},
    410: {"model": Problem, "description": "The source's survey is closed."},
    413: {"model": Problem, "description": "The body is over the size limit."},
    422: {"model": Problem, "description": "The payload lacks what Pulse needs (the message says what)."},
    503: {"model": Problem, "description": "The event log cannot take it now; the tool should retry."},
}


@router.post("/webhooks/{source}", status_code=status.HTTP_202_ACCEPTED, response_model=WebhookResult,
             responses=RESPONSES, summary="Receive a survey tool's signed delivery")
async def receive(source: Annotated[Slug, Path(description="The configured source's name (`delighted`, or one "
                                                           "you named, such as `typeform-onboarding`)")],
                  request: Request) -> WebhookResult:
    """Verify the signature with the source's tool's scheme, keep the raw payload, map it and publish the
    answer (a later event of the same response is an update of it). Redeliveries are acknowledged again with
    no second effect. Each tool's signing, headers and mapping: docs/webhooks.md."""
    catalog: CatalogStore = request.app.state.catalog
    settings: IngestSettings = request.app.state.settings
    publisher: ResponsePublisher = request.app.state.publisher
    config = catalog.current.sources.get(source)
    if config is None or not config.enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"webhook source {source!r} is not configured")
    kind = config.kind
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    with traced("ingest.webhook", headers.get("traceparent"), source=source):
        try:
            verified = VERIFIERS[kind](headers, body, config.secrets, time.time(), settings.webhook_tolerance_seconds)
        except SignatureRejected as exc:
            log.warning("webhook refused", extra={"source": source, "kind": kind, "reason": exc.reason})
            raise HTTPException(exc.status, detail=exc.reason) from exc
        survey = catalog.current.surveys.get(config.survey_id)
        if survey is None or survey.closed:
            raise HTTPException(status.HTTP_410_GONE, detail=f"survey {config.survey_id!r} is closed or gone")
        account_id: str | None = None
        try:
            payload = parse_body(kind, body, headers.get("content-type", ""))
            outcome = map_payload(kind, payload, config.mapping)
            event = None if isinstance(outcome, Ignored) else to_event(outcome, survey, kind)
            account_id = event.account_id if event is not None else None
        except PayloadError as exc:
            await _keep_raw(publisher, config, body, headers, account_id, verified.delivery_id, problem=exc.reason)
            raise HTTPException(exc.status, detail=exc.reason) from exc
        await _keep_raw(publisher, config, body, headers, account_id, verified.delivery_id)
        if event is None:
            assert isinstance(outcome, Ignored)
            return WebhookResult(status="ignored", reason=outcome.reason)
        try:
            await publisher.publish(event)
        except PublishFailed as exc:
            raise publisher.unavailable() from exc
        log.info("webhook answer accepted", extra={"source": source, "response_id": event.response_id,
                                                   "account_id": event.account_id, "update": event.type})
        return WebhookResult(status="accepted", response_id=event.response_id)


async def _keep_raw(publisher: ResponsePublisher, config: WebhookSource, body: bytes, headers: dict[str, str],
                    account_id: str | None, delivery_id: str | None, problem: str | None = None) -> None:
    source = config.source
    meta = [("source", source.encode()), ("kind", config.kind.encode()),
            ("content-type", headers.get("content-type", "").encode()[:200]),
            ("received-at", str(time.time()).encode())]
    if delivery_id:
        meta.append(("delivery-id", delivery_id.encode()[:200]))
    if problem:
        meta.append(("mapping-problem", problem.encode()[:500]))
    key = partition_key(account_id) if account_id else f"unmapped:{source}".encode()
    try:
        await publisher.producer.send(publisher.raw_topic, key=key, value=body, headers=meta)
    except PublishFailed as exc:
        raise publisher.unavailable() from exc
