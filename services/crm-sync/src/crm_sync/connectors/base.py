"""What a CRM connector does with a batch of pending writes, and how it reports the outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class PendingWrite:
    """The newest scores to write onto one account."""

    account_id: str
    version: int
    properties: dict[str, str]


@dataclass
class WriteOutcome:
    """Per-account results of one call, and whether the whole connector must wait."""

    written: set[str] = field(default_factory=set)
    retry: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: Pause the connector this long (rate limit, outage); the accounts in ``retry`` wait as long.
    pause_seconds: float | None = None
    #: Why: rate_limit, daily_limit, outage, auth (exported as a metric label).
    pause_reason: str | None = None


class Connector(Protocol):
    """A CRM: how many writes fit one call, and how to make that call."""

    name: str
    max_batch: int

    async def prepare(self) -> None:
        """One-time set-up before the first write (for example creating custom properties)."""
        ...

    async def write(self, writes: list[PendingWrite]) -> WriteOutcome:
        """Write ``writes`` (at most ``max_batch``, one per account)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
