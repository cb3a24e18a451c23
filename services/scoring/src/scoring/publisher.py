"""Score-event outbox: announces each committed change of an account as a ``score.updated`` event.

Rows of ``account_state`` with ``version > published_version`` are pending. A dispatcher leases due rows
(``FOR UPDATE SKIP LOCKED``, so replicas share the work), reads the account's scores and version in one
snapshot, publishes, then records the published version. A crash between publish and record repeats the
event (consumers are idempotent by account and version); nothing is announced before it is committed.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse_shared.events import ScoreSummary, ScoreUpdated, utcnow
from pulse_shared.metrics import OUTBOX_PENDING
from pulse_shared.outbox import claim_due
from pulse_shared.producer import EventProducer
from pulse_shared.tracing import traced
from scoring.domain.metrics import Metric, change
from scoring.domain.windows import PUBLISHED_WINDOWS, Window, previous, window
from scoring.queries import Method, account_windows, metrics_of
from scoring.tables import account_state

log = logging.getLogger(__name__)

GAUGE_EVERY_SECONDS = 10.0
SPACING: ColumnElement[Any] = literal_column("interval '1 second'")


class ScorePublisher:
    """Drains the score-event outbox."""

    def __init__(self, engine: AsyncEngine, producer: EventProducer, topic: str, *, method: Method = "all",
                 batch_size: int = 100) -> None:
        self._engine = engine
        self._method: Method = method
        self._last_gauge = 0.0
        self._producer = producer
        self._topic = topic
        self._batch_size = batch_size

    async def publish_due(self) -> bool:
        """Publish the score events that are due; return whether there was any."""
        s = account_state.c
        rows = await claim_due(
            self._engine, account_state, pending=s.version > s.published_version, due_column="due_at",
            limit=self._batch_size,
        )
        claimed = [row.account_id for row in rows]
        if time.monotonic() - self._last_gauge >= GAUGE_EVERY_SECONDS:
            self._last_gauge = time.monotonic()
            await self.pending()
        for account_id in claimed:
            await self._publish(account_id)
        return bool(claimed)

    async def _publish(self, account_id: str) -> None:
        now = utcnow()
        async with self._engine.connect() as conn:
            # One snapshot, so the version announced and the counts announced agree.
            await conn.execution_options(isolation_level="REPEATABLE READ")
            state = (
                await conn.execute(select(account_state.c.version, account_state.c.traceparent)
                                   .where(account_state.c.account_id == account_id))
            ).one()
            version = int(state.version)
            spans: list[Window] = []
            for name in PUBLISHED_WINDOWS:
                current = window(name, now.date())
                spans.extend((current, previous(current)))
            hists = await account_windows(conn, account_id, spans, self._method)
            await conn.rollback()
        scores: list[ScoreSummary] = []
        for i, name in enumerate(PUBLISHED_WINDOWS):
            current_metrics, previous_metrics = metrics_of(hists[2 * i]), metrics_of(hists[2 * i + 1])
            scores.extend(summary(m, previous_metrics[k], name) for k, m in current_metrics.items())
        event = ScoreUpdated(account_id=account_id, version=version, computed_at=now, scores=tuple(scores))
        # The score event continues the trace of the answer that moved the scores.
        with traced("scoring.publish_score_event", state.traceparent, account_id=account_id):
            await self._producer.publish(self._topic, account_id, event)
            await self._mark_published(account_id, version, now)
            log.info("score event published", extra={"account_id": account_id, "version": version})

    async def _mark_published(self, account_id: str, version: int, now: datetime) -> None:
        s = account_state.c
        async with self._engine.begin() as conn:
            await conn.execute(
                update(account_state)
                .where(s.account_id == account_id)
                .values(
                    published_version=func.greatest(s.published_version, version),
                    last_published_at=now,
                    lease_until=None,
                    due_at=func.now() + SPACING,
                )
            )

    async def pending(self) -> int:
        """How many accounts wait for a score event (also exported as a gauge)."""
        s = account_state.c
        async with self._engine.connect() as conn:
            query = select(func.count()).where(and_(s.version > s.published_version))
            count = (await conn.execute(query)).scalar_one()
        OUTBOX_PENDING.labels("scoring_score_events").set(count)
        return int(count)


def summary(metric: Metric, before: Metric, window_name: str) -> ScoreSummary:
    """The event form of a metric and its change against the previous window."""
    moved = change(metric, before)
    return ScoreSummary(
        metric=metric.metric, window=window_name, n=metric.n, value=metric.value, ci_low=metric.ci_low,
        ci_high=metric.ci_high, counts=metric.counts, delta=moved.delta, delta_ci_low=moved.ci_low,
        delta_ci_high=moved.ci_high, significant=moved.significant,
    )
