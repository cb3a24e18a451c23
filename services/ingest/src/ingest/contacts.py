"""Widget contact state in PostgreSQL, shared by every ingest replica.

Showing is recorded with a conditional upsert, so two replicas deciding at once cannot both show the
survey: only the one whose write lands gets a row back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.domain.eligibility import Contact
from ingest.tables import widget_contacts as wc


class ContactStore:
    """Reads and records when respondents were asked."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, survey_id: str, account_id: str, respondent_id: str) -> Contact:
        """What is remembered (nothing yet: an empty contact)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(wc.c.last_shown_at, wc.c.snoozed_until).where(
                wc.c.survey_id == survey_id, wc.c.account_id == account_id, wc.c.respondent_id == respondent_id,
            ))).first()
        return Contact() if row is None else Contact(row.last_shown_at, row.snoozed_until)

    async def claim_showing(self, survey_id: str, account_id: str, respondent_id: str, now: datetime,
                            recontact: timedelta) -> bool:
        """Record that the survey is shown now, unless another request recorded it within ``recontact``."""
        stmt = insert(wc).values(survey_id=survey_id, account_id=account_id, respondent_id=respondent_id,
                                 last_shown_at=now, snoozed_until=None)
        claim = stmt.on_conflict_do_update(
            index_elements=[wc.c.survey_id, wc.c.account_id, wc.c.respondent_id],
            set_={"last_shown_at": now, "snoozed_until": None},
            where=or_(wc.c.last_shown_at.is_(None), wc.c.last_shown_at <= now - recontact),
        ).returning(wc.c.survey_id)
        async with self._engine.begin() as conn:
            return (await conn.execute(claim)).first() is not None

    async def snooze(self, survey_id: str, account_id: str, respondent_id: str, until: datetime) -> None:
        """'Ask me later': not before ``until``, and the recontact period does not apply to this showing."""
        stmt = insert(wc).values(survey_id=survey_id, account_id=account_id, respondent_id=respondent_id,
                                 last_shown_at=None, snoozed_until=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=[wc.c.survey_id, wc.c.account_id, wc.c.respondent_id],
            set_={"last_shown_at": None, "snoozed_until": until},
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
