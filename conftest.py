"""Root conftest: every test can use the real-infrastructure fixtures of the shared library."""

pytest_plugins = ["pulse_shared.testing.fixtures"]
