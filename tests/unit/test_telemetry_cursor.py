"""The cursor over an adapter's ring of timestamped records: a window read again yields only what is new (never
a record twice, also with equal timestamps), and says whether it reached back to what was written."""

from __future__ import annotations

from baton.telemetry import RingCursor, split_window


def ring(*stamps: float) -> list[dict]:
    return [{"timestamp": ts, "n": i} for i, ts in enumerate(stamps)]


def test_a_fresh_cursor_takes_the_whole_window() -> None:
    split = split_window(RingCursor(), ring(1.0, 2.0, 3.0))
    assert [r["timestamp"] for r in split.new] == [1.0, 2.0, 3.0] and split.covered


def test_only_records_after_the_cursor_are_new_and_the_window_is_covered() -> None:
    window = ring(1.0, 2.0, 3.0, 4.0)
    cursor = RingCursor().after(window[:2])
    assert (cursor.ts, cursor.at_ts) == (2.0, 1)
    split = split_window(cursor, window)
    assert [r["timestamp"] for r in split.new] == [3.0, 4.0] and split.covered
    assert split_window(cursor.after(split.new), window).new == ()


def test_equal_timestamps_are_counted_so_none_is_taken_twice_or_skipped() -> None:
    window = ring(1.0, 5.0, 5.0, 5.0, 6.0)
    cursor = RingCursor().after(window[:3])  # two of the three records at 5.0 written
    assert (cursor.ts, cursor.at_ts) == (5.0, 2)
    split = split_window(cursor, window)
    assert [r["n"] for r in split.new] == [3, 4]
    grown = ring(1.0, 5.0, 5.0, 5.0, 5.0)
    cursor = RingCursor().after(grown[:3])
    after = cursor.after(split_window(cursor, grown).new)
    assert (after.ts, after.at_ts) == (5.0, 4)  # the count at a timestamp adds up over passes


def test_a_window_that_starts_after_the_cursor_is_not_covered() -> None:
    cursor = RingCursor().after(ring(1.0, 2.0))
    split = split_window(cursor, ring(3.0, 4.0))  # 2.5 (say) fell off the ring, or the window is too short
    assert not split.covered and [r["timestamp"] for r in split.new] == [3.0, 4.0]
    assert split_window(cursor, []).covered and split_window(cursor, []).new == ()


def test_records_without_a_timestamp_count_as_oldest() -> None:
    cursor = RingCursor().after(ring(1.0))
    assert split_window(cursor, [{"n": 0}, {"timestamp": 2.0}]).new == ({"timestamp": 2.0},)


def test_a_cursor_moves_ahead_only_forward_and_round_trips_through_json() -> None:
    cursor = RingCursor(ts=5.0, at_ts=1, instance="7f3a", seq=10, dropped=3)
    assert cursor.ahead(4.0, 9) == cursor
    assert cursor.ahead(5.0, 2).at_ts == 2 and cursor.ahead(6.0, 1).ts == 6.0
    assert RingCursor.from_json(cursor.to_json()) == cursor
    assert RingCursor.from_json("junk") == RingCursor() and RingCursor.from_json({"ts": "x"}).ts is None
