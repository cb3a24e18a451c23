"""Delivers alert rows to Slack exactly once: a DM to the account's owner, or a channel.

``chat.postMessage`` has no idempotency key, so a post goes like this:
1. claim due rows with a fenced lease (a fresh ``lease_token``); never more rows than run at once, and each
   row's work is bounded well inside the lease, so no claimed row outlives its lease unfinished;
2. resolve the target (owner → Slack user → DM id, or a channel) and take the channel's slot in the shared
   pace (one post per interval per channel across replicas);
3. record the attempt (channel, time, digest of the facts shown) in the row, fenced by the token;
4. post, tagged with message metadata naming the alert;
5. record the outcome, fenced: only the lease holder writes it.
A row whose attempt was recorded and whose outcome was not (the process died, the call timed out) is *in
doubt*: before anything else it is read back with ``conversations.history`` from the recorded channel, and
the message carrying its alert id is adopted; only if none is there is it posted again.

A newer revision of a posted alert (its comment arrived, the respondent was erased) edits the message with
``chat.update``. Permanent Slack errors fail the alert at once (counted); 429 pauses the channel for every
replica for Retry-After; other failures back off and give up after a bounded number of attempts. Without a
Slack token alerts are written to the log, clearly labelled, so the platform does its whole job on a laptop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import quote

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import DateTime, Row, String, Text, and_, bindparam, case, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerts.domain.delivery import (
    Delivered,
    Failed,
    Outcome,
    Paced,
    Retry,
    RowState,
    after_call,
    backoff,
    give_up_after_read_back,
    next_action,
    read_back_window,
)
from alerts.domain.fatigue import Candidate, Post, QuietHours, Silence, Silenced, decide
from alerts.domain.fatigue import Wait as QuietWait
from alerts.domain.handling import Handling
from alerts.domain.message import AccountContext, AlertFacts, render
from alerts.pacing import ChannelBudget
from alerts.slack import SlackClient, alert_metadata, find_alert
from alerts.tables import alerts, silences
from alerts.targets import (
    Snapshot,
    Target,
    TargetResolver,
    Unroutable,
    Wait,
    read_snapshot,
    snapshot_of,
    snapshot_query,
)
from alerts.wakeup import Wakeup
from pulse_shared.db import is_transient
from pulse_shared.events import ScoreSummary, utcnow
from pulse_shared.outbox import Claimer, fenced
from pulse_shared.tracing import traced

log = logging.getLogger(__name__)

ALERTS = Counter("pulse_alerts_total", "Alerts by rule and delivery outcome.", ["rule", "outcome"])
READ_BACKS = Counter("pulse_alerts_read_backs_total", "Posts in doubt read back from Slack, by result.", ["result"])
DELIVERY_LATENCY = Histogram(
    "pulse_alerts_delivery_seconds", "From the alert row's creation to Slack's acknowledgement of the post.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
PENDING_GAUGE = Gauge("pulse_alerts_pending", "Alerts waiting to be posted or edited (holds and backoffs included).")
PENDING = ("pending", "update_pending")
MAX_HISTORY_PAGES = 20


def _digest(facts: Any) -> Any:
    """md5 of the facts' canonical JSONB text (jsonb normalises key order and spacing)."""
    return func.md5(cast(cast(facts, JSONB), String))


#: What a message shows, as stored: the alert's facts and the version of its group (members joined, changed).
SHOWN = alerts.c.facts.op("||")(func.jsonb_build_object("group_version", alerts.c.group_version))


def _shown(row: Row[Any]) -> dict[str, Any]:
    """What the message rendered for ``row`` (as claimed) shows, comparable with :data:`SHOWN`."""
    return {**row.facts, "group_version": row.group_version}


@dataclass(frozen=True)
class PostChecks:
    """What the fatigue decision reads before a first post."""

    silences: list[Silence]
    last_posted_at: datetime | None


