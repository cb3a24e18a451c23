"""The embeddable widget: its script, whether to show it, and 'ask me later'."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import Response as RawResponse
from pydantic import BaseModel

from ingest.access import SubmitterDep
from ingest.api.responses import REFUSALS
from ingest.contacts import ContactStore
from ingest.domain.eligibility import decide
from ingest.domain.submission import Identifier
from pulse_shared.events import utcnow

router = APIRouter(tags=["widget"])
WIDGET_JS = resources.files("ingest").joinpath("static/widget.js").read_bytes()


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> RawResponse:
    """The dependency-free widget script (cacheable; it carries no secrets)."""
    return RawResponse(WIDGET_JS, media_type="application/javascript; charset=utf-8",
                       headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})


class SurveyOut(BaseModel):
    """What the widget needs to ask."""

    survey_id: str
    survey_type: str
    question: str
    scale_min: int
    scale_max: int


class Eligibility(BaseModel):
    """Whether to show the survey now, and why."""

    show: bool
    reason: str
    survey: SurveyOut | None = None


@router.get("/v1/widget/eligibility", response_model=Eligibility, responses=REFUSALS)
async def eligibility(
    who: SubmitterDep,
    request: Request,
    account_id: Annotated[Identifier, Query()],
    respondent_id: Annotated[Identifier, Query()],
    signed_up_at: Annotated[date | None, Query(description="The respondent's sign-up day (minimum-age rule)")] = None,
) -> Eligibility:
    """Decide with the survey's display rules; a 'show' is recorded, so the recontact period starts now and
    no other tab or replica shows it again."""
    contacts: ContactStore = request.app.state.contacts
    survey = who.survey
    now = utcnow()
    signed_up = datetime.combine(signed_up_at, datetime.min.time(), UTC) if signed_up_at else None
    contact = await contacts.get(survey.survey_id, account_id, respondent_id)
    decision = decide(survey, contact, account_id=account_id, respondent_id=respondent_id, now=now,
                      signed_up_at=signed_up)
    if decision.show and not await contacts.claim_showing(survey.survey_id, account_id, respondent_id, now,
                                                          timedelta(days=survey.recontact_days)):
        return Eligibility(show=False, reason="just asked elsewhere")
    if not decision.show:
        return Eligibility(show=False, reason=decision.reason)
    lo, hi = survey.scale
    return Eligibility(show=True, reason=decision.reason, survey=SurveyOut(
        survey_id=survey.survey_id, survey_type=survey.survey_type, question=survey.question, scale_min=lo,
        scale_max=hi))


class SnoozeIn(BaseModel):
    """Who asked to be asked later."""

    account_id: Identifier
    respondent_id: Identifier


@router.post("/v1/widget/snooze", status_code=204, responses=REFUSALS)
async def snooze(body: SnoozeIn, who: SubmitterDep, request: Request, response: Response) -> Response:
    """'Ask me later': not again for the survey's ask-later period."""
    contacts: ContactStore = request.app.state.contacts
    until = utcnow() + timedelta(days=who.survey.ask_later_days)
    await contacts.snooze(who.survey.survey_id, body.account_id, body.respondent_id, until)
    response.status_code = 204
    return response
