"""``baton.logpump`` (the wrapper of slotted services): its lease, and an output file that stops working."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

PUMP = [sys.executable, "-m", "baton.logpump"]
LEASE_ENV = {"BATON_LEASE_CHECK_S": "0.2"}

# a service that records its pid, says hello and runs until stopped (optionally ignoring SIGTERM)
SERVICE = """
import os, signal, sys, time
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("hello", flush=True)
while True:
    time.sleep(0.05)
"""


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rfind(")") + 2:].startswith("Z")


def _poll(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.02)


def _start(tmp_path: Path, out: Path, lease: Path, mode: str = "polite") -> tuple[subprocess.Popen[str], int]:
    pidfile = tmp_path / f"service-{mode}.pid"
    proc = subprocess.Popen(
        [*PUMP, "--node", "users", "--out", str(out), "--lease", str(lease), "--",
         sys.executable, "-c", SERVICE, str(pidfile), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **LEASE_ENV},
    )
    try:
        _poll(pidfile.exists, 10, "the service did not start")
    except AssertionError:
        proc.kill()
        raise
    return proc, int(pidfile.read_text())


def _kill(pid: int) -> None:
    if not _gone(pid):
        os.kill(pid, 9)


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_deleting_the_lease_stops_the_service_and_the_pump(tmp_path: Path, mode: str) -> None:
    lease = tmp_path / "service.lease"
    lease.write_text("")
    out = tmp_path / "service_logs.jsonl"
    proc, service = _start(tmp_path, out, lease, mode)
    try:
        lease.unlink()
        # a stubborn service (SIGTERM ignored) is killed 5 s after the SIGTERM
        _poll(lambda: proc.poll() is not None, 10, "the pump did not exit")
        _poll(lambda: _gone(service), 5, "the service still runs")
    finally:
        proc.kill()
        _kill(service)
        _, err = proc.communicate(timeout=10)
    assert f"lease {lease} is gone: stopping" in err
    assert [json.loads(line)["message"] for line in out.read_text().splitlines()] == ["hello"]


def test_removing_the_project_directory_stops_the_service_and_the_pump(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".baton").mkdir(parents=True)
    lease = project / ".baton" / "users.lease"
    lease.write_text("")
    proc, service = _start(tmp_path, project / ".baton" / "service_logs.jsonl", lease)
    try:
        shutil.rmtree(project)
        _poll(lambda: proc.poll() is not None, 10, "the pump did not exit")
        _poll(lambda: _gone(service), 5, "the service still runs")
    finally:
        proc.kill()
        _kill(service)
        proc.communicate(timeout=10)


def test_a_lease_gone_at_start_is_refused_before_the_service_starts(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    result = subprocess.run(
        [*PUMP, "--node", "users", "--out", str(tmp_path / "out.jsonl"), "--lease", str(tmp_path / "nope"), "--",
         sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert not marker.exists()


LOUD = "import sys\nfor i in range(20000):\n    print('line', i, 'x' * 40)\nsys.exit(3)\n"  # ~1 MB: fills any pipe


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_an_unwritable_output_drops_lines_and_keeps_draining_the_service() -> None:
    result = subprocess.run([*PUMP, "--node", "users", "--out", "/dev/full", "--", sys.executable, "-c", LOUD],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 3  # the service ran to its end: it never blocked on a full pipe
    assert result.stderr.count("cannot write the output any more") == 1


def test_a_missing_output_directory_drops_lines_and_runs_the_service(tmp_path: Path) -> None:
    result = subprocess.run(
        [*PUMP, "--node", "users", "--out", str(tmp_path / "gone" / "out.jsonl"), "--", sys.executable, "-c", LOUD],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 3
    assert "cannot open" in result.stderr


def test_the_output_directory_vanishing_mid_run_does_not_stop_the_pump(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    go = tmp_path / "go"
    # after the removal the service keeps talking for longer than the pump's once-a-second link check
    service = (f"import os, time\nprint('before', flush=True)\n"
               f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.02)\n"
               "for i in range(75):\n    print('after', i, flush=True)\n    time.sleep(0.02)\n")
    proc = subprocess.Popen([*PUMP, "--node", "users", "--out", str(logs / "out.jsonl"), "--",
                             sys.executable, "-c", service], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _poll(lambda: (logs / "out.jsonl").exists() and "before" in (logs / "out.jsonl").read_text(), 10,
              "the first line was not written")
        shutil.rmtree(logs)
        go.write_text("")
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert err.count("the output file was removed; dropping") == 1