def _post_snapshot_query() -> Any:
    """The account snapshot with the active silences and the cooldown's last post riding along."""
    s, prior = silences.c, alerts.alias("prior").c
    now = bindparam("p_now", type_=DateTime(timezone=True))
    active = (select(func.coalesce(func.jsonb_agg(func.jsonb_build_object(
        "id", s.id, "starts_at", s.starts_at, "ends_at", s.ends_at, "account_id", s.account_id, "rule", s.rule,
        "labels", s.labels)), cast(literal("[]"), JSONB)))
        .where(s.ends_at > now, s.starts_at <= now).scalar_subquery().label("silences"))
    last = (select(func.max(prior.delivered_at))
            .where(prior.account_id == bindparam("s_account", type_=Text), prior.rule == bindparam("p_rule"),
                   prior.receiver == bindparam("p_receiver"), prior.alert_id != bindparam("p_alert"),
                   prior.status.in_(("sent", "update_pending")))
            .scalar_subquery().label("last_posted"))
    return snapshot_query(active, last)


class AlertDispatcher:
    """Drains the alerts outbox."""

    def __init__(
        self,
        engine: AsyncEngine,
        slack: SlackClient | None,
        *,
        default_channel: str | None,
        max_attempts: int,
        lease_seconds: float = 60.0,
        concurrency: int = 16,
        retry_base_seconds: float = 2.0,
        channel_interval_seconds: float = 1.0,
        read_back_margin_seconds: float = 120.0,
        crm_url_template: str | None = None,
        interactive: bool = False,
        wakeup: Wakeup | None = None,
        idle_seconds: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        # Every statement of the dispatcher stands alone (fenced by the lease token, or a read): autocommit
        # saves the BEGIN and COMMIT round trips of each.
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._engine = engine
        self._slack = slack
        self._targets = TargetResolver(engine, slack, default_channel=default_channel) if slack else None
        self._default_channel = default_channel
        self._budget = ChannelBudget(engine, interval_seconds=channel_interval_seconds,
                                     reserve_seconds=lease_seconds * 0.75)
        self._max_attempts = max_attempts
        self._lease = lease_seconds
        # Each row's whole work fits well inside its lease: an unfinished row is never taken over mid-call.
        self._row_budget = lease_seconds * 0.75
        self._concurrency = concurrency
        self._retry_base = retry_base_seconds
        self._margin = read_back_margin_seconds
        self._crm_url = crm_url_template
        self._interactive = interactive
        self.wakeup = wakeup or Wakeup()
        self._idle = idle_seconds
        self._clock = clock
        self._claimer = Claimer(alerts, pending=alerts.c.status.in_(PENDING), lease_seconds=lease_seconds)
        # The statements every post runs, built once (constructing a statement costs more than running it).
        mine = fenced(alerts, alerts.c.alert_id == bindparam("w_id"), bindparam("w_token"))  # type: ignore[arg-type]
        self._attempt_stmt = (update(alerts).where(mine).values(
            attempt_at=func.now(), attempt_channel=bindparam("w_channel"),
            attempt_digest=_digest(bindparam("w_facts", type_=JSONB))).returning(alerts.c.alert_id))
        self._delivered_stmt = (update(alerts).where(mine).values(
            status=case((_digest(SHOWN) == alerts.c.attempt_digest, "sent"), else_="update_pending"),
            slack_ts=bindparam("w_ts"), channel=bindparam("w_channel"), attempts=0, last_error=None,
            delivered_at=func.coalesce(alerts.c.delivered_at, func.now()), next_attempt_at=func.now(),
            lease_until=None, lease_token=None, updated_at=func.now()).returning(alerts.c.alert_id))
        due = func.greatest(alerts.c.next_attempt_at, func.coalesce(alerts.c.lease_until, alerts.c.next_attempt_at))
        self._post_snapshot = _post_snapshot_query()
        self._members_stmt = (select(alerts.c.facts).where(alerts.c.group_leader == bindparam("leader"))
                              .order_by(alerts.c.created_at, alerts.c.alert_id))
        self._due_stmt = select(func.extract("epoch", func.min(due) - func.now()), func.count()).where(
            alerts.c.status.in_(PENDING))

    # --- loops ------------------------------------------------------------------------------------------

    async def deliver_due(self) -> bool:
        """Claim what is due (up to the concurrency), deliver it, and return whether there was any."""
        rows = await self._claim(self._concurrency)
        await asyncio.gather(*(self._process(row) for row in rows))
        return bool(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop``: rows run concurrently, new ones are claimed as slots free up, and the loop
        sleeps until a wake-up (a committed alert, a finished row) or the next row due by time."""
        inflight: set[asyncio.Task[None]] = set()
        failures = 0
        while not stop.is_set():
            try:
                free = self._concurrency - len(inflight)
                rows = await self._claim(free) if free > 0 else []
                for row in rows:
                    task = asyncio.create_task(self._process(row))
                    inflight.add(task)
                    task.add_done_callback(functools.partial(self._done, inflight))
                if len(rows) == free and free > 0:
                    continue  # a full claim: more may be due at once
                # A short claim took everything due: no second claim, only when the next row falls due.
                wait = await self._seconds_until_due() if free > len(rows) else self._idle
                failures = 0
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                wait = min(10.0, 0.2 * 2**failures)
                log.warning("alerts dispatcher: transient failure", extra={"error": repr(exc)[:300]})
            await self._wait(stop, wait)
        if inflight:
            # Drain: rows in flight finish (each is bounded by its budget) so nothing is left in doubt.
            await asyncio.wait(inflight, timeout=self._row_budget)

    def _done(self, inflight: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        inflight.discard(task)
        self.wakeup.notify()  # a slot is free

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        waker = asyncio.ensure_future(self.wakeup.wait(seconds))
        try:
            await asyncio.wait({stopper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopper, waker):
                task.cancel()

    async def _claim(self, limit: int) -> list[Row[Any]]:
        return list(await self._claimer.claim(self._engine, limit))

    async def _seconds_until_due(self) -> float:
        async with self._engine.connect() as conn:
            row = (await conn.execute(self._due_stmt)).one()
        PENDING_GAUGE.set(row[1])
        if row[0] is None:
            return self._idle
        return max(0.0, min(self._idle, float(row[0])))

    # --- one row ----------------------------------------------------------------------------------------

    async def _process(self, row: Row[Any]) -> None:
        # The Slack post continues the trace of the answer that raised the alert.
        with traced("alerts.deliver", row.traceparent, alert_id=row.alert_id):
            try:
                async with asyncio.timeout(self._row_budget):
                    await self._dispatch(row)
            except TimeoutError:
                log.warning("alert delivery ran out of its lease budget; will retry (reading back first if a "
                            "post was attempted)", extra={"alert_id": row.alert_id})
                await self._release(row, at=self._clock() + backoff(row.attempts, base_seconds=self._retry_base),
                                    error="timeout", count=True)
            except Exception as exc:
                if is_transient(exc):
                    # The lease expires and the row is taken again (read back first if a post was attempted).
                    log.warning("alert delivery interrupted", extra={"alert_id": row.alert_id, "error": repr(exc)})
                    return
                log.exception("alert delivery failed on an unexpected error", extra={"alert_id": row.alert_id})
                await self._finish(row, status="failed", outcome="error", error=f"internal error: {exc!r}"[:500])

    async def _dispatch(self, row: Row[Any]) -> None:
        facts = AlertFacts.model_validate(row.facts)
        members = await self._members(row, facts)
        state = RowState(row.status, row.attempt_at, row.slack_ts, withdrawn=_withdrawn(facts, members))
        action = next_action(state, slack_configured=self._slack is not None)
        if action == "log":
            # Silences, quiet hours and cooldowns hold in log-only mode too (what a laptop run shows is true).
            if row.status == "update_pending":
                await self._log_only(row, facts, members, await read_snapshot(self._engine, row.account_id))
            else:
                account, checks = await self._read_for_post(row)
                if await self._may_post(row, facts, checks):
                    await self._log_only(row, facts, members, account)
        elif action == "update":
            await self._update(row, facts, members)
        elif action == "read_back":
            await self._read_back(row, facts, members)
        elif action == "withdraw":
            await self._finish(row, status="withdrawn", outcome="withdrawn")
        else:
            await self._post(row, facts, members)

    async def _members(self, row: Row[Any], facts: AlertFacts) -> list[AlertFacts]:
        """The alerts grouped with this one (an escalation's copy lists its original's), oldest first."""
        leader = facts.escalated_from or (row.alert_id if row.group_wait_s is not None else None)
        if leader is None:
            return []
        async with self._engine.connect() as conn:
            found = await conn.execute(self._members_stmt, {"leader": leader})
            return [AlertFacts.model_validate(r.facts) for r in found]

    async def _post(self, row: Row[Any], facts: AlertFacts, members: list[AlertFacts]) -> None:
        assert self._slack is not None
        assert self._targets is not None
        account, checks = await self._read_for_post(row)
        if not await self._may_post(row, facts, checks):
            return
        target = await self._targets.resolve(row.receiver, row.fallback_channel, account)
        if isinstance(target, Wait):
            ALERTS.labels(row.rule, "lookup_wait").inc()
            log.info("alert waits for Slack to answer a lookup", extra={"alert_id": row.alert_id,
                                                                         "reason": target.reason})
            await self._release(row, at=self._clock() + _seconds(target.seconds), error=target.reason, count=False)
            return
        if isinstance(target, Unroutable):
            await self._finish(row, status="failed", outcome="no_target", error=target.reason)
            log.error("alert has nowhere to go", extra={"alert_id": row.alert_id, "reason": target.reason})
            return
        text, blocks = render(facts, owner_mention=target.mention, context=self._context(row.account_id, account),
                              handling=Handling.model_validate(row.handling or {}),
                              buttons_for=row.alert_id if self._interactive else None, members=members)
        # The channel's budget, then the attempt record, on one connection (each statement commits alone).
        async with self._engine.connect() as conn:
            opens = await self._budget.take(target.channel, conn)
            recorded = opens is None and await self._record_attempt(row, target, conn)
            if opens is None and not recorded:
                await self._budget.posted(target.channel, conn)  # no post: the reservation is given back
                return  # the lease was taken over: the new holder decides
        if opens is not None:
            await self._release(row, at=opens, error=None, count=False, keep_error=True)
            return
        try:
            result = await self._slack.post_message(target.channel, text, blocks,
                                                    metadata=alert_metadata(row.alert_id))
        except BaseException:
            await self._budget.posted(target.channel)
            raise
        outcome = after_call(result, channel=target.channel, attempts=row.attempts, max_attempts=self._max_attempts,
                             now=self._clock(), base_seconds=self._retry_base)
        await self._posted(row, outcome, target.channel)

    async def _posted(self, row: Row[Any], outcome: Outcome, channel: str) -> None:
        """Record the post's outcome; the channel opens again one interval after the call returned (on the
        delivery's connection, in the common case)."""
        if isinstance(outcome, Delivered):
            await self._delivered(row, outcome.ts, outcome.channel, reopen=channel)
            DELIVERY_LATENCY.observe(max(0.0, (self._clock() - row.created_at).total_seconds()))
            log.info("alert posted to Slack", extra={"alert_id": row.alert_id, "channel": outcome.channel,
                                                     "ts": outcome.ts})
        elif isinstance(outcome, Paced):
            ALERTS.labels(row.rule, "rate_limited").inc()
            await self._budget.pause(channel, (outcome.until - self._clock()).total_seconds())
            await self._release(row, at=outcome.until, error="ratelimited", count=False, clear_attempt=True)
        elif isinstance(outcome, Retry):
            await self._budget.posted(channel)
            ALERTS.labels(row.rule, "retried").inc()
            await self._release(row, at=outcome.at, error=outcome.error, count=True,
                                clear_attempt=not outcome.in_doubt)
        else:
            await self._budget.posted(channel)
            await self._finish(row, status="failed", outcome=outcome.outcome, error=outcome.error)
            log.error("alert failed", extra={"alert_id": row.alert_id, "error": outcome.error,
                                             "outcome": outcome.outcome})

    async def _read_back(self, row: Row[Any], facts: AlertFacts, members: list[AlertFacts]) -> None:
        assert self._slack is not None
        oldest = read_back_window(row.attempt_at, margin_seconds=self._margin)
        cursor: str | None = None
        for _ in range(MAX_HISTORY_PAGES):
            page = await self._slack.history(row.attempt_channel, oldest=oldest, cursor=cursor)
            if not page.ok:
                outcome = after_call(page, channel=row.attempt_channel, attempts=row.attempts,
                                     max_attempts=self._max_attempts, now=self._clock(), base_seconds=self._retry_base)
                READ_BACKS.labels("error").inc()
                if isinstance(outcome, Paced):
                    await self._release(row, at=outcome.until, error="ratelimited", count=False)
                elif isinstance(outcome, Failed):
                    # Without reading back, a re-post could be a duplicate: the alert is failed, visibly.
                    await self._finish(row, status="failed", outcome="in_doubt",
                                       error=f"post in doubt and conversations.history failed: {outcome.error}")
                    log.error("alert in doubt could not be read back", extra={"alert_id": row.alert_id,
                                                                               "error": outcome.error})
                elif isinstance(outcome, Retry):
                    await self._release(row, at=outcome.at, error=f"read-back: {outcome.error}", count=True)
                return
            data = page.data or {}
            ts = find_alert(list(data.get("messages") or []), row.alert_id)
            if ts:
                READ_BACKS.labels("found").inc()
                await self._delivered(row, ts, row.attempt_channel)
                log.info("alert in doubt found in Slack and adopted (not posted again)",
                         extra={"alert_id": row.alert_id, "channel": row.attempt_channel, "ts": ts})
                return
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "") or None
            if not data.get("has_more") or not cursor:
                break
        READ_BACKS.labels("not_found").inc()
        if give_up_after_read_back(row.attempts, self._max_attempts):
            await self._finish(row, status="failed", outcome="gave_up", error=row.last_error or "gave up")
            return
        if not await self._clear_attempt(row):
            return
        if _withdrawn(facts, members):
            await self._finish(row, status="withdrawn", outcome="withdrawn")
            return
        await self._post(row, facts, members)

    async def _update(self, row: Row[Any], facts: AlertFacts, members: list[AlertFacts]) -> None:
        assert self._slack is not None
        account = await read_snapshot(self._engine, row.account_id)
        mention = (f"<@{account.user_id}>" if row.receiver == "owner" and account.user_id
                   and account.dm_channel == row.channel else None)
        text, blocks = render(facts, owner_mention=mention, context=self._context(row.account_id, account),
                              handling=Handling.model_validate(row.handling or {}),
                              buttons_for=row.alert_id if self._interactive else None, members=members)
        result = await self._slack.update_message(row.channel, row.slack_ts, text, blocks,
                                                  metadata=alert_metadata(row.alert_id))
        outcome = after_call(result, channel=row.channel, attempts=row.attempts, max_attempts=self._max_attempts,
                             now=self._clock(), base_seconds=self._retry_base)
        if isinstance(outcome, Delivered):
            await self._edited(row)
            ALERTS.labels(row.rule, "updated").inc()
            log.info("alert message updated in Slack", extra={"alert_id": row.alert_id, "channel": row.channel})
        elif isinstance(outcome, Paced):
            await self._release(row, at=outcome.until, error="ratelimited", count=False)
        elif isinstance(outcome, Retry):
            await self._release(row, at=outcome.at, error=f"edit: {outcome.error}", count=True)
        else:
            # The message stays as it was posted (it may have been deleted in Slack): visible, counted.
            await self._finish(row, status="sent", outcome="update_failed", error=f"edit failed: {outcome.error}")
            log.error("alert message could not be edited", extra={"alert_id": row.alert_id, "error": outcome.error})

    async def _log_only(self, row: Row[Any], facts: AlertFacts, members: list[AlertFacts], account: Snapshot) -> None:
        text, _blocks = render(facts, owner_mention=None, context=self._context(row.account_id, account),
                               members=members)
        edit = row.status == "update_pending"
        message = ("ALERT UPDATED (Slack not configured: set SLACK_BOT_TOKEN to post it)" if edit
                   else "ALERT (Slack not configured: set SLACK_BOT_TOKEN to post it)")
        log.warning(message, extra={"alert_id": row.alert_id, "rule": row.rule, "receiver": row.receiver,
                                    "would_go_to": self._would_go_to(row, account), "alert": text,
                                    "comment": facts.comment, **({"grouped": 1 + len(members)} if members else {})})
        await self._settle(row, delivered="logged", outcome="logged")

    async def _read_for_post(self, row: Row[Any]) -> tuple[Snapshot, PostChecks]:
        """The account snapshot, the active silences and the last post of this account, rule and receiver:
        everything a first post needs, in one round trip."""
        params = {"s_account": row.account_id, "p_now": self._clock(), "p_rule": row.rule,
                  "p_receiver": row.receiver, "p_alert": row.alert_id}
        async with self._engine.connect() as conn:
            found = (await conn.execute(self._post_snapshot, params)).one()
        active = [Silence(int(s["id"]), datetime.fromisoformat(s["starts_at"]), datetime.fromisoformat(s["ends_at"]),
                          s["account_id"], s["rule"], s["labels"] or {}) for s in found.silences or []]
        return snapshot_of(found), PostChecks(active, found.last_posted)

    async def _may_post(self, row: Row[Any], facts: AlertFacts, checks: PostChecks) -> bool:
        """Silences, quiet hours and the cooldown, decided before a first post (never before an edit)."""
        now = self._clock()
        candidate = Candidate(
            row.account_id, row.rule, facts.labels,
            quiet_hours=(QuietHours(time.fromisoformat(row.quiet_hours["start"]),
                                    time.fromisoformat(row.quiet_hours["end"]), row.quiet_hours.get("tz", "UTC"))
                         if row.quiet_hours else None),
            cooldown=timedelta(seconds=row.cooldown_s) if row.cooldown_s else None)
        last = checks.last_posted_at if candidate.cooldown is not None else None
        decision = decide(candidate, silences=checks.silences, last_posted_at=last, now=now)
        if isinstance(decision, Post):
            return True
        if isinstance(decision, Silenced):
            await self._finish(row, status="silenced", outcome="silenced", error=f"silence {decision.silence_id}")
            log.info("alert silenced", extra={"alert_id": row.alert_id, "silence": decision.silence_id})
        elif isinstance(decision, QuietWait):
            await self._release(row, at=decision.until, error="quiet hours", count=False)
            log.info("alert waits for the end of quiet hours", extra={"alert_id": row.alert_id,
                                                                       "until": decision.until.isoformat()})
        else:
            await self._finish(row, status="suppressed", outcome="suppressed",
                               error=f"cooldown: posted for this account and rule at "
                                     f"{decision.last_posted_at.isoformat()}")
            log.info("alert suppressed by its cooldown", extra={"alert_id": row.alert_id})
        return False

    # --- row updates (all fenced by the lease token) ------------------------------------------------------

    def _mine(self, row: Row[Any]) -> Any:
        return fenced(alerts, alerts.c.alert_id == row.alert_id, row.lease_token)

    async def _record_attempt(self, row: Row[Any], target: Target, conn: AsyncConnection) -> bool:
        done = await conn.execute(self._attempt_stmt, {"w_id": row.alert_id, "w_token": row.lease_token,
                                                       "w_channel": target.channel, "w_facts": _shown(row)})
        return done.first() is not None

    async def _clear_attempt(self, row: Row[Any]) -> bool:
        async with self._engine.begin() as conn:
            done = await conn.execute(update(alerts).where(self._mine(row))
                                      .values(attempt_at=None, attempt_channel=None).returning(alerts.c.alert_id))
            return done.first() is not None

    async def _delivered(self, row: Row[Any], ts: str, channel: str, *, reopen: str | None = None) -> None:
        """The post is in Slack: sent, or an edit is still due if the facts changed since the attempt (and the
        ``reopen`` channel's budget opens one interval from now, on the same connection)."""
        async with self._engine.begin() as conn:
            if reopen is not None:
                await self._budget.posted(reopen, conn)
            done = await conn.execute(self._delivered_stmt, {"w_id": row.alert_id, "w_token": row.lease_token,
                                                             "w_ts": ts, "w_channel": channel})
            mine = done.first() is not None
        self._count(row, "sent", mine)

    async def _edited(self, row: Row[Any]) -> None:
        # Sent only if neither the facts nor the handling changed while the edit was on its way.
        current = and_(_digest(SHOWN) == _digest(_shown(row)),
                       alerts.c.handling_version == row.handling_version)
        await self._write(row, None, {
            "status": case((current, "sent"), else_="update_pending"),
            "attempt_digest": _digest(_shown(row)), "attempts": 0, "last_error": None, "next_attempt_at": func.now(),
        })

    async def _settle(self, row: Row[Any], *, delivered: str, outcome: str) -> None:
        await self._write(row, outcome, {
            "status": case((_digest(SHOWN) == _digest(_shown(row)), delivered), else_="update_pending"),
            "attempt_digest": _digest(_shown(row)), "delivered_at": func.coalesce(alerts.c.delivered_at, func.now()),
            "next_attempt_at": func.now(),
        })

    async def _finish(self, row: Row[Any], *, status: str, outcome: str, error: str | None = None) -> None:
        await self._write(row, outcome, {"status": status, "last_error": error})

    async def _release(self, row: Row[Any], *, at: datetime, error: str | None, count: bool,
                       clear_attempt: bool = False, keep_error: bool = False) -> None:
        values: dict[str, Any] = {"next_attempt_at": at}
        if not keep_error:
            values["last_error"] = error
        if count:
            values["attempts"] = alerts.c.attempts + 1
        if clear_attempt:
            values.update(attempt_at=None, attempt_channel=None)
        await self._write(row, None, values)

    async def _write(self, row: Row[Any], outcome: str | None, values: dict[str, Any]) -> None:
        values = {**values, "lease_until": None, "lease_token": None, "updated_at": func.now()}
        async with self._engine.begin() as conn:
            done = await conn.execute(update(alerts).where(self._mine(row)).values(**values)
                                      .returning(alerts.c.alert_id))
            mine = done.first() is not None
        self._count(row, outcome, mine)

    def _count(self, row: Row[Any], outcome: str | None, mine: bool) -> None:
        if not mine:
            log.warning("alert outcome not recorded: the lease was taken over", extra={"alert_id": row.alert_id})
        elif outcome is not None:
            ALERTS.labels(row.rule, outcome).inc()

    # --- reads ------------------------------------------------------------------------------------------

    def _context(self, account_id: str, account: Snapshot) -> AccountContext:
        scores = tuple(ScoreSummary.model_validate(s) for s in (account.scores or []))
        url = self._crm_url.replace("{account_id}", quote(account_id, safe="")) if self._crm_url else None
        return AccountContext(name=account.name, scores=scores, crm_url=url)

    def _would_go_to(self, row: Row[Any], account: Snapshot) -> str:
        """Where a logged alert would have been posted (for a reader of the log-only mode)."""
        if row.receiver != "owner":
            return str(row.receiver)
        fallback = row.fallback_channel or self._default_channel or "no channel (SLACK_DEFAULT_CHANNEL unset)"
        return f"DM to {account.owner_email}" if account.owner_email else f"{fallback} (the account has no owner)"


def _withdrawn(facts: AlertFacts, members: list[AlertFacts]) -> bool:
    """Whether the alert no longer fires: a group goes out while any of its alerts still does."""
    return facts.withdrawn and all(m.withdrawn for m in members)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
