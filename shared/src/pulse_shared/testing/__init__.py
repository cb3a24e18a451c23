"""Test infrastructure: a pytest plugin with real broker and PostgreSQL fixtures, fake SaaS servers that
check the documented request shapes, and helpers to run services as real processes."""
