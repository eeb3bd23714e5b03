"""Helpers shared by the test layers: the ``baton`` CLI run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BATON = Path(sys.executable).with_name("baton")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_baton(*args: str, cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None) -> Result:
    """``baton ARGS``; conductors it starts serve no schedules and run no custodian unless ``env`` asks (their
    own tests do): other tests kill services on purpose and must see them stay dead."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "BATON_NO_SCHEDULES": "1", "BATON_NO_CUSTODIAN": "1",
           **(env or {})}
    proc = subprocess.run([str(BATON), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def processes_under(path: Path) -> list[str]:
    """Live processes whose working directory or command line mentions ``path``."""
    found = []
    needle = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.rfind(")") + 2:].startswith("Z"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(needle) or needle in cmdline:
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def run_details(name: str, cwd: Path, ready, timeout: float = 20.0) -> dict:
    """``baton history show NAME --json`` once ``ready(details)`` holds: Prefect records task runs and
    logs asynchronously (events and batched log shipping), so a run's steps appear shortly after it ends."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = run_baton("history", "show", name, "--json", cwd=cwd)
        details = result.json() if result.code == 0 else {}
        if details and ready(details):
            return details
        if time.monotonic() > deadline:
            raise AssertionError(f"history of {name} never became complete: {result.stdout[:2000]} {result.stderr}")
        time.sleep(0.5)


def ok(result: Result) -> Result:
    """The result of a command that must succeed (its output in the failure message otherwise)."""
    assert result.code == 0, f"exit {result.code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def get_json(url: str, timeout: float = 5) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wire_quickstart(project: Path) -> None:
    """The README's quickstart topology: gateway (ingress) -> api -> stripe (egress)."""
    ok(run_baton("node", "add", "gateway", "--role", "ingress", cwd=project))
    ok(run_baton("node", "add", "api", cwd=project))
    ok(run_baton("node", "add", "stripe", "--role", "egress", cwd=project))
    ok(run_baton("edge", "add", "gateway", "api", cwd=project))
    ok(run_baton("edge", "add", "api", "stripe", cwd=project))


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    """The first truthy value of ``predicate()``, polled every ``every`` s; fails after ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def port_free(port: int) -> bool:
    """Nothing on this machine listens on (or holds) loopback ``port`` now."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port the kernel just said is free."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
