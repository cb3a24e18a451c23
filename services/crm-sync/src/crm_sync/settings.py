"""crm-sync settings, read from the environment once at start-up."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator, model_validator

from crm_sync.connectors.webhook import signing_key
from crm_sync.domain.properties import property_defs
from pulse_shared.settings import ServiceSettings, check_timezone


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
    salesforce_login_url: str | None = Field(
        None, validation_alias="SALESFORCE_LOGIN_URL",
        description="Salesforce login URL (https://login.salesforce.com or the org's My Domain): turns the Salesforce "
        "connector on (needs SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET of a connected app).",
    )
    salesforce_client_id: str | None = Field(None, validation_alias="SALESFORCE_CLIENT_ID")
    salesforce_client_secret: SecretStr | None = Field(None, validation_alias="SALESFORCE_CLIENT_SECRET")
    salesforce_api_version: str = Field("v61.0", pattern=r"^v\d+\.\d$", validation_alias="SALESFORCE_API_VERSION")
    salesforce_account_id_field: str = Field(
        "Pulse_Account_Id__c", pattern=r"^[A-Za-z][A-Za-z0-9_]*__c$", validation_alias="SALESFORCE_ACCOUNT_ID_FIELD",
        description="External ID field of Account holding the Pulse account id: Accounts are matched by it.",
    )
    salesforce_field_map: dict[str, str] = Field(
        default_factory=dict, validation_alias="SALESFORCE_FIELD_MAP",
        description='JSON: Pulse property -> Account field, e.g. {"pulse_nps_30d": "NPS_30d__c"} ("" leaves one '
        "out); unmapped properties go to Pulse_<Name>__c (see python -m crm_sync salesforce-fields).",
    )
    salesforce_create_accounts: bool = Field(
        False, validation_alias="SALESFORCE_CREATE_ACCOUNTS",
        description="Create an Account for an account none holds (upsert by the external id). Off: unmatched.",
    )
    salesforce_rate_limit: int = Field(250, ge=1, validation_alias="SALESFORCE_RATE_LIMIT",
                                       description="Requests per SALESFORCE_RATE_WINDOW_SECONDS.")
    salesforce_rate_window_seconds: float = Field(10.0, gt=0, validation_alias="SALESFORCE_RATE_WINDOW_SECONDS")
    salesforce_limit_pause_seconds: float = Field(
        3600.0, gt=0, validation_alias="SALESFORCE_LIMIT_PAUSE_SECONDS",
        description="How long the connector pauses after 403 REQUEST_LIMIT_EXCEEDED (the org's 24-hour allowance).",
    )
    webhook_url: str | None = Field(
        None, validation_alias="CRM_WEBHOOK_URL",
        description="URL receiving each changed account's scores, signed with Standard Webhooks (turns it on).",
    )
    webhook_secret: SecretStr | None = Field(
        None, validation_alias="CRM_WEBHOOK_SECRET", description="whsec_<base64>: the webhook's signing secret.",
    )
    webhook_rate_limit: int = Field(500, ge=1, validation_alias="CRM_WEBHOOK_RATE_LIMIT",
                                    description="Messages per 10 s to the webhook.")
    webhook_concurrency: int = Field(8, ge=1, le=64, validation_alias="CRM_WEBHOOK_CONCURRENCY",
                                     description="Messages in flight at once to the webhook.")
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
        return check_timezone(value)

    @field_validator("hubspot_match_from")
    @classmethod
    def _match_from(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("properties.") or value == "properties."):
            raise ValueError("HUBSPOT_MATCH_FROM must name an answer property: properties.<name>")
        return value

    @field_validator("salesforce_field_map")
    @classmethod
    def _field_map(cls, value: dict[str, str]) -> dict[str, str]:
        known = {d.name for d in property_defs("pulse_account_id", write_comments=True)}
        for prop, target in value.items():
            if prop not in known:
                raise ValueError(f"SALESFORCE_FIELD_MAP: {prop!r} is not a property Pulse writes")
            if target and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}(__c)?", target):
                raise ValueError(f"SALESFORCE_FIELD_MAP: {target!r} is not a Salesforce field API name")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> CrmSyncSettings:
        if bool(self.hubspot_match_property) != bool(self.hubspot_match_from):
            raise ValueError("HUBSPOT_MATCH_PROPERTY and HUBSPOT_MATCH_FROM go together (set both or neither)")
        if self.salesforce_login_url and not (self.salesforce_client_id and self.salesforce_client_secret):
            raise ValueError("SALESFORCE_LOGIN_URL needs SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET")
        if bool(self.webhook_url) != bool(self.webhook_secret):
            raise ValueError("CRM_WEBHOOK_URL and CRM_WEBHOOK_SECRET go together (set both or neither)")
        if self.webhook_secret is not None:
            signing_key(self.webhook_secret.get_secret_value())
        return self
