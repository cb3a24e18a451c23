"""Topic names and the partition key.

Every topic is keyed by account id, so one account's events stay in order on one partition and every
consumer scales out by partitions. A deployment may share a Kafka cluster with other systems, so names
carry an optional prefix (``KAFKA_TOPIC_PREFIX``); tests use it to isolate runs on one broker.
"""

from __future__ import annotations

from dataclasses import dataclass

RESPONSES = "pulse.responses.v1"
SCORES = "pulse.scores.v1"
ACCOUNT_OWNERS = "pulse.account-owners.v1"
RAW_WEBHOOKS = "pulse.webhooks.raw.v1"
DEAD_LETTER = "pulse.dead-letter.v1"

ALL_TOPICS = (RESPONSES, SCORES, ACCOUNT_OWNERS, RAW_WEBHOOKS, DEAD_LETTER)


@dataclass(frozen=True)
class Topics:
    """Resolved topic names for one deployment (the base names with the deployment's prefix)."""

    prefix: str = ""

    def name(self, base: str) -> str:
        """Return the full topic name for a base name such as :data:`RESPONSES`."""
        return f"{self.prefix}{base}"

    @property
    def responses(self) -> str:
        """Survey answers: submitted, updated and erasure events."""
        return self.name(RESPONSES)

    @property
    def scores(self) -> str:
        """Score updates per account, published by scoring."""
        return self.name(SCORES)

    @property
    def account_owners(self) -> str:
        """Account owner (CSM) changes learned from the CRMs."""
        return self.name(ACCOUNT_OWNERS)

    @property
    def raw_webhooks(self) -> str:
        """Raw webhook payloads as received, kept for replay after a mapping fix."""
        return self.name(RAW_WEBHOOKS)

    @property
    def dead_letter(self) -> str:
        """Messages no consumer could decode, with the reason in headers."""
        return self.name(DEAD_LETTER)

    def all(self) -> tuple[str, ...]:
        """Every topic Pulse uses, fully named."""
        return tuple(self.name(t) for t in ALL_TOPICS)


def partition_key(account_id: str) -> bytes:
    """The Kafka message key for an account: its id in UTF-8."""
    return account_id.encode("utf-8")
