"""Pulse crm_sync service."""
