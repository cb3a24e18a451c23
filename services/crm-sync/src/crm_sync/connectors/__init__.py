"""CRM connectors: each turns pending score writes into calls to one CRM."""
