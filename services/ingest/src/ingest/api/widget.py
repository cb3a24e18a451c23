"""The embeddable widget: its script, whether to show it, and 'ask me later'."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import Response as RawResponse
from pydantic import BaseModel, Field

from ingest.access import Submitter, SubmitterDep
from ingest.api.responses import REFUSALS
from ingest.contacts import ContactStore
from ingest.domain.eligibility import decide
from ingest.domain.submission import Identifier
from pulse_shared.events import utcnow

router = APIRouter(tags=["widget"])
SIGNED_UP = "The respondent's sign-up day (minimum-age rule)"
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


class Respondent(BaseModel):
    """Who the widget is for (who asked to be asked later, for ``snooze``)."""

    account_id: Identifier
    respondent_id: Identifier


class Showing(Respondent):
    """Who the widget would show the survey to."""

    signed_up_at: date | None = Field(None, description=SIGNED_UP)


async def _decide(who: Submitter, request: Request, respondent: Showing) -> tuple[Eligibility, datetime]:
    contacts: ContactStore = request.app.state.contacts
    survey = who.survey
    now = utcnow()
    signed_up = datetime.combine(respondent.signed_up_at, datetime.min.time(), UTC) if respondent.signed_up_at else None
    contact = await contacts.get(survey.survey_id, respondent.account_id, respondent.respondent_id)
    decision = decide(survey, contact, account_id=respondent.account_id, respondent_id=respondent.respondent_id,
                      now=now, signed_up_at=signed_up)
    if not decision.show:
        return Eligibility(show=False, reason=decision.reason), now
    lo, hi = survey.scale
    return Eligibility(show=True, reason=decision.reason, survey=SurveyOut(
        survey_id=survey.survey_id, survey_type=survey.survey_type, question=survey.question, scale_min=lo,
        scale_max=hi)), now


@router.get("/v1/widget/eligibility", response_model=Eligibility, responses=REFUSALS,
            summary="Whether to show the survey to this respondent now")
async def eligibility(
    who: SubmitterDep,
    request: Request,
    account_id: Annotated[Identifier, Query()],
    respondent_id: Annotated[Identifier, Query()],
    signed_up_at: Annotated[date | None, Query(description=SIGNED_UP)] = None,
) -> Eligibility:
    """Decide with the survey's display rules (recontact period, 'ask me later', minimum days since sign-up,
    sampling). Only a question: nothing is recorded, so a probe or a crawler starts no recontact period. The
    widget records the display with ``POST /v1/widget/displays`` as it shows."""
    answer, _now = await _decide(who, request, Showing(account_id=account_id, respondent_id=respondent_id,
                                                          signed_up_at=signed_up_at))
    return answer


@router.post("/v1/widget/displays", response_model=Eligibility, responses=REFUSALS,
             summary="Record that the widget is showing the survey")
async def display(body: Showing, who: SubmitterDep, request: Request) -> Eligibility:
    """The widget is about to show the survey: decide again and record the display, so the recontact period
    starts now. Only one of several tabs or replicas asking at once gets ``show: true``; the others are told
    ``just asked elsewhere`` and show nothing."""
    answer, now = await _decide(who, request, body)
    if not answer.show:
        return answer
    contacts: ContactStore = request.app.state.contacts
    survey = who.survey
    if not await contacts.claim_showing(survey.survey_id, body.account_id, body.respondent_id, now,
                                        timedelta(days=survey.recontact_days)):
        return Eligibility(show=False, reason="just asked elsewhere")
    return answer


@router.post("/v1/widget/snooze", status_code=204, responses=REFUSALS, summary="Ask me later")
async def snooze(body: Respondent, who: SubmitterDep, request: Request, response: Response) -> Response:
    """'Ask me later': not again for the survey's ask-later period."""
    contacts: ContactStore = request.app.state.contacts
    until = utcnow() + timedelta(days=who.survey.ask_later_days)
    await contacts.snooze(who.survey.survey_id, body.account_id, body.respondent_id, until)
    response.status_code = 204
    return response
