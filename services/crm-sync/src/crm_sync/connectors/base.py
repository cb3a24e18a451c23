"""The connector port: what crm-sync asks of every CRM, and how a CRM reports what happened per account.

A connector is told the changed properties of up to ``max_batch`` accounts and answers, per account, one of:
written; unmatched (no record in the CRM holds the account, and Pulse does not invent one); failed (a
permanent refusal, kept as a dead letter with the CRM's reason); or retry. A whole-connector condition (a rate
limit, a daily cap, an outage, a refused token) comes back as a :class:`Pause` that the writer applies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

#: daily_limit and request_limit are stored (every replica and restart honours them); the others are held in memory.
PauseKind = Literal["rate_limit", "daily_limit", "request_limit", "outage", "auth"]
#: Why a write is a dead letter (exported as a metric label).
FailureReason = Literal["invalid_value", "ambiguous_match", "already_linked", "rejected", "gave_up"]
#: Awaited before every call to the CRM: waits until the connector's budget allows one.
Gate = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class PendingWrite:
    """The changed properties to write onto one account."""

    account_id: str
    properties: dict[str, str]
    #: A value to find the account's record by when the id property is not set on any record yet.
    match_value: str | None = None
    #: The row's version: the same for every attempt of one change (a webhook's stable message id).
    version: int = 0


@dataclass(frozen=True)
class Failure:
    """A permanent refusal of one account's write."""

    reason: FailureReason
    message: str


@dataclass(frozen=True)
class Pause:
    """The connector must stop calling for a while (``seconds``; a daily pause lasts until the CRM's reset)."""

    kind: PauseKind
    seconds: float
    message: str


@dataclass(frozen=True)
class Owner:
    """The CRM user who owns an account."""

    owner_id: str
    email: str | None
    name: str | None


@dataclass
class WriteOutcome:
    """Per-account results of one write, and whether the whole connector must wait."""

    written: set[str] = field(default_factory=set)
    #: Accounts linked to an existing record by the match property during this write.
    linked: set[str] = field(default_factory=set)
    #: Accounts created in the CRM (only when creating is switched on).
    created: set[str] = field(default_factory=set)
    unmatched: dict[str, str] = field(default_factory=dict)
    failed: dict[str, Failure] = field(default_factory=dict)
    retry: dict[str, str] = field(default_factory=dict)
    pause: Pause | None = None

    def merge(self, other: WriteOutcome) -> None:
        """Add ``other``'s results (a later step of the same write); a pause is kept."""
        self.written |= other.written
        self.linked |= other.linked
        self.created |= other.created
        self.unmatched |= other.unmatched
        self.failed |= other.failed
        self.retry |= other.retry
        self.pause = self.pause or other.pause


@dataclass(frozen=True)
class Schema:
    """What :meth:`Connector.prepare` found: properties to leave out of writes, and why."""

    excluded: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()


class ConnectorUnavailable(Exception):
    """The CRM cannot be used right now (unreachable, or refused the set-up); the message says why."""


class Connector(Protocol):
    """A CRM: how many accounts fit one call, and how to write them and read their owners."""

    name: str
    max_batch: int
    #: Awaited before each call to the CRM; the writer sets it to its budget.
    gate: Gate

    async def prepare(self) -> Schema:
        """Set-up before writing (the property group and properties); raises when the CRM cannot be reached."""
        ...

    async def write(self, writes: list[PendingWrite]) -> WriteOutcome:
        """Write ``writes`` (at most ``max_batch``, one per account)."""
        ...

    async def owners(self, account_ids: list[str]) -> tuple[dict[str, Owner | None], Pause | None]:
        """The owner of each account found in the CRM (``None``: it has none); accounts not found are left out."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
