"""``python -m baton.logpump --node N --out FILE [--lease PATH] -- ARGV...``: run
a slotted service and append each line it prints to ``service_logs.jsonl`` as
``{node_name, stream, severity, message, timestamp}``.

It is the leader of the service's process group, so stopping the group stops
both; signals it receives are passed on; it exits with the service's code.
Only the standard library is imported, to start fast.

With ``--lease PATH``, a daemon thread checks every ``BATON_LEASE_CHECK_S``
seconds (default 2) that PATH still exists; once it is gone (deleted, or its
whole project directory removed) the service gets SIGTERM, then SIGKILL after
5 s, and the pump exits with it. A lease that is gone at start is refused
(exit 2) before the service starts. When the output file cannot be written
(its directory vanished, the disk is full, it was removed), lines are dropped:
the service's pipes keep being drained, so it never blocks on a full pipe.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

_SYSLOG = re.compile(r"^<([0-7])>")
_WORDS = (
    ("critical", re.compile(r"\b(CRITICAL|FATAL|PANIC|EMERG(ENCY)?|ALERT)\b", re.I)),
    ("error", re.compile(r"\b(ERROR|ERR|EXCEPTION|TRACEBACK)\b", re.I)),
    ("warning", re.compile(r"\b(WARN(ING)?)\b", re.I)),
    ("debug", re.compile(r"\b(DEBUG|TRACE)\b", re.I)),
    ("info", re.compile(r"\b(INFO|NOTICE)\b", re.I)),
)
_SYSLOG_LEVELS = ("critical", "critical", "critical", "error", "warning", "info", "info", "debug")
LEASE_CHECK_ENV = "BATON_LEASE_CHECK_S"
DEFAULT_LEASE_CHECK_S = 2.0
STOP_GRACE_S = 5.0


def severity(line: str, stream: str) -> str:
    """Syslog ``<N>`` prefixes win; then level words; stderr defaults to warning, stdout to info."""
    match = _SYSLOG.match(line)
    if match:
        return _SYSLOG_LEVELS[int(match.group(1))]
    for name, pattern in _WORDS:
        if pattern.search(line[:200]):
            return name
    return "warning" if stream == "stderr" else "info"


class _Output:
    """The JSONL file the pumps append to; once it cannot be written, lines are dropped (counted).

    A file removed while open would still take writes, into an inode nobody can read that holds its disk
    space until we exit; so at most every ``LINK_CHECK_S`` a write checks that the file still has a name.
    """

    LINK_CHECK_S = 1.0

    def __init__(self, path: str) -> None:
        self.lock = threading.Lock()
        self.dropped = 0
        self.next_link_check = 0.0
        try:
            self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            print(f"baton.logpump: cannot open {path}: {exc.strerror}; dropping the service's output",
                  file=sys.stderr)
            self.file = None

    def write(self, line: str) -> None:
        with self.lock:
            if self.file is None:
                self.dropped += 1
                return
            try:
                now = time.monotonic()
                if now >= self.next_link_check:
                    self.next_link_check = now + self.LINK_CHECK_S
                    if os.fstat(self.file.fileno()).st_nlink == 0:
                        print("baton.logpump: the output file was removed; dropping the service's output",
                              file=sys.stderr)
                        self._drop()
                        self.dropped += 1
                        return
                self.file.write(line)
                self.file.flush()
            except (OSError, ValueError) as exc:  # ValueError: closed at exit while a pump still runs
                print(f"baton.logpump: cannot write the output any more ({exc}); dropping the service's output",
                      file=sys.stderr)
                self._drop()
                self.dropped += 1

    def close(self) -> None:
        with self.lock:
            self._drop()

    def _drop(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            try:
                file.close()
            except (OSError, ValueError):
                pass  # the unwritten buffer is lost with the output


def _pump(stream, name: str, node: str, out: _Output) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        record = {
            "node_name": node,
            "stream": name,
            "severity": severity(line, name),
            "message": _SYSLOG.sub("", line),
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        out.write(json.dumps(record) + "\n")


def lease_gone(path: str) -> bool:
    """Whether ``path`` no longer exists (any other error, e.g. EACCES, does not end the lease)."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno in (errno.ENOENT, errno.ENOTDIR)
    return False


def lease_check_interval() -> float:
    """Seconds between lease checks, from ``BATON_LEASE_CHECK_S`` (default 2); ValueError when invalid."""
    raw = os.environ.get(LEASE_CHECK_ENV, "").strip()
    if not raw:
        return DEFAULT_LEASE_CHECK_S
    value = float(raw)
    if not 0 < value <= 3600:
        raise ValueError(raw)
    return value


def _stop(child: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM ``child``, then SIGKILL it if it is still running after ``grace_s``."""
    try:
        child.terminate()
        child.wait(grace_s)
    except subprocess.TimeoutExpired:
        try:
            child.kill()
        except ProcessLookupError:
            pass
    except ProcessLookupError:
        pass


def _watch_lease(path: str, interval_s: float, child: subprocess.Popen) -> None:
    """Stop ``child`` once the lease is gone (the main thread then sees it exit)."""
    while child.poll() is None:
        time.sleep(interval_s)
        if lease_gone(path):
            print(f"baton.logpump: lease {path} is gone: stopping", file=sys.stderr)
            _stop(child, STOP_GRACE_S)
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baton.logpump")
    parser.add_argument("--node", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--lease", help="stop the service and exit once this path no longer exists")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    lease = interval = None
    if args.lease is not None:
        lease = os.path.abspath(args.lease)  # the pump may outlive its working directory
        try:
            interval = lease_check_interval()
        except ValueError:
            parser.error(f"{LEASE_CHECK_ENV} must be a number of seconds in (0, 3600], "
                         f"got {os.environ.get(LEASE_CHECK_ENV)!r}")
        if lease_gone(lease):
            parser.error(f"lease {lease} does not exist; create it before starting the service")
    try:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"baton: cannot start {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127

    def forward(signum, _frame) -> None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    out = _Output(args.out)
    pumps = [threading.Thread(target=_pump, args=(s, n, args.node, out), daemon=True)
             for s, n in ((child.stdout, "stdout"), (child.stderr, "stderr"))]
    for pump in pumps:
        pump.start()
    if lease is not None:
        threading.Thread(target=_watch_lease, args=(lease, interval, child), daemon=True).start()
    code = child.wait()
    deadline = time.monotonic() + 2
    for pump in pumps:
        pump.join(max(0.0, deadline - time.monotonic()))
    out.close()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
