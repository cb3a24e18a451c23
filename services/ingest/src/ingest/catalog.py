"""Loads the catalog from PostgreSQL and keeps an in-memory snapshot fresh, so requests never wait on it.

Every replica refreshes its snapshot every few seconds (and at once after an admin change it made): a
revoked key stops working everywhere within the refresh interval.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.domain.catalog import Catalog, Survey, WebhookSource, WriteKey
from ingest.tables import surveys, webhook_sources, write_keys

log = logging.getLogger(__name__)


class CatalogStore:
    """Reads and writes the catalog tables, and holds the current snapshot."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.current = Catalog()

    async def refresh(self) -> None:
        """Reload the snapshot from the tables."""
        async with self._engine.connect() as conn:
            survey_rows = (await conn.execute(select(surveys))).mappings().all()
            key_rows = (await conn.execute(select(write_keys))).mappings().all()
            source_rows = (await conn.execute(select(webhook_sources))).mappings().all()
        self.current = Catalog(
            surveys={r["survey_id"]: Survey.model_validate(_survey_fields(r)) for r in survey_rows},
            keys={r["key"]: WriteKey.model_validate(_key_fields(r)) for r in key_rows},
            sources=_sources(source_rows),
        )

    async def upsert_survey(self, survey: Survey) -> None:
        """Create or replace a survey."""
        row = survey.model_dump(mode="json")
        stmt = insert(surveys).values(**row)
        await self._write(stmt.on_conflict_do_update(
            index_elements=[surveys.c.survey_id],
            set_={**{k: v for k, v in row.items() if k != "survey_id"}, "updated_at": stmt.excluded.updated_at},
        ))

    async def upsert_key(self, key: WriteKey) -> None:
        """Create or replace a write key."""
        row = key.model_dump()
        row["allowed_origins"] = list(row["allowed_origins"])
        stmt = insert(write_keys).values(**row)
        await self._write(stmt.on_conflict_do_update(
            index_elements=[write_keys.c.key], set_={k: v for k, v in row.items() if k != "key"}))

    async def upsert_source(self, source: WebhookSource) -> None:
        """Create or replace a webhook source."""
        row = source.model_dump(mode="json")
        row["secrets"] = list(row["secrets"])
        stmt = insert(webhook_sources).values(**row)
        await self._write(stmt.on_conflict_do_update(
            index_elements=[webhook_sources.c.source], set_={k: v for k, v in row.items() if k != "source"}))

    async def delete_source(self, source: str) -> bool:
        """Remove a webhook source (its deliveries are refused from then on); False when there was none."""
        async with self._engine.begin() as conn:
            removed = (await conn.execute(
                delete(webhook_sources).where(webhook_sources.c.source == source).returning(webhook_sources.c.source)
            )).first()
        await self.refresh()
        return removed is not None

    async def _write(self, stmt: Any) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
        await self.refresh()


def _survey_fields(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in Survey.model_fields}


def _key_fields(row: Any) -> dict[str, Any]:
    fields = {k: row[k] for k in WriteKey.model_fields}
    fields["allowed_origins"] = tuple(fields["allowed_origins"] or ())
    return fields


def _sources(rows: Any) -> dict[str, WebhookSource]:
    """The stored sources that are valid today. One stored before a rule tightened (a Standard Webhooks
    secret that is not base64) is left out with an error naming it, and its deliveries are refused as from
    an unconfigured source, rather than failing every refresh."""
    sources: dict[str, WebhookSource] = {}
    for row in rows:
        try:
            sources[row["source"]] = WebhookSource.model_validate(_source_fields(row))
        except ValidationError as exc:
            log.error("webhook source is invalid and disabled; configure it again",  # noqa: TRY400 - no traceback: a config problem
                      extra={"source": row["source"], "error": str(exc.errors()[0]["msg"])[:300]})
    return sources


def _source_fields(row: Any) -> dict[str, Any]:
    fields = {k: row[k] for k in WebhookSource.model_fields}
    fields["secrets"] = tuple(fields["secrets"] or ())
    return fields
