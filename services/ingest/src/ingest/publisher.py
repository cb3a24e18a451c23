"""Puts accepted answers on the responses topic, keyed by account id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException, status

from pulse_shared.events import Encoded, RespondentErased, ResponseSubmitted, ResponseUpdated
from pulse_shared.producer import EventProducer

ResponseEvent = ResponseSubmitted | ResponseUpdated | RespondentErased


@dataclass(frozen=True)
class ResponsePublisher:
    """Publishes response events and knows what to tell callers when it cannot."""

    producer: EventProducer
    topic: str
    raw_topic: str
    retry_after_seconds: int

    async def publish(self, event: ResponseEvent) -> None:
        """Publish and wait for the broker's acknowledgement (raises ``PublishFailed``)."""
        await self.producer.publish(self.topic, event.account_id, event)

    async def publish_one(self, event: Encoded) -> None:
        """Publish an encoded response event and wait for the acknowledgement (raises ``PublishFailed``)."""
        await self.producer.publish_one(self.topic, event)

    def unavailable(self) -> HTTPException:
        """The answer to give when the event log did not take an event: 503, retry after a while."""
        return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="the event log is unavailable; retry later",
                             headers={"Retry-After": str(self.retry_after_seconds)})

    async def publish_encoded(self, events: Sequence[Encoded]) -> list[BaseException | None]:
        """Publish encoded response events together; per event, None when acknowledged or the error."""
        return await self.producer.publish_encoded(self.topic, events)
