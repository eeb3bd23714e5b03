"""The violations file: appended, bounded by rotation, read back through the rotation, summarised fast for
``baton status``, grouped for ``baton taint violations``."""

from __future__ import annotations

from pathlib import Path

from baton.taint import Violation, append_violations, clear_violations, group_violations, load_violations
from baton.taint import violations as module
from baton.taint.violations import VIOLATIONS_FILE, violation_summary


def _violation(i: int, edge: str = "orders -> payments", kind: str = "email", trace: str = "") -> Violation:
    return Violation(fingerprint=f"{i:08x}", kind=kind, tier="PII", origin="users", node=edge.split(" -> ")[-1],
                     direction="request", edge=edge, reasons=[f"reason {i % 2}"], trace_id=trace or f"t{i}",
                     time=float(i), detected_at=float(i) + 0.5)


def test_append_and_load_in_order_skipping_corrupt_lines(tmp_path: Path) -> None:
    append_violations(tmp_path, [_violation(1), _violation(2)])
    with (tmp_path / VIOLATIONS_FILE).open("a") as handle:
        handle.write('not json\n{"fingerprint": 3}\n')
    append_violations(tmp_path, [_violation(3)])
    found, corrupt = load_violations(tmp_path)
    assert [v.fingerprint for v in found] == ["00000001", "00000002", "00000003"] and corrupt == 2
    summary = violation_summary(tmp_path)
    assert summary["count"] == 5  # lines, corrupt ones included: counted without parsing them
    assert summary["last"]["fingerprint"] == "00000003"


def test_rotation_keeps_two_files_and_reads_through_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(module, "VIOLATIONS_MAX_BYTES", 2000)
    for i in range(40):
        append_violations(tmp_path, [_violation(i)])
    current, rotated = tmp_path / VIOLATIONS_FILE, tmp_path / (VIOLATIONS_FILE + ".1")
    assert rotated.exists() and current.stat().st_size <= 2000 and rotated.stat().st_size <= 2000
    found, _ = load_violations(tmp_path)
    numbers = [int(v.fingerprint, 16) for v in found]
    assert numbers == sorted(numbers) and numbers[-1] == 39 and len(numbers) < 40  # the oldest were dropped
    assert violation_summary(tmp_path) == {"count": len(numbers), "last": found[-1].model_dump()}
    assert clear_violations(tmp_path) == len(numbers)
    assert load_violations(tmp_path) == ([], 0) and not rotated.exists()


def test_summary_of_nothing(tmp_path: Path) -> None:
    assert violation_summary(tmp_path) == {"count": 0, "last": None}


def test_grouped_by_edge_and_kind_with_counts_times_and_traces() -> None:
    found = [_violation(i, trace="same" if i < 3 else "") for i in range(10)]
    found += [_violation(20, edge="gateway -> admin", kind="card"), _violation(21, edge="users -> log")]
    groups = group_violations(found)
    assert [(g["edge"], g["kind"], g["count"]) for g in groups] == [
        ("orders -> payments", "email", 10), ("gateway -> admin", "card", 1), ("users -> log", "email", 1)]
    first = groups[0]
    assert (first["first"], first["last"]) == (0.0, 9.0)
    assert first["trace_ids"] == ["same", "t3", "t4", "t5", "t6"]  # distinct, five at most
    assert first["reasons"] == ["reason 0", "reason 1"] and len(first["fingerprints"]) == 10
    assert first["origins"] == ["users"] and first["directions"] == ["request"]
