"""Where an alert goes in Slack: the owner's DM, a route's channel, or the default channel.

An owner's email is looked up with ``users.lookupByEmail`` and their DM opened with ``conversations.open``
(the DM's ``D...`` id is what an interrupted post is read back from); both are cached by email, and an owner
change simply names another email. A transient lookup failure means *wait*: a DM-bound alert never falls
back to a channel, and never fails, because Slack was briefly unavailable. An owner who is not on Slack (or
no owner) falls back to the route's channel, else ``SLACK_DEFAULT_CHANNEL``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, Text, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.slack import SlackClient, SlackResult
from alerts.tables import account_owners, accounts, slack_users


@dataclass(frozen=True)
class Target:
    """Post into ``channel``; ``mention`` names the owner in the message."""

    channel: str
    mention: str | None = None
    kind: str = "channel"  # "dm" | "channel"


@dataclass(frozen=True)
class Wait:
    """Slack could not answer a lookup now: try again after ``seconds`` (not counted as a failure)."""

    seconds: float
    reason: str


@dataclass(frozen=True)
class Unroutable:
    """No destination at all, or a lookup Slack refuses for good (a missing scope, a bad token)."""

    reason: str


Resolution = Target | Wait | Unroutable


@dataclass(frozen=True)
class Snapshot:
    """What one query tells about an account: its owner, their cached Slack identity, name and scores."""

    owner_email: str | None = None
    user_id: str | None = None
    dm_channel: str | None = None
    #: Seconds since the owner's Slack lookup (None: never looked up).
    lookup_age: float | None = None
    name: str | None = None
    scores: list[Any] | None = None


async def read_snapshot(engine: AsyncEngine, account_id: str) -> Snapshot:
    """The account's owner, cached Slack identity, name and scores, in one query."""
    async with engine.connect() as conn:
        row = (await conn.execute(SNAPSHOT, {"s_account": account_id})).one()
    return snapshot_of(row)


def snapshot_of(row: Any) -> Snapshot:
    """The :class:`Snapshot` in a row of :func:`snapshot_query`."""
    return Snapshot(row.owner_email, row.user_id, row.dm_channel,
                    None if row.lookup_age is None else float(row.lookup_age), row.name, row.scores)


def snapshot_query(*extra: Any) -> Select[Any]:
    """The one query behind :class:`Snapshot` (a read per alert, not one per table), built once; ``extra``
    columns (scalar subqueries) ride along, so a caller needing more about the alert pays no second trip."""
    key = select(bindparam("s_account", type_=Text).label("account_id")).subquery()
    return (
        select(account_owners.c.owner_email, slack_users.c.user_id, slack_users.c.dm_channel,
               func.extract("epoch", func.now() - slack_users.c.looked_up_at).label("lookup_age"),
               accounts.c.name, accounts.c.scores, *extra)
        .select_from(key)
        .outerjoin(account_owners, account_owners.c.account_id == key.c.account_id)
        .outerjoin(slack_users, slack_users.c.email == func.lower(func.trim(account_owners.c.owner_email)))
        .outerjoin(accounts, accounts.c.account_id == key.c.account_id)
    )


SNAPSHOT = snapshot_query()


class TargetResolver:
    """Resolves receivers to Slack conversations, caching lookups in PostgreSQL."""

    def __init__(self, engine: AsyncEngine, slack: SlackClient, *, default_channel: str | None,
                 found_ttl: timedelta = timedelta(days=7), missing_ttl: timedelta = timedelta(hours=1)) -> None:
        self._engine = engine
        self._slack = slack
        self._default = default_channel
        self._found_ttl = found_ttl.total_seconds()
        self._missing_ttl = missing_ttl.total_seconds()
        # One lookup per email at a time in this process: a burst for one owner makes one call, not twenty.
        self._locks: dict[str, asyncio.Lock] = {}

    async def resolve(self, receiver: str, fallback: str | None, account: Snapshot) -> Resolution:
        """Where ``receiver`` (``owner`` or ``channel:<id>``) of an alert on the account posts now."""
        if receiver.startswith("channel:"):
            return Target(receiver.partition(":")[2])
        channel = fallback or self._default
        if not account.owner_email:
            return Target(channel) if channel else Unroutable("the account has no owner and no channel is set "
                                                              "(SLACK_DEFAULT_CHANNEL or the route's channel)")
        found = self._cached(account) or await self._user(account.owner_email)
        if isinstance(found, Wait | Unroutable):
            return found
        user_id, dm = found
        if user_id and dm:
            return Target(dm, f"<@{user_id}>", kind="dm")
        if channel:
            return Target(channel)
        return Unroutable(f"the owner {account.owner_email} is not on Slack and no channel is set")

    def _cached(self, account: Snapshot) -> tuple[str | None, str | None] | None:
        if account.lookup_age is None:
            return None
        if account.user_id is None:
            return (None, None) if account.lookup_age < self._missing_ttl else None
        if account.dm_channel and account.lookup_age < self._found_ttl:
            return account.user_id, account.dm_channel
        return None

    async def _user(self, email: str) -> tuple[str | None, str | None] | Wait | Unroutable:
        key = email.strip().lower()
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self._user_locked(key)
        finally:
            if not lock.locked():  # nobody waits on it: forget it (the cache is in PostgreSQL)
                self._locks.pop(key, None)

    async def _user_locked(self, key: str) -> tuple[str | None, str | None] | Wait | Unroutable:
        c = slack_users.c
        async with self._engine.connect() as conn:
            cached = (await conn.execute(
                select(c.user_id, c.dm_channel, func.extract("epoch", func.now() - c.looked_up_at).label("age"))
                .where(c.email == key))).first()
        if cached is not None:  # another alert may have looked it up while this one waited for the lock
            again = self._cached(Snapshot(key, cached.user_id, cached.dm_channel, float(cached.age)))
            if again is not None:
                return again
        user_id = cached.user_id if cached is not None and float(cached.age) < self._found_ttl else None
        if user_id is None:
            looked = await self._slack.lookup_user_id(key)
            if not looked.ok:
                if looked.error == "users_not_found":
                    await self._remember(key, None, None)
                    return None, None
                return _failure("users.lookupByEmail", looked)
            user_id = str(((looked.data or {}).get("user") or {}).get("id") or "") or None
            if user_id is None:
                return Wait(30.0, "users.lookupByEmail answered without a user id")
        opened = await self._slack.open_dm(user_id)
        if not opened.ok or not opened.channel:
            return _failure("conversations.open", opened)
        await self._remember(key, user_id, opened.channel)
        return user_id, opened.channel

    async def _remember(self, email: str, user_id: str | None, dm: str | None) -> None:
        stmt = insert(slack_users).values(email=email, user_id=user_id, dm_channel=dm)
        async with self._engine.begin() as conn:
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[slack_users.c.email],
                set_={"user_id": user_id, "dm_channel": dm, "looked_up_at": func.now()}))


def _failure(api: str, result: SlackResult) -> Wait | Unroutable:
    if result.retry_after is not None:
        return Wait(result.retry_after, f"{api}: ratelimited")
    if result.permanent:
        return Unroutable(f"{api}: {result.error}")
    return Wait(5.0, f"{api}: {result.error}")
