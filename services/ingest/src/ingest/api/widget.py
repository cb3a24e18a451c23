"""The embeddable widget: its script, whether to show it, its look and texts, 'ask me later' and dismissals."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Annotated, Literal

import rjsmin  # type: ignore[import-untyped]
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import Response as RawResponse
from prometheus_client import Counter
from pydantic import BaseModel, Field

from ingest.access import Submitter, SubmitterDep
from ingest.api.responses import REFUSALS
from ingest.contacts import ContactStore
from ingest.domain.eligibility import decide
from ingest.domain.submission import Identifier
from ingest.domain.widget import Color, LocaleTag, Presentation, presentation
from pulse_shared.events import utcnow

router = APIRouter(tags=["widget"])
SIGNED_UP = "The respondent's sign-up day (minimum-age rule)"
LOCALE = "The page's language (data-pulse-locale or the page's lang), e.g. de or pt-BR"
#: Served minified (comments and spaces out; names untouched, so it stays readable in a browser's debugger).
WIDGET_JS = rjsmin.jsmin(resources.files("ingest").joinpath("static/widget.js").read_text("utf-8")).encode()
WIDGET_JS_GZIP = gzip.compress(WIDGET_JS, compresslevel=9, mtime=0)
OUTCOMES = Counter("pulse_widget_outcomes_total", "Widget displays and how they ended without an answer.",
                   ["survey_id", "outcome"])


@router.get("/widget.js", include_in_schema=False)
async def widget_js(accept_encoding: Annotated[str, Header()] = "") -> RawResponse:
    """The dependency-free widget script (cacheable; it carries no secrets), gzipped when the browser takes it."""
    headers = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
    if "gzip" in accept_encoding.lower():
        return RawResponse(WIDGET_JS_GZIP, media_type="application/javascript; charset=utf-8",
                           headers={**headers, "Content-Encoding": "gzip"})
    return RawResponse(WIDGET_JS, media_type="application/javascript; charset=utf-8", headers=headers)


class SurveyOut(BaseModel):
    """What the widget needs to ask, in the page's language."""

    survey_id: str
    survey_type: str
    question: str
    scale_min: int
    scale_max: int
    widget: Presentation


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
    locale: LocaleTag | None = Field(None, description=LOCALE)
    color: Color | None = Field(None, description="The page's brand colour (data-pulse-color), over the survey's.")
    theme: Literal["auto", "light", "dark"] | None = Field(None, description="data-pulse-theme, over the survey's.")
    placement: Literal["bottom-right", "bottom-left", "center"] | None = Field(
        None, description="data-pulse-placement, over the survey's.")


class DisplayRequest(Showing):
    """A display the widget is about to show: by its rules, or asked for by the page (``Pulse.show()``)."""

    skip_sampling: bool = Field(False, description="The page asked for the survey (Pulse.show()): sampling does "
                                "not apply; the recontact period and 'ask me later' still do.")
    force: bool = Field(False, description="Show whatever the display rules say: only with a test-mode key.")


async def _decide(who: Submitter, request: Request, respondent: Showing, *, sampling: bool = True,
                  force: bool = False) -> tuple[Eligibility, datetime]:
    contacts: ContactStore = request.app.state.contacts
    survey = who.survey
    now = utcnow()
    signed_up = datetime.combine(respondent.signed_up_at, datetime.min.time(), UTC) if respondent.signed_up_at else None
    contact = await contacts.get(survey.survey_id, respondent.account_id, respondent.respondent_id)
    decision = decide(survey, contact, account_id=respondent.account_id, respondent_id=respondent.respondent_id,
                      now=now, signed_up_at=signed_up, sampling=sampling)
    if not decision.show and not force:
        return Eligibility(show=False, reason=decision.reason), now
    lo, hi = survey.scale
    looks = {name: value for name in ("color", "theme", "placement")
             if (value := getattr(respondent, name)) is not None}
    shown = presentation(survey.widget.model_copy(update=looks), survey_type=survey.survey_type,
                         question=survey.question, scale=(lo, hi), locale=respondent.locale)
    return Eligibility(show=True, reason="forced (test-mode key)" if force else decision.reason, survey=SurveyOut(
        survey_id=survey.survey_id, survey_type=survey.survey_type, question=shown.texts["question"], scale_min=lo,
        scale_max=hi, widget=shown)), now


