"""Admin API (bearer ``INGEST_ADMIN_TOKEN``): surveys, write keys, webhook sources, erasure requests."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import delete

from ingest.access import AdminDep
from ingest.api.responses import Problem
from ingest.catalog import CatalogStore
from ingest.domain.catalog import (
    CatalogModel,
    Origin,
    Slug,
    Survey,
    WebhookKind,
    WebhookMapping,
    WebhookSource,
    WriteKey,
)
from ingest.domain.submission import Identifier
from ingest.publisher import ResponsePublisher
from ingest.tables import widget_contacts
from pulse_shared.events import RespondentErased, utcnow
from pulse_shared.producer import PublishFailed

router = APIRouter(prefix="/v1", dependencies=[AdminDep], tags=["admin"], responses={
    401: {"model": Problem, "description": "The admin token is missing or wrong."},
    422: {"model": Problem, "description": "The request is malformed (the message names the problem)."},
    503: {"model": Problem, "description": "The admin API is off (INGEST_ADMIN_TOKEN unset) or the log is down."},
})
NO_SURVEY: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such survey."}}
NO_KEY: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such key."}}


def _catalog(request: Request) -> CatalogStore:
    store: CatalogStore = request.app.state.catalog
    return store


@router.get("/admin/surveys", response_model=list[Survey], summary="List surveys")
async def list_surveys(request: Request) -> list[Survey]:
    """Every survey, closed ones included, with its scale, question and display rules."""
    return sorted(_catalog(request).current.surveys.values(), key=lambda s: s.survey_id)


class SurveyBody(Survey):
    """A survey as sent to ``PUT /v1/admin/surveys/{survey_id}``: its id comes from the path."""

    survey_id: Slug | None = None  # type: ignore[assignment]


@router.put("/admin/surveys/{survey_id}", response_model=Survey, summary="Create or replace a survey")
async def put_survey(survey_id: Annotated[str, Path(max_length=100)], body: SurveyBody, request: Request) -> Survey:
    """Create or replace a survey (close it with ``closed: true``). The id is the path's; a body may repeat it."""
    if body.survey_id is not None and body.survey_id != survey_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"survey_id {body.survey_id!r} in the body differs from {survey_id!r} in the path")
    try:
        survey = Survey.model_validate({**body.model_dump(), "survey_id": survey_id})
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"survey id {survey_id!r} in the path: {exc.errors()[0]['msg']}") from exc
    await _catalog(request).upsert_survey(survey)
    return survey


class KeyRequest(CatalogModel):
    """A new write key's settings."""

    label: Annotated[str, Field(max_length=200)] | None = None
    allowed_origins: tuple[Origin, ...] = ()
    rate_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] = 600
    test_mode: bool = Field(False, description="For trying the widget out: Pulse.show({force: true}) ignores the "
                            "display rules with this key.")


@router.post("/admin/surveys/{survey_id}/keys", response_model=WriteKey, status_code=status.HTTP_201_CREATED,
             responses=NO_SURVEY, summary="Issue a write key for a survey")
async def create_key(survey_id: Annotated[str, Path(max_length=100)], body: KeyRequest, request: Request) -> WriteKey:
    """Issue a write key for a survey (several may be active at once, for rotation)."""
    catalog = _catalog(request)
    if survey_id not in catalog.current.surveys:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no survey {survey_id!r}")
    key = WriteKey(key=f"pk_{secrets.token_urlsafe(24)}", survey_id=survey_id, label=body.label,
                   allowed_origins=body.allowed_origins, rate_per_minute=body.rate_per_minute,
                   test_mode=body.test_mode)
    await catalog.upsert_key(key)
    return key


@router.get("/admin/surveys/{survey_id}/keys", response_model=list[WriteKey], responses=NO_SURVEY,
            summary="List a survey's write keys")
async def list_keys(survey_id: Annotated[str, Path(max_length=100)], request: Request) -> list[WriteKey]:
    """The survey's keys, revoked ones included."""
    current = _catalog(request).current
    if survey_id not in current.surveys:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no survey {survey_id!r}")
    return [k for k in current.keys.values() if k.survey_id == survey_id]


