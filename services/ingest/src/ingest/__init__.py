"""Pulse ingest service."""
