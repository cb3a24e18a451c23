"""The connector used when no CRM is configured: each update is written to the log, clearly labelled."""

from __future__ import annotations

import logging

from crm_sync.connectors.base import Gate, Owner, Pause, PendingWrite, Schema, WriteOutcome
from crm_sync.connectors.calls import no_gate

log = logging.getLogger(__name__)


class LogConnector:
    """Logs CRM updates instead of sending them, so a laptop run still shows the whole flow."""

    name = "log"
    max_batch = 100

    def __init__(self) -> None:
        self.gate: Gate = no_gate

    async def prepare(self) -> Schema:
        """Nothing to prepare."""
        return Schema()

    async def write(self, writes: list[PendingWrite]) -> WriteOutcome:
        """Log each update."""
        for w in writes:
            log.warning(
                "CRM UPDATE (no CRM configured: set HUBSPOT_ACCESS_TOKEN, SALESFORCE_LOGIN_URL or CRM_WEBHOOK_URL "
                "to write it)",
                extra={"account_id": w.account_id, "properties": w.properties},
            )
        return WriteOutcome(written={w.account_id for w in writes})

    async def owners(self, account_ids: list[str]) -> tuple[dict[str, Owner | None], Pause | None]:
        """No CRM, no owners."""
        return {}, None

    async def close(self) -> None:
        """Nothing to close."""
