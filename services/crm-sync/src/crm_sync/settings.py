"""crm-sync settings, read from the environment once at start-up."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pulse_shared.settings import ServiceSettings


class CrmSyncSettings(ServiceSettings):
    """Settings of the crm-sync service."""

    port: int = Field(8003, validation_alias="CRM_SYNC_PORT", description="HTTP port of crm-sync.")
    consumer_group: str = Field("pulse-crm-sync", validation_alias="CRM_SYNC_CONSUMER_GROUP")
    hubspot_access_token: SecretStr | None = Field(
        None, validation_alias="HUBSPOT_ACCESS_TOKEN",
        description="HubSpot private app token. Without it (and without other CRMs) updates are logged.",
    )
    hubspot_api_base_url: str = Field("https://api.hubapi.com", validation_alias="HUBSPOT_API_BASE_URL")
    hubspot_id_property: str = Field(
        "pulse_account_id", validation_alias="HUBSPOT_ID_PROPERTY",
        description="Unique company property holding the Pulse account id (used as idProperty of upserts).",
    )
    hubspot_create_properties: bool = Field(
        True, validation_alias="HUBSPOT_CREATE_PROPERTIES",
        description="Create Pulse's custom company properties on start (existing ones are left alone).",
    )
    crm_timeout_seconds: float = Field(20.0, gt=0, validation_alias="CRM_TIMEOUT_SECONDS")
    crm_max_attempts: int = Field(10, ge=1, validation_alias="CRM_MAX_ATTEMPTS")
