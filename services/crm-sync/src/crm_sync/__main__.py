"""``python -m crm_sync [serve|migrate|reconcile|salesforce-fields]``: run crm-sync, apply its migrations,
reconcile, or list the Salesforce Account fields Pulse writes."""

from __future__ import annotations

import sys

from crm_sync.commands import arguments, reconcile_command, salesforce_fields_command
from crm_sync.main import build_app
from crm_sync.settings import CrmSyncSettings
from crm_sync.tables import SCHEMA
from pulse_shared.cli import service_main

if __name__ == "__main__":
    sys.exit(service_main(service="crm-sync", settings_class=CrmSyncSettings, build_app=build_app,
                          port=lambda s: s.port, migrations=("crm_sync.migrations", SCHEMA),
                          commands={"reconcile": reconcile_command, "salesforce-fields": salesforce_fields_command},
                          arguments=arguments))
