"""Pure domain logic of ingest (no I/O)."""
