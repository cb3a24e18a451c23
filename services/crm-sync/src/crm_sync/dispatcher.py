"""The writer of one connector: flushes pending writes on an interval, paced, and records each outcome.

Only the replica holding the connector's writer lock writes. Every ``flush_interval`` it claims the pending
rows (at most ``max_batch`` per call; each account once, with only the properties whose values changed since
the CRM was last sent them), calls the connector and records per account: synced, unmatched, a dead letter,
or a retry. Outcomes are fenced by the claim's lease token. A row is marked synced only after the CRM
answered, so a writer killed mid-call re-sends exactly what was in flight, and nothing else.

Pacing: every call waits at a rolling-window budget (the portal's limit); ``TEN_SECONDLY_ROLLING`` spends the
window; ``DAILY`` stores a pause until the portal's next day in ``connector_state``, which every replica and
every restart honours; 5xx and timeouts open the connector's circuit for a bounded, doubling time. Each
connector has its own writer, so one failing CRM never delays another.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter, Gauge
from sqlalchemy import Text, and_, bindparam, case, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.connectors.base import Connector, ConnectorUnavailable, Pause, PendingWrite, Schema, WriteOutcome
from crm_sync.domain.pacing import Circuit, RollingBudget, next_daily_reset
from crm_sync.domain.properties import changed, digest
from crm_sync.owners import OwnerSync
from crm_sync.tables import account_state, connector_state, crm_writes
from pulse_shared.events import utcnow
from pulse_shared.outbox import Claimer, fenced
from pulse_shared.tracing import traced

log = logging.getLogger(__name__)

CONNECTOR_PAUSES = Counter("pulse_crm_connector_pauses_total", "CRM connector pauses by reason.",
                           ["connector", "reason"])
CRM_WRITES = Counter("pulse_crm_writes_total", "Account writes to CRMs by outcome.", ["connector", "outcome"])
ACCOUNTS = Gauge("pulse_crm_accounts", "Accounts per connector by sync status (pending, synced, unmatched, failed).",
                 ["connector", "status"])
DEAD_LETTERS = Gauge("pulse_crm_dead_letters", "Dead-lettered account writes by reason.", ["connector", "reason"])
PAUSED = Gauge("pulse_crm_connector_paused", "1 while the connector is paused (rate limit, daily cap, outage).",
               ["connector"])
WRITER = Gauge("pulse_crm_writer", "1 in the replica that is the connector's active writer.", ["connector"])

RETRY_CEILING_SECONDS = 600.0
GAUGE_SECONDS = 30.0


@dataclass(frozen=True)
class WriterOptions:
    """How one connector's writer paces and retries."""

    flush_interval: float = 5.0
    rate_limit: int = 100
    rate_window: float = 10.0
    max_attempts: int = 10
    lease_seconds: float = 120.0
    daily_reset_timezone: str = "UTC"
    owner_interval: float = 900.0
    #: First wait before an account's write is tried again after a per-account error (doubles each time).
    retry_base: float = 2.0


