"""Whether the in-app widget should ask this respondent now (pure; scoring-math.md display rules).

Rules, in order: not while they asked to be asked later; not within the survey's recontact period since
they were last asked; not before the minimum days since sign-up; and only the survey's sample
percentage of respondents, chosen by a stable hash so a respondent's draw does not change between visits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest.domain.catalog import Survey


@dataclass(frozen=True)
class Contact:
    """What is remembered of a respondent for a survey."""

    last_shown_at: datetime | None = None
    snoozed_until: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """Show or not, and why (the reason is returned to the widget for debugging)."""

    show: bool
    reason: str


def in_sample(survey_id: str, account_id: str, respondent_id: str, percent: int) -> bool:
    """A stable draw: the same respondent always falls on the same side of the sampling line."""
    digest = hashlib.sha256(f"{survey_id}\x1f{account_id}\x1f{respondent_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def decide(survey: Survey, contact: Contact, *, account_id: str, respondent_id: str, now: datetime,
           signed_up_at: datetime | None, sampling: bool = True) -> Decision:
    """Apply the display rules (``sampling=False``: the page asked for the survey, so the draw is not made)."""
    if contact.snoozed_until is not None and contact.snoozed_until > now:
        return Decision(False, "asked to be asked later")
    if contact.last_shown_at is not None and now - contact.last_shown_at < timedelta(days=survey.recontact_days):
        return Decision(False, f"asked within the last {survey.recontact_days} days")
    if signed_up_at is not None and now - signed_up_at < timedelta(days=survey.min_days_since_signup):
        return Decision(False, f"signed up less than {survey.min_days_since_signup} days ago")
    if sampling and not in_sample(survey.survey_id, account_id, respondent_id, survey.sample_percent):
        return Decision(False, f"not in the {survey.sample_percent}% sample")
    return Decision(True, "eligible")
