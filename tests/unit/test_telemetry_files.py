"""The bounded JSON-lines files the telemetry pipelines append to (``baton.jsonl``, generalised to N rotated
files): no file passes its cap, N rotated files are kept and the oldest dropped, reading goes through them oldest
first, the tail of a file is read from its end, a file's lock-free readers never crash on a cut line."""

from __future__ import annotations

import json
from pathlib import Path

from baton.jsonl import append_lines, read_lines, rewrite_lines, rotated_paths, tail_lines


def _record(i: int, pad: int = 40) -> dict:
    return {"i": i, "pad": "x" * pad}


def test_no_file_passes_the_cap_and_keep_rotated_files_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    cap, keep = 2000, 3
    rotations = 0
    for batch in range(60):  # batches of 7 records: ~ 20 000 bytes in all, ten times the cap
        rotations += append_lines(path, [_record(batch * 7 + k) for k in range(7)], max_bytes=cap, keep=keep)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("signals.jsonl") and not p.name.endswith(".lock")]
    assert sorted(p.name for p in files) == ["signals.jsonl", "signals.jsonl.1", "signals.jsonl.2", "signals.jsonl.3"]
    assert all(p.stat().st_size <= cap for p in files)
    assert rotations >= 9
    # what is kept is the newest records, in order, with nothing missing among them
    kept = [r["i"] for r in read_lines(path, rotated=keep).records]
    assert kept == list(range(kept[0], 60 * 7))
    assert sum(p.stat().st_size for p in files) > (keep + 1) * cap * 0.8  # the retention is used, not wasted


def test_one_batch_larger_than_the_cap_is_split_across_files(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    rotations = append_lines(path, [_record(i, pad=100) for i in range(50)], max_bytes=1000, keep=2)
    assert rotations >= 2
    for one in [path, *rotated_paths(path, 2)]:
        assert one.stat().st_size <= 1000
    kept = [r["i"] for r in read_lines(path, rotated=2).records]
    assert kept == list(range(kept[0], 50)) and len(kept) >= 3 * (1000 // 150)


def test_a_single_record_above_the_cap_stands_alone(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    append_lines(path, [_record(0, pad=10)], max_bytes=500, keep=1)
    append_lines(path, [_record(1, pad=2000)], max_bytes=500, keep=1)
    append_lines(path, [_record(2, pad=10)], max_bytes=500, keep=1)
    assert [r["i"] for r in read_lines(path, rotated=1).records] == [1, 2]


def test_the_default_keeps_one_rotated_file_as_before(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    for i in range(40):
        append_lines(path, [_record(i)], max_bytes=300)
    assert path.with_name("v.jsonl.1").exists() and not path.with_name("v.jsonl.2").exists()
    assert read_lines(path, rotated=True).records[-1]["i"] == 39


def test_reading_skips_and_counts_corrupt_lines_and_rewrite_drops_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    append_lines(path, [_record(i) for i in range(30)], max_bytes=600, keep=2)
    with path.open("ab") as handle:
        handle.write(b'{"cut": \n\xff\xfe\n[1, 2]\n')
    lines = read_lines(path, rotated=2)
    assert lines.corrupt == 3 and lines.records[-1]["i"] == 29
    rewrite_lines(path, [_record(99)], rotated=2)
    assert read_lines(path, rotated=2).records == (_record(99),)
    assert not any(p.exists() for p in rotated_paths(path, 2))


def test_the_tail_is_read_from_the_end_leaving_out_the_cut_first_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(_record(i)) + "\n" for i in range(100)))
    tail = tail_lines(path, 500)
    assert [r["i"] for r in tail.records] == list(range(100 - len(tail.records), 100))
    assert tail.corrupt == 0 and 5 <= len(tail.records) <= 9
    assert tail_lines(tmp_path / "missing.jsonl", 500).records == ()
    assert len(tail_lines(path, 10**9).records) == 100