@router.delete("/admin/keys/{key}", response_model=WriteKey, responses=NO_KEY, summary="Revoke a write key")
async def revoke_key(key: Annotated[str, Path(max_length=100)], request: Request) -> WriteKey:
    """Revoke a key: every replica refuses it within the catalog refresh interval."""
    catalog = _catalog(request)
    found = catalog.current.keys.get(key)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such key")
    revoked = found.model_copy(update={"revoked_at": found.revoked_at or utcnow()})
    await catalog.upsert_key(revoked)
    return revoked


class SourceRequest(CatalogModel):
    """A webhook source's configuration."""

    kind: WebhookKind | None = Field(None, description="The tool that sends it; may be left out when the source "
                                     "is named after its tool (`typeform`).")
    survey_id: Slug
    secrets: tuple[Annotated[str, Field(min_length=8, max_length=500)], ...] = Field(min_length=1)
    mapping: WebhookMapping
    enabled: bool = True


class SourceView(BaseModel):
    """A webhook source as shown back: secrets only as fingerprints."""

    source: str
    kind: str
    url_path: str = Field(description="Where the tool posts its deliveries.")
    survey_id: str
    secret_fingerprints: list[str]
    mapping: WebhookMapping
    enabled: bool


def _view(source: WebhookSource) -> SourceView:
    return SourceView(source=source.source, kind=source.kind, url_path=f"/v1/webhooks/{source.source}",
                      survey_id=source.survey_id, mapping=source.mapping, enabled=source.enabled,
                      secret_fingerprints=[hashlib.sha256(s.encode()).hexdigest()[:12] for s in source.secrets])


@router.put("/admin/webhook-sources/{source}", response_model=SourceView,
            summary="Configure a survey tool's webhook source")
async def put_source(source: Annotated[Slug, Path(description="The source's name, in its URL: a tool's name "
                                                              "(`typeform`) or your own (`typeform-onboarding`)")],
                     body: SourceRequest, request: Request) -> SourceView:
    """Configure a survey tool. A tool may have several sources (one per form or survey, each with its own
    survey and secret): name each and give its `kind`. List several secrets to rotate: old and new both
    verify until the old one is removed."""
    catalog = _catalog(request)
    if body.survey_id not in catalog.current.surveys:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"no survey {body.survey_id!r}")
    try:
        configured = WebhookSource.model_validate({"source": source, **body.model_dump()})
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"webhook source {source!r}: {_first_problem(exc)}") from exc
    await catalog.upsert_source(configured)
    return _view(configured)


@router.delete("/admin/webhook-sources/{source}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a webhook source", responses={404: {"model": Problem, "description": "No such source."}})
async def delete_source(source: Annotated[str, Path(max_length=100)], request: Request) -> Response:
    """Remove a source: its deliveries are refused (404) on every replica within the refresh interval."""
    if not await _catalog(request).delete_source(source):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no webhook source {source!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _first_problem(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(p) for p in problem.get("loc", ()))
    return f"{where}: {problem['msg']}" if where else str(problem["msg"]).removeprefix("Value error, ")


@router.get("/admin/webhook-sources", response_model=list[SourceView], summary="List webhook sources")
async def list_sources(request: Request) -> list[SourceView]:
    """Configured survey tools."""
    return [_view(s) for s in _catalog(request).current.sources.values()]


class ErasureAccepted(BaseModel):
    """The erasure request is on the responses topic; every service applies it."""

    respondent_id: str
    account_id: str
    requested_at: datetime


@router.delete("/respondents/{respondent_id}", response_model=ErasureAccepted,
               status_code=status.HTTP_202_ACCEPTED, tags=["privacy"],
               summary="Erase a respondent's personal data everywhere")
async def erase_respondent(
    respondent_id: Annotated[Identifier, Path()],
    account_id: Annotated[Identifier, Query(description="The respondent's account")],
    request: Request,
) -> ErasureAccepted:
    """Erase a respondent's personal fields everywhere (anonymous counts are kept). Ingest forgets its own
    widget contact state at once; the event reaches every other service through the responses topic."""
    publisher: ResponsePublisher = request.app.state.publisher
    event = RespondentErased(account_id=account_id, respondent_id=respondent_id)
    async with request.app.state.engine.begin() as conn:
        await conn.execute(delete(widget_contacts).where(widget_contacts.c.account_id == account_id,
                                                         widget_contacts.c.respondent_id == respondent_id))
    try:
        await publisher.publish(event)
    except PublishFailed as exc:
        raise publisher.unavailable() from exc
    return ErasureAccepted(respondent_id=respondent_id, account_id=account_id, requested_at=event.occurred_at)
