"""Alerts' component-test fixtures (defined in alerts_fixtures, shared by the test modules)."""

from alerts_fixtures import harness, slack

__all__ = ["harness", "slack"]
