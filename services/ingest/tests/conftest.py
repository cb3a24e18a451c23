"""ingest's test fixtures live in ingest_fixtures (importable by the test modules)."""

from ingest_fixtures import ingest

__all__ = ["ingest"]
