"""``python -m baton.logpump --node N --out FILE -- ARGV...``: run a slotted
service and append each line it prints to ``service_logs.jsonl`` as
``{node_name, stream, severity, message, timestamp}``.

It is the leader of the service's process group, so stopping the group stops
both; signals it receives are passed on; it exits with the service's code.
Only the standard library is imported, to start fast.
"""

from __future__ import annotations

import argparse
import json
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


def severity(line: str, stream: str) -> str:
    """Syslog ``<N>`` prefixes win; then level words; stderr defaults to warning, stdout to info."""
    match = _SYSLOG.match(line)
    if match:
        return _SYSLOG_LEVELS[int(match.group(1))]
    for name, pattern in _WORDS:
        if pattern.search(line[:200]):
            return name
    return "warning" if stream == "stderr" else "info"


def _pump(stream, name: str, node: str, out, lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        record = {
            "node_name": node,
            "stream": name,
            "severity": severity(line, name),
            "message": _SYSLOG.sub("", line),
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        with lock:
            out.write(json.dumps(record) + "\n")
            out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baton.logpump")
    parser.add_argument("--node", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
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
    lock = threading.Lock()
    with open(args.out, "a", encoding="utf-8") as out:
        pumps = [threading.Thread(target=_pump, args=(s, n, args.node, out, lock), daemon=True)
                 for s, n in ((child.stdout, "stdout"), (child.stderr, "stderr"))]
        for pump in pumps:
            pump.start()
        code = child.wait()
        deadline = time.monotonic() + 2
        for pump in pumps:
            pump.join(max(0.0, deadline - time.monotonic()))
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
