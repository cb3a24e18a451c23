"""Pure domain logic of crm-sync (no I/O): what is written onto a CRM account."""