class ConnectorWriter:
    """Writes one connector's pending rows while holding its writer lock."""

    def __init__(self, engine: AsyncEngine, connector: Connector, options: WriterOptions, *,
                 owners: OwnerSync | None = None, wall: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._engine = engine
        self.connector = connector
        self.options = options
        self.owners = owners
        self._wall = wall
        self._mono = monotonic
        self._sleep = sleep
        self.budget = RollingBudget(options.rate_limit, options.rate_window)
        self.circuit = Circuit()
        self._schema: Schema | None = None
        self._pause_until = 0.0  # a pause held in memory (rate limit, refused token), on the monotonic clock
        self._claimer = Claimer(crm_writes, pending=and_(crm_writes.c.connector == connector.name,
                                                         crm_writes.c.status == "pending"),
                                lease_seconds=options.lease_seconds)
        self._next_owner_sync = 0.0
        self._next_gauges = 0.0
        self.calls = 0
        self.id = uuid.uuid4().hex[:8]
        WRITER.labels(connector.name).set(0)
        connector.gate = self.gate  # every call the connector makes waits at this writer's budget

    # --- pacing -------------------------------------------------------------------------------------------------

    async def gate(self) -> None:
        """Wait until the budget allows a call, then count it."""
        while True:
            wait = self.budget.wait(self._mono())
            if wait <= 0:
                break
            await self._sleep(wait)
        self.budget.take(self._mono())
        self.calls += 1

    async def paused(self) -> str | None:
        """Why the connector may not call now (None: it may): a stored pause, the circuit, a held pause."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(connector_state.c.paused_until, connector_state.c.pause_reason)
                                      .where(connector_state.c.connector == self.connector.name))).first()
        if row is not None and row.paused_until is not None and row.paused_until > self._wall():
            PAUSED.labels(self.connector.name).set(1)
            return f"{row.pause_reason} until {row.paused_until.isoformat()}"
        if not self.circuit.allows(self._mono()) or self._mono() < self._pause_until:
            PAUSED.labels(self.connector.name).set(1)
            return "circuit open" if not self.circuit.allows(self._mono()) else "paused"
        PAUSED.labels(self.connector.name).set(0)
        return None

    async def _apply_pause(self, pause: Pause) -> None:
        name = self.connector.name
        CONNECTOR_PAUSES.labels(name, pause.kind).inc()
        now = self._mono()
        if pause.kind in ("daily_limit", "request_limit"):
            until = (next_daily_reset(self._wall(), self.options.daily_reset_timezone) if pause.kind == "daily_limit"
                     else self._wall() + timedelta(seconds=pause.seconds))
            await self._store_state(paused_until=until, pause_reason=f"{pause.kind}: {pause.message}"[:500])
            log.error("CRM API limit reached; paused (stored, for every replica)",
                      extra={"connector": name, "until": until.isoformat(), "crm_message": pause.message})
        elif pause.kind == "rate_limit":
            # The portal's limit is shared with other integrations: count the whole window as spent.
            self.budget.spend_all(now)
            log.warning("CRM rate limit; backing off one window",
                        extra={"connector": name, "crm_message": pause.message})
        elif pause.kind == "outage":
            seconds = self.circuit.failed(now)
            log.warning("CRM unavailable; circuit open", extra={"connector": name, "pause_s": seconds,
                                                                 "crm_message": pause.message})
        else:
            self._pause_until = now + pause.seconds
            log.error("CRM refused the credentials; paused", extra={"connector": name, "pause_s": pause.seconds,
                                                                    "crm_message": pause.message})

    async def _store_state(self, **values: Any) -> None:
        stmt = insert(connector_state).values(connector=self.connector.name, updated_at=func.now(), **values)
        stmt = stmt.on_conflict_do_update(index_elements=[connector_state.c.connector],
                                          set_={**values, "updated_at": func.now()})
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    # --- leadership ---------------------------------------------------------------------------------------------

    async def became_writer(self) -> None:
        """Take over: rows the previous writer had in flight are due again, and its recent calls are counted."""
        name = self.connector.name
        w = crm_writes.c
        async with self._engine.begin() as conn:
            await conn.execute(update(crm_writes).where(w.connector == name, w.lease_until.is_not(None))
                               .values(lease_until=None, lease_token=None))
            last = (await conn.execute(select(connector_state.c.last_call_at)
                                       .where(connector_state.c.connector == name))).scalar()
        if last is not None and (self._wall() - last).total_seconds() < self.options.rate_window:
            self.budget.spend_all(self._mono())  # the previous writer may have spent the window
        await self._store_state(writer=self.id, writer_since=self._wall())
        self._schema = None
        WRITER.labels(name).set(1)
        log.info("CRM writer active", extra={"connector": name, "writer": self.id})

    def stopped_writing(self) -> None:
        """This replica is no longer the writer."""
        WRITER.labels(self.connector.name).set(0)

    # --- one cycle ----------------------------------------------------------------------------------------------

    async def cycle(self) -> int:
        """Flush what is due, sync owners when it is time, publish owner changes; return accounts written."""
        written = 0
        if await self.paused() is None:
            written = await self.flush()
        if self.owners is not None:
            if await self.paused() is None:
                # Every cycle: accounts never checked (newly written, or after a reconcile); each interval: all.
                sweep = self._mono() >= self._next_owner_sync
                pause = await self.owners.sync(self.connector, sweep=sweep)
                if sweep:
                    self._next_owner_sync = self._mono() + self.options.owner_interval
                if pause is not None:
                    await self._apply_pause(pause)
            await self.owners.publish()
        if self._mono() >= self._next_gauges:
            # A count over every row of the connector: every GAUGE_SECONDS, not on every flush.
            await self.refresh_gauges()
            self._next_gauges = self._mono() + GAUGE_SECONDS
        return written

    def owners_due_now(self) -> None:
        """Read owners on the next cycle (after a reconcile)."""
        self._next_owner_sync = 0.0

    async def prepare(self) -> Schema | None:
        """The connector's schema check (once per leadership); None while the CRM cannot be prepared."""
        if self._schema is None:
            try:
                self._schema = await self.connector.prepare()
            except (ConnectorUnavailable, httpx.HTTPError, OSError) as exc:
                seconds = self.circuit.failed(self._mono())
                log.warning("CRM set-up failed; retrying", extra={"connector": self.connector.name,
                                                                "error": str(exc)[:500], "retry_s": seconds})
                return None
            await self._store_state(problems=list(self._schema.problems))
        return self._schema

    async def flush(self) -> int:
        """Write the due rows, ``max_batch`` at a time, until a claim comes back short (what was due is written;
        changes arriving meanwhile wait for the next interval, so they coalesce) or the connector must pause."""
        schema = await self.prepare()
        if schema is None:
            return 0
        written = 0
        while True:
            rows = await self._claimer.claim(self._engine, self.connector.max_batch)
            if not rows:
                return written
            done, pause = await self._write(rows, schema)
            written += done
            if pause is not None:
                await self._apply_pause(pause)
                return written
            self.circuit.succeeded()
            if len(rows) < self.connector.max_batch:
                return written

    async def _write(self, rows: Sequence[Any], schema: Schema) -> tuple[int, Pause | None]:
        name = self.connector.name
        matches = await self._match_values([r.account_id for r in rows])
        full_state = bool(getattr(self.connector, "full_state", False))
        writes: list[PendingWrite] = []
        unchanged: list[Any] = []
        sent: dict[str, dict[str, str]] = {}
        for row in rows:
            desired = {k: v for k, v in dict(row.properties).items() if k not in schema.excluded}
            delta = changed(desired, dict(row.sent))
            if not delta:
                unchanged.append(row)
                continue
            if full_state:
                delta = desired
            sent[row.account_id] = delta
            # A value already searched for in vain is not searched again (until it changes, or a reconcile).
            match = matches.get(row.account_id)
            writes.append(PendingWrite(row.account_id, delta, match if match != row.match_tried else None,
                                       row.version))
        outcome = WriteOutcome(written={r.account_id for r in unchanged})
        if writes:
            with traced(f"crm_sync.{name}.write", rows[0].traceparent, accounts=len(writes)):
                outcome.merge(await self.connector.write(writes))
            await self._store_state(last_call_at=self._wall())
        await self._record({r.account_id: r for r in rows}, outcome, sent,
                           {w.account_id: w.match_value for w in writes if w.match_value})
        for label, count in (("written", len(outcome.written) - len(unchanged)), ("unchanged", len(unchanged)),
                             ("linked", len(outcome.linked)), ("created", len(outcome.created)),
                             ("unmatched", len(outcome.unmatched)), ("failed", len(outcome.failed)),
                             ("retry", len(outcome.retry))):
            if count:
                CRM_WRITES.labels(name, label).inc(count)
        return len(outcome.written), outcome.pause

    async def _match_values(self, accounts: list[str]) -> dict[str, str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(account_state.c.account_id, account_state.c.match_value).where(
                account_state.c.account_id.in_(accounts), account_state.c.match_value.is_not(None)))
            return {r.account_id: r.match_value for r in rows}

    async def _record(self, rows: dict[str, Any], outcome: WriteOutcome, sent: dict[str, dict[str, str]],
                      searched: dict[str, str]) -> None:
        w = crm_writes.c
        name = self.connector.name

        def key(account_id: str) -> dict[str, Any]:
            row = rows[account_id]
            return {"a": account_id, "t": row.lease_token, "v": row.version}

        mine = fenced(crm_writes, and_(w.connector == name, w.account_id == bindparam("a")), bindparam("t"))  # type: ignore[arg-type]
        same = w.version == bindparam("v")
        async with self._engine.begin() as conn:
            if outcome.written:
                await conn.execute(
                    update(crm_writes).where(mine).values(
                        sent=w.sent.op("||")(bindparam("d", type_=JSONB)),
                        written_version=bindparam("v"), status=case((same, "synced"), else_="pending"),
                        status_since=func.now(), written_at=func.now(), attempts=0, lease_until=None,
                        lease_token=None, last_error=None, reason=None),
                    [{**key(a), "d": {k: digest(v) for k, v in sent.get(a, {}).items()}} for a in outcome.written],
                )
            if outcome.unmatched:
                await conn.execute(
                    update(crm_writes).where(mine).values(
                        status=case((same, "unmatched"), else_="pending"), reason="unmatched",
                        last_error=bindparam("m"), status_since=func.now(), lease_until=None, lease_token=None,
                        match_tried=func.coalesce(bindparam("s", type_=Text), w.match_tried)),
                    [{**key(a), "m": m, "s": searched.get(a)} for a, m in outcome.unmatched.items()],
                )
            if outcome.failed:
                await conn.execute(
                    update(crm_writes).where(mine).values(
                        status=case((same, "failed"), else_="pending"), reason=bindparam("r"),
                        last_error=bindparam("m"), status_since=func.now(), lease_until=None, lease_token=None),
                    [{**key(a), "r": f.reason, "m": f.message} for a, f in outcome.failed.items()],
                )
            if outcome.retry:
                await self._record_retries(conn, outcome, key, mine)
        self._log_outcome(rows, outcome)

    async def _record_retries(self, conn: Any, outcome: WriteOutcome, key: Callable[[str], dict[str, Any]],
                              mine: Any) -> None:
        w = crm_writes.c
        if outcome.pause is not None:
            # The connector's condition, not the account's: no attempt is counted; the pause gates the next try.
            await conn.execute(update(crm_writes).where(mine).values(
                lease_until=None, lease_token=None, last_error=bindparam("m")),
                [{**key(a), "m": m} for a, m in outcome.retry.items()])
            return
        params = [{**key(a), "m": m} for a, m in outcome.retry.items()]
        gave_up = w.attempts + 1 >= self.options.max_attempts
        delay = func.least(RETRY_CEILING_SECONDS, self.options.retry_base * func.power(2.0, w.attempts))
        await conn.execute(update(crm_writes).where(mine).values(
            attempts=w.attempts + 1, last_error=bindparam("m"), lease_until=None, lease_token=None,
            status=case((gave_up, "failed"), else_=w.status), reason=case((gave_up, "gave_up"), else_=w.reason),
            next_attempt_at=func.now() + delay * literal_column("interval '1 second'")), params)

    def _log_outcome(self, rows: dict[str, Any], outcome: WriteOutcome) -> None:
        name = self.connector.name
        # The log connector already wrote its own "CRM UPDATE (no CRM configured...)" line per account.
        for account_id in sorted(outcome.written) if name != "log" else ():
            # One line per account, each in the trace of the answer that changed its scores.
            with traced(f"crm_sync.{name}.written", rows[account_id].traceparent, account_id=account_id):
                log.info("CRM updated", extra={"connector": name, "account_id": account_id,
                                               "linked": account_id in outcome.linked,
                                               "created_company": account_id in outcome.created})
        if outcome.unmatched:
            log.warning("CRM has no record for these accounts (listed at /v1/crm/unmatched)",
                        extra={"connector": name, "accounts": sorted(outcome.unmatched)[:20],
                               "count": len(outcome.unmatched)})
        for account_id, failure in outcome.failed.items():
            log.error("CRM refused an account's write (dead letter)",
                      extra={"connector": name, "account_id": account_id, "reason": failure.reason,
                             "crm_message": failure.message})
        if outcome.retry:
            log.warning("CRM writes to retry", extra={"connector": name, "count": len(outcome.retry),
                                                      "error": next(iter(outcome.retry.values()))})

    async def refresh_gauges(self) -> None:
        """Export the accounts per status and the dead letters per reason."""
        name = self.connector.name
        w = crm_writes.c
        async with self._engine.connect() as conn:
            counts = (await conn.execute(select(w.status, w.reason, func.count()).where(w.connector == name)
                                         .group_by(w.status, w.reason))).all()
        statuses: dict[str, int] = dict.fromkeys(("pending", "synced", "unmatched", "failed"), 0)
        reasons: dict[str, int] = dict.fromkeys(("invalid_value", "ambiguous_match", "already_linked", "rejected",
                                                 "gave_up"), 0)
        for status, reason, count in counts:
            statuses[status] = statuses.get(status, 0) + count
            if status == "failed" and reason:
                reasons[reason] = reasons.get(reason, 0) + count
        for status, count in statuses.items():
            ACCOUNTS.labels(name, status).set(count)
        for reason, count in reasons.items():
            DEAD_LETTERS.labels(name, reason).set(count)

