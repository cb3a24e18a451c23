"""Pulse alerts service."""
