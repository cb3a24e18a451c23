"""The start offset of a newly assigned partition, as a pure function."""

from __future__ import annotations

from pulse_shared.start_offset import Start, StoredOffset, choose_start, fingerprint

MINE = fingerprint(1_733_000_000_001, b"acme")


def test_the_stored_offset_wins_over_kafkas_and_nothing_stored_leaves_the_reset_policy() -> None:
    assert choose_start(StoredOffset(5), 3, beginning=0, end=9) == Start(5, "database")
    assert choose_start(None, 3, beginning=0, end=9) == Start(3, "kafka")
    assert choose_start(None, None, beginning=0, end=9) == Start(None, "none")


def test_an_offset_past_the_end_is_read_from_the_beginning_and_replaced_when_stored() -> None:
    start = choose_start(StoredOffset(1000), None, beginning=0, end=3)
    assert (start.offset, start.reset_store) == (0, True)
    assert start.warning is not None
    assert "past the end" in start.warning
    from_kafka = choose_start(None, 1000, beginning=0, end=3)
    assert (from_kafka.offset, from_kafka.reset_store) == (0, False)


def test_an_offset_past_a_reported_end_is_kept_when_the_log_holds_its_record() -> None:
    """tansu reports 1 as the end of a partition holding one batch of 52 answers."""
    stored = StoredOffset(52, 51, MINE)
    assert choose_start(stored, None, beginning=0, end=1, found=MINE) == Start(52, "database")
    for found in (None, fingerprint(1_733_999_000_000, b"acme")):  # nothing there, or another record
        lost = choose_start(stored, None, beginning=0, end=1, found=found)
        assert (lost.offset, lost.reset_store) == (0, True)
        assert lost.warning is not None
        assert "past the end" in lost.warning


def test_an_offset_below_the_log_start_moves_up_to_it() -> None:
    start = choose_start(StoredOffset(2), None, beginning=10, end=20)
    assert (start.offset, start.reset_store) == (10, False)
    assert start.warning is not None
    assert "retention" in start.warning


def test_the_fingerprint_tells_the_log_the_offset_belongs_to() -> None:
    stored = StoredOffset(2, 1, MINE)
    # The record is there: the same log.
    assert choose_start(stored, None, beginning=0, end=3, found=MINE) == Start(2, "database")
    # Another record there (stored 2, the new log holds 3 answers): every answer of the new log is read.
    other = choose_start(stored, None, beginning=0, end=3, found=fingerprint(1_733_999_000_000, b"acme"))
    assert (other.offset, other.reset_store) == (0, True)
    assert other.warning is not None
    assert "earlier incarnation" in other.warning
    # Unknown (the record could not be read back): trusted; discarding it would apply the log twice.
    assert choose_start(stored, None, beginning=0, end=3, found=None) == Start(2, "database")
    # Retention removed the fingerprinted record: nothing to compare, trusted.
    assert choose_start(StoredOffset(12, 1, MINE), None, beginning=5, end=20, found="x") == Start(12, "database")
    # An offset stored before fingerprints existed is trusted as before.
    assert choose_start(StoredOffset(2), None, beginning=0, end=3, found="x") == Start(2, "database")


def test_fingerprints_differ_by_timestamp_and_key() -> None:
    assert fingerprint(1, b"acme") == fingerprint(1, b"acme")
    assert len({fingerprint(1, b"acme"), fingerprint(2, b"acme"), fingerprint(1, b"globex"), fingerprint(1, None)}) == 4
