"""Process groups: a stopped service takes its children with it; recycled pids are not ours."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from baton.processes import ProcessRecord, is_running, process_start_ticks, spawn, stop_group

PARENT_WITH_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_stop_group_stops_the_process_and_its_children(tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    record = spawn([sys.executable, "-c", PARENT_WITH_CHILD], env=os.environ, cwd=tmp_path, stdout=out)
    _wait_for(lambda: out.exists() and out.read_text().strip())
    child = int(out.read_text().split()[0])
    assert is_running(record) and process_start_ticks(child) is not None
    assert stop_group(record, timeout=5) is True
    assert not is_running(record)
    assert process_start_ticks(child) is None
    assert stop_group(record) is False  # idempotent


def test_a_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(600)\n"
    out = tmp_path / "out.log"
    record = spawn([sys.executable, "-c", code], env=os.environ, cwd=tmp_path, stdout=out)
    _wait_for(lambda: out.exists() and "up" in out.read_text())
    assert stop_group(record, timeout=0.5) is True
    assert not is_running(record)


def test_a_recycled_pid_is_not_ours() -> None:
    me = os.getpid()
    assert is_running(ProcessRecord(me, me, process_start_ticks(me), ("x",)))
    assert not is_running(ProcessRecord(me, me, process_start_ticks(me) + 1, ("x",)))
    assert ProcessRecord.from_json(ProcessRecord(1, 1, 2, ("a",)).to_json()) == ProcessRecord(1, 1, 2, ("a",))
