"""Pulse scoring service."""
