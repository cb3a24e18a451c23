"""Slack's pace per channel, shared by every replica: one post per interval, and 429 pauses honoured.

The budget is a row per channel in PostgreSQL holding the next time a post may go there. Taking it is one
atomic statement that also *reserves* the channel while the post is in flight; when the call returns, the
channel opens again one interval after that moment (Slack received the post before it answered), so two
posts can never reach Slack closer than the interval, however the network delays them, and two replicas
never post to one channel at once. A 429's Retry-After closes the channel for every replica. A replica that
dies mid-post leaves a reservation that lapses by itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Text, bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerts.tables import channel_budget


def _interval(seconds: float) -> object:
    return literal_column(f"interval '{float(seconds)} seconds'")


class ChannelBudget:
    """The shared per-channel posting pace (statements built once: they run for every post)."""

    def __init__(self, engine: AsyncEngine, *, interval_seconds: float = 1.0, reserve_seconds: float = 30.0) -> None:
        self._engine = engine
        c = channel_budget.c
        channel = bindparam("b_channel", type_=Text)
        until = func.clock_timestamp() + _interval(reserve_seconds + interval_seconds)
        insert_stmt = insert(channel_budget).values(channel=channel, next_allowed_at=until, in_flight=True)
        self._take = insert_stmt.on_conflict_do_update(
            index_elements=[c.channel], set_={"next_allowed_at": until, "in_flight": True},
            where=c.next_allowed_at <= func.clock_timestamp(),
        ).returning(c.next_allowed_at)
        self._opens = select(c.next_allowed_at, c.in_flight,
                             (func.clock_timestamp() + _interval(interval_seconds)).label("soon")
                             ).where(c.channel == channel)
        self._open_in = (update(channel_budget).where(c.channel == channel)
                         .values(next_allowed_at=func.clock_timestamp() + bindparam("b_seconds", type_=Float)
                                 * literal_column("interval '1 second'"), in_flight=False))
        self._interval = interval_seconds

    async def take(self, channel: str, conn: AsyncConnection | None = None) -> datetime | None:
        """Reserve the channel for one post now (None), or say when it opens next (on ``conn`` if given: the
        dispatcher's autocommit connection, which records the attempt next)."""
        if conn is None:
            async with self._engine.begin() as own:
                return await self.take(channel, own)
        if (await conn.execute(self._take, {"b_channel": channel})).first() is not None:
            return None
        found = (await conn.execute(self._opens, {"b_channel": channel})).first()
        if found is None:
            return None  # removed meanwhile: try again at once
        # A post in flight usually returns within a fraction of a second: look again after one interval
        # rather than at the end of the reservation.
        opens: datetime = min(found.next_allowed_at, found.soon) if found.in_flight else found.next_allowed_at
        return opens

    async def posted(self, channel: str, conn: AsyncConnection | None = None) -> None:
        """The post's call returned: the channel opens one interval from now (on ``conn`` if given)."""
        await self._reopen(channel, self._interval, conn)

    async def pause(self, channel: str, seconds: float) -> None:
        """Slack said 429: nobody posts to ``channel`` for ``seconds``."""
        await self._reopen(channel, seconds)

    async def _reopen(self, channel: str, seconds: float, conn: AsyncConnection | None = None) -> None:
        if conn is None:
            async with self._engine.begin() as own:
                await self._reopen(channel, seconds, own)
            return
        await conn.execute(self._open_in, {"b_channel": channel, "b_seconds": float(seconds)})
