"""crm-sync settings, read from the environment once at start-up."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from pulse_shared.settings import ServiceSettings


class CrmSyncSettings(ServiceSettings):
    """Settings of the crm-sync service."""

    port: int = Field(8003, validation_alias="CRM_SYNC_PORT", description="HTTP port of crm-sync.")
    consumer_group: str = Field("pulse-crm-sync", validation_alias="CRM_SYNC_CONSUMER_GROUP")
    admin_token: SecretStr | None = Field(
        None, validation_alias="CRM_SYNC_ADMIN_TOKEN",
        description="Bearer token of the admin API (status, unmatched, dead letters, reconcile). Unset: off.",
    )
    hubspot_access_token: SecretStr | None = Field(
        None, validation_alias="HUBSPOT_ACCESS_TOKEN",
        description="HubSpot private app token (scopes crm.objects.companies.read/write, crm.schemas.companies."
        "read/write, crm.objects.owners.read). Without it (and without other CRMs) updates are logged.",
    )
    hubspot_api_base_url: str = Field("https://api.hubapi.com", validation_alias="HUBSPOT_API_BASE_URL")
    hubspot_id_property: str = Field(
        "pulse_account_id", validation_alias="HUBSPOT_ID_PROPERTY",
        description="Unique company property holding the Pulse account id: companies are matched by it.",
    )
    hubspot_create_properties: bool = Field(
        True, validation_alias="HUBSPOT_CREATE_PROPERTIES",
        description="Create Pulse's property group and missing properties on start (existing ones are never "
        "changed; one with another type is reported and left out).",
    )
    hubspot_create_companies: bool = Field(
        False, validation_alias="HUBSPOT_CREATE_COMPANIES",
        description="Create a company for an account no company holds. Off: such accounts are listed as unmatched.",
    )
    hubspot_match_property: str | None = Field(
        None, validation_alias="HUBSPOT_MATCH_PROPERTY",
        description="Company property to link unmatched accounts by (e.g. domain); needs HUBSPOT_MATCH_FROM.",
    )
    hubspot_match_from: str | None = Field(
        None, validation_alias="HUBSPOT_MATCH_FROM",
        description="Answer property holding the match value, e.g. properties.company_domain.",
    )
    hubspot_rate_limit: int = Field(
        100, ge=1, validation_alias="HUBSPOT_RATE_LIMIT",
        description="Requests per window this connector may make (HubSpot: 100 per 10 s on Free/Starter, 190 on "
        "Professional/Enterprise; leave room for the portal's other integrations).",
    )
    hubspot_rate_window_seconds: float = Field(10.0, gt=0, validation_alias="HUBSPOT_RATE_WINDOW_SECONDS")
    hubspot_timezone: str = Field(
        "UTC", validation_alias="HUBSPOT_TIMEZONE",
        description="The portal's time zone: the daily API limit resets at its midnight.",
    )
    write_comments: bool = Field(
        False, validation_alias="CRM_WRITE_COMMENTS",
        description="Write the last answer's comment to the CRM (personal data; cleared there on erasure).",
    )
    flush_interval_seconds: float = Field(
        5.0, gt=0, validation_alias="CRM_FLUSH_INTERVAL_SECONDS",
        description="How often pending changes are written (changes within one interval make one write).",
    )
    owner_sync_interval_seconds: float = Field(
        900.0, gt=0, validation_alias="CRM_OWNER_SYNC_INTERVAL_SECONDS",
        description="How often account owners are read back from the CRM (and published to alerts).",
    )
    crm_timeout_seconds: float = Field(20.0, gt=0, validation_alias="CRM_TIMEOUT_SECONDS")
    crm_max_attempts: int = Field(10, ge=1, validation_alias="CRM_MAX_ATTEMPTS",
                                  description="Failed attempts of one account's write before it is a dead letter.")
    crm_lease_seconds: float = Field(
        120.0, ge=2, validation_alias="CRM_LEASE_SECONDS",
        description="How long claimed writes stay with their writer (a new writer takes them over at once).",
    )

    @field_validator("hubspot_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from exc
        return value

    @field_validator("hubspot_match_from")
    @classmethod
    def _match_from(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("properties.") or value == "properties."):
            raise ValueError("HUBSPOT_MATCH_FROM must name an answer property: properties.<name>")
        return value

    @model_validator(mode="after")
    def _match_pair(self) -> CrmSyncSettings:
        if bool(self.hubspot_match_property) != bool(self.hubspot_match_from):
            raise ValueError("HUBSPOT_MATCH_PROPERTY and HUBSPOT_MATCH_FROM go together (set both or neither)")
        return self
