"""Alerts' component-test fixtures (defined in alerts_fixtures, shared by the test modules)."""

from alerts_fixtures import admin, harness, slack

__all__ = ["admin", "harness", "slack"]
