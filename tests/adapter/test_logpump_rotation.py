"""``baton.logpump`` rotates the shared service log by size, with several pumps writing at once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from baton.waiting import wait_for

PUMP = [sys.executable, "-m", "baton.logpump"]
CHATTY = "import sys\nfor i in range(int(sys.argv[1])):\n    print(sys.argv[2], i, 'x' * 60, flush=True)\n"


def _run_pumps(out: Path, lines: int, names: tuple[str, ...], env: dict[str, str]) -> list[subprocess.Popen]:
    return [subprocess.Popen([*PUMP, "--node", name, "--out", str(out), "--", sys.executable, "-c", CHATTY,
                              str(lines), name], env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
            for name in names]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _log_files(directory: Path) -> list[Path]:
    """The log and its rotated files, oldest first."""
    rotated = sorted((p for p in directory.glob("service_logs.jsonl.*") if p.suffix[1:].isdigit()),
                     key=lambda p: -int(p.suffix[1:]))
    return [*rotated, directory / "service_logs.jsonl"]


def test_two_pumps_rotate_one_file_without_losing_or_tearing_a_line(tmp_path: Path) -> None:
    limit, line_max = 16 * 1024, 300
    pumps = _run_pumps(tmp_path / "service_logs.jsonl", 2000, ("api", "users"),
                       {"BATON_SERVICE_LOG_MAX_BYTES": str(limit), "BATON_SERVICE_LOG_KEEP": "60"})
    errors = [p.communicate(timeout=60)[1] for p in pumps]
    assert [p.returncode for p in pumps] == [0, 0], errors
    assert not any("Traceback" in e or "dropping" in e for e in errors), errors
    files = _log_files(tmp_path)
    assert 30 <= len(files) <= 61  # some 520 kB in 16 kB files
    kept = []
    for path in files:
        assert 0 < path.stat().st_size <= limit + 2 * line_max, path
        kept += _records(path)  # every line whole: never torn by another pump's line or by a rotation
    for name, pump in zip(("api", "users"), pumps, strict=True):
        mine = [r for r in kept if r["node_name"] == name]
        assert {r["pid"] for r in mine} == {pump.pid}
        assert [int(r["message"].split()[1]) for r in mine] == list(range(2000))  # all, in order


def test_rotation_keeps_only_the_newest_files(tmp_path: Path) -> None:
    pumps = _run_pumps(tmp_path / "service_logs.jsonl", 2000, ("api", "users"),
                       {"BATON_SERVICE_LOG_MAX_BYTES": str(16 * 1024), "BATON_SERVICE_LOG_KEEP": "2"})
    for pump in pumps:
        pump.communicate(timeout=60)
    files = _log_files(tmp_path)
    assert [p.name for p in files] == ["service_logs.jsonl.2", "service_logs.jsonl.1", "service_logs.jsonl"]
    last = [r for path in files for r in _records(path)][-1]
    assert last["message"].split()[1] == "1999"


def test_a_removed_log_is_started_again_and_a_long_line_is_cut(tmp_path: Path) -> None:
    out = tmp_path / "service_logs.jsonl"
    service = ("import os, sys, time\nprint('first', flush=True)\n"
               f"while os.path.exists({str(out)!r}):\n    time.sleep(0.02)\n"
               "time.sleep(1.2)\nprint('y' * 200000, flush=True)\nprint('last', flush=True)\n")
    pump = subprocess.Popen([*PUMP, "--node", "api", "--out", str(out), "--", sys.executable, "-c", service],
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: out.exists() and "first" in out.read_text(), timeout_s=10,
                 timeout_error="the pump wrote nothing")
        out.unlink()
        _, err = pump.communicate(timeout=30)
    finally:  # the pump and its service, whatever happened
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pump.pid, signal.SIGKILL)
        pump.wait(timeout=10)
    assert pump.returncode == 0 and "Traceback" not in err, err
    records = _records(out)
    assert [len(r["message"]) for r in records] == [65536, 65536, 65536, 200000 - 3 * 65536, 4]
    assert records[-1]["message"] == "last"