@router.get("/v1/widget/eligibility", response_model=Eligibility, responses=REFUSALS,
            summary="Whether to show the survey to this respondent now")
async def eligibility(
    who: SubmitterDep,
    request: Request,
    account_id: Annotated[Identifier, Query()],
    respondent_id: Annotated[Identifier, Query()],
    signed_up_at: Annotated[date | None, Query(description=SIGNED_UP)] = None,
    locale: Annotated[LocaleTag | None, Query(description=LOCALE)] = None,
) -> Eligibility:
    """Decide with the survey's display rules (recontact period, 'ask me later', minimum days since sign-up,
    sampling). Only a question: nothing is recorded, so a probe or a crawler starts no recontact period. The
    widget records the display with ``POST /v1/widget/displays`` as it shows. The survey comes with its look
    and its texts in the page's language."""
    answer, _now = await _decide(who, request, Showing(account_id=account_id, respondent_id=respondent_id,
                                                          signed_up_at=signed_up_at, locale=locale))
    return answer


@router.post("/v1/widget/displays", response_model=Eligibility, responses=REFUSALS,
             summary="Record that the widget is showing the survey")
async def display(body: DisplayRequest, who: SubmitterDep, request: Request) -> Eligibility:
    """The widget is about to show the survey: decide again and record the display, so the recontact period
    starts now. Only one of several tabs or replicas asking at once gets ``show: true``; the others are told
    ``just asked elsewhere`` and show nothing. ``skip_sampling`` (the page called ``Pulse.show()``) sets the
    sampling rule aside; ``force`` sets every rule aside and needs a test-mode key (403 otherwise)."""
    if body.force and not who.key.test_mode:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail="force needs a test-mode key (create one with test_mode: true); this key "
                                   "follows the survey's display rules")
    answer, now = await _decide(who, request, body, sampling=not (body.skip_sampling or body.force),
                                force=body.force)
    if not answer.show:
        return answer
    contacts: ContactStore = request.app.state.contacts
    survey = who.survey
    recontact = timedelta(0) if body.force else timedelta(days=survey.recontact_days)
    if not await contacts.claim_showing(survey.survey_id, body.account_id, body.respondent_id, now, recontact):
        return Eligibility(show=False, reason="just asked elsewhere")
    OUTCOMES.labels(survey.survey_id, "shown").inc()
    return answer


@router.post("/v1/widget/snooze", status_code=204, responses=REFUSALS, summary="Ask me later")
async def snooze(body: Respondent, who: SubmitterDep, request: Request, response: Response) -> Response:
    """'Ask me later': not again for the survey's ask-later period."""
    contacts: ContactStore = request.app.state.contacts
    until = utcnow() + timedelta(days=who.survey.ask_later_days)
    await contacts.snooze(who.survey.survey_id, body.account_id, body.respondent_id, until)
    OUTCOMES.labels(who.survey.survey_id, "later").inc()
    response.status_code = 204
    return response


@router.post("/v1/widget/dismissals", status_code=204, responses=REFUSALS, summary="The survey was dismissed")
async def dismissal(body: Respondent, who: SubmitterDep, response: Response) -> Response:
    """The respondent closed the survey without answering (close button or Escape). Nothing changes for them:
    the display already started the recontact period. It is counted (``pulse_widget_outcomes_total``), so a
    survey that people close more than they answer shows on the dashboard."""
    del body  # validated: a dismissal names who dismissed, like every widget call
    OUTCOMES.labels(who.survey.survey_id, "dismissed").inc()
    response.status_code = 204
    return response
