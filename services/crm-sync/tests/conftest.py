"""crm-sync's component-test fixtures (defined in crm_fixtures, shared by the test modules)."""

from crm_fixtures import harness

__all__ = ["harness"]
