"""Puts accepted answers on the responses topic, keyed by account id."""

from __future__ import annotations

from dataclasses import dataclass

from pulse_shared.events import ResponseSubmitted, ResponseUpdated
from pulse_shared.producer import EventProducer


@dataclass(frozen=True)
class ResponsePublisher:
    """Publishes response events and knows what to tell callers when it cannot."""

    producer: EventProducer
    topic: str
    retry_after_seconds: int

    async def publish(self, event: ResponseSubmitted | ResponseUpdated) -> None:
        """Publish and wait for the broker's acknowledgement (raises ``PublishFailed``)."""
        await self.producer.publish(self.topic, event.account_id, event)
