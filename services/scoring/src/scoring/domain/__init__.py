"""Pure domain logic of scoring (no I/O): metrics and intervals, revisions, buckets."""
