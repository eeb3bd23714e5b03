"""``python -m baton.logpump --node N --out FILE [--lease PATH] -- ARGV...``: run
a slotted service and append each line it prints to ``service_logs.jsonl`` as
``{node_name, pid, stream, severity, message, timestamp}`` (``pid`` is the pump's own: the pid Baton
records for the instance, so the lines of one instance can be told from an earlier one's). A line longer
than 64 KiB is cut into several records. The file is rotated by size (see ``_Output``).

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

With ``--taint-file PATH --sightings-file PATH`` (taint analysis on), each line is also scanned for the active
canaries of PATH (``.baton/taint_canaries.jsonl``, read again when it changes, looked at once a second at most)
and every one found is appended to the sightings file as ``{fingerprint, kind, node, direction: "log", part:
stdout|stderr, time, pid}`` (one per canary and line), for the conductor to judge: canary data must not be
logged. The sightings file is appended under an flock and rotated past 10 MiB to ``.1``. While canaries are
active the pump also says how far it has got in ``.baton/logpumps/<pid>.json`` (``_Progress``), so that the taint
soak waits for every pump to scan for its canaries and to catch up, rather than for a guessed time.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
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
MAX_BYTES_ENV = "BATON_SERVICE_LOG_MAX_BYTES"
KEEP_ENV = "BATON_SERVICE_LOG_KEEP"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 3
MAX_LINE_BYTES = 64 * 1024


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
    """The JSONL file the pumps append to, rotated by size; once it cannot be written, lines are dropped.

    Every pump of a project appends to the same file. The one whose write takes the file past
    ``BATON_SERVICE_LOG_MAX_BYTES`` (default 10 MiB) rotates it under an flock on ``<file>.lock``:
    ``<file>.1`` becomes ``<file>.2`` and so on up to ``BATON_SERVICE_LOG_KEEP`` (default 3) files, the
    oldest is removed, the file becomes ``<file>.1`` and a new one is started. At most every ``CHECK_S`` a
    pump checks that its open file is still the one with the name (rotated by another pump, or removed)
    and reopens the name when it is not: a file removed while open would take writes into an inode nobody
    can read, holding its disk space. When the name cannot be opened again (its directory is gone, the
    disk is full), the output is dropped.
    """

    CHECK_S = 1.0

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.dropped = 0
        self.next_check = 0.0
        self.max_bytes = _env_int(MAX_BYTES_ENV, DEFAULT_MAX_BYTES, 4096)
        self.keep = _env_int(KEEP_ENV, DEFAULT_KEEP, 1)
        self.file = self._open()

    def _open(self):  # noqa: ANN202 - a text file or None
        try:
            return open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            print(f"baton.logpump: cannot open {self.path}: {exc.strerror}; dropping the service's output",
                  file=sys.stderr)
            return None

    def write(self, line: str) -> None:
        with self.lock:
            if self.file is None:
                self.dropped += 1
                return
            try:
                now = time.monotonic()
                if now >= self.next_check:
                    self.next_check = now + self.CHECK_S
                    if not self._still_named():
                        return
                self.file.write(line)
                self.file.flush()
                if self.file.tell() > self.max_bytes:
                    self._rotate()
            except (OSError, ValueError) as exc:  # ValueError: closed at exit while a pump still runs
                print(f"baton.logpump: cannot write the output any more ({exc}); dropping the service's output",
                      file=sys.stderr)
                self._drop()
                self.dropped += 1

    def _still_named(self) -> bool:
        """Whether the open file still has the name; reopen the name when not. False: the line is dropped."""
        mine = os.fstat(self.file.fileno())
        try:
            named = os.stat(self.path)
            if (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino):
                return True
        except FileNotFoundError:
            if os.path.isdir(os.path.dirname(self.path) or "."):
                named = None  # removed: start it again
            else:
                print("baton.logpump: the output file was removed; dropping the service's output", file=sys.stderr)
                self._drop()
                self.dropped += 1
                return False
        self._drop()
        self.file = self._open()
        if self.file is None:
            self.dropped += 1
            return False
        return True

    def _rotate(self) -> None:
        """Rotate the file unless another pump did since our write; then write to the new one."""
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            mine = os.fstat(self.file.fileno())
            try:
                named = os.stat(self.path)
            except FileNotFoundError:
                named = None
            if named is not None and (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino):
                for index in range(self.keep - 1, 0, -1):
                    try:
                        os.replace(f"{self.path}.{index}", f"{self.path}.{index + 1}")
                    except FileNotFoundError:
                        pass
                os.replace(self.path, f"{self.path}.1")
            self._drop()
            self.file = self._open()

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


def _env_int(name: str, default: int, floor: int) -> int:
    """A whole number from the environment, at least ``floor``; ``default`` when unset or not a number."""
    try:
        return max(floor, int(os.environ.get(name, "") or default))
    except ValueError:
        return default


class _Taint:
    """The active canaries (re-read when their file changes) and the appending of the sightings among them."""

    CHECK_S = 1.0
    MAX_BYTES = 10 * 1024 * 1024

    def __init__(self, canaries: str, sightings: str, node: str) -> None:
        from baton_adapter.taint import values  # standard library only; imported only when taint is on

        self.values = values
        self.canaries = canaries
        self.sightings = sightings
        self.node = node
        self.lock = threading.Lock()
        self.active: dict[str, str] = {}  # fingerprint -> kind
        self.seen: tuple[int, int, int] | None = None
        self.next_check = 0.0

    def _refresh(self, force: bool = False) -> None:
        with self.lock:
            now = time.monotonic()
            if now < self.next_check and not force:
                return
            self.next_check = now + self.CHECK_S
            try:
                stat = os.stat(self.canaries)
                seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            except OSError:
                seen = None
            if seen == self.seen:
                return
            self.seen = seen
            active = {}
            try:
                with open(self.canaries, "rb") as file:
                    for raw in file:
                        try:
                            record = json.loads(raw)
                            fingerprint, kind = record["fingerprint"], record["kind"]
                        except (ValueError, TypeError, KeyError):
                            continue  # a corrupt line (or one being appended): skipped
                        if kind in self.values.FAMILIES and isinstance(fingerprint, str) and len(fingerprint) == 8:
                            active[fingerprint] = kind
            except OSError:
                pass
            self.active = active

    def scan(self, raw: bytes, stream: str, instance: int) -> None:
        self._refresh()
        active = self.active
        if not active:
            return
        found: dict[str, str] = {}
        for token in self.values.find(raw):
            kind = active.get(token.fingerprint)
            if kind is not None and self.values.FAMILIES[kind] == token.family:
                found[token.fingerprint] = kind
        if found:
            now = time.time()
            self._append("".join(json.dumps({"fingerprint": fp, "kind": kind, "node": self.node, "direction": "log",
                                             "part": stream, "time": now, "pid": instance}) + "\n"
                                 for fp, kind in found.items()))

    def _append(self, text: str) -> None:
        try:
            with open(self.sightings + ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    if os.stat(self.sightings).st_size > self.MAX_BYTES:
                        os.replace(self.sightings, self.sightings + ".1")
                except FileNotFoundError:
                    pass
                with open(self.sightings, "a", encoding="utf-8") as file:
                    file.write(text)
        except OSError:
            pass  # the project is going away, or the disk is full: the sighting is lost like the line would be


class _Reader:
    """What one pump thread is doing, for ``_Progress``: waiting in ``readline`` or not, and lines done."""

    __slots__ = ("fd", "reading", "lines")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reading = False
        self.lines = 0


def _pump(stream, name: str, node: str, out: _Output, taint: _Taint | None = None,
          reader: _Reader | None = None) -> None:
    instance = os.getpid()  # the pump leads the service's process group: the instance's recorded pid
    reader = reader or _Reader(-1)
    while True:
        reader.reading = True
        raw = stream.readline(MAX_LINE_BYTES)  # a longer line is cut into records
        reader.reading = False
        if not raw:
            break
        if taint is not None:
            taint.scan(raw, name, instance)
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        record = {
            "node_name": node,
            "pid": instance,
            "stream": name,
            "severity": severity(line, name),
            "message": _SYSLOG.sub("", line),
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        out.write(json.dumps(record) + "\n")
        reader.lines += 1


class _Progress:
    """How far this pump has got, for the taint soak (taint analysis on): every ``TICK_S`` it reloads the
    canaries when their file changed, and writes ``<state>/logpumps/<pid>.json`` holding ``registry``, the
    version ([inode, size, mtime_ns]) of the canaries file it scans for, and ``caught_up``, a time before which
    every line the service printed has been scanned: both pipes were empty and both readers waiting in
    ``readline`` with no new line, at two ticks in a row (so a reader's buffer holds at most an unfinished line).
    The file is rewritten only while canaries are active (a soak is running) and removed at exit."""

    TICK_S = 0.1

    def __init__(self, taint: _Taint, readers: list[_Reader], node: str) -> None:
        self.taint = taint
        self.readers = readers
        self.path = os.path.join(os.path.dirname(taint.canaries), "logpumps", f"{os.getpid()}.json")
        self.node = node
        self.written: tuple[object, float] | None = None
        self.last: tuple[float, tuple[tuple[bool, int], ...]] | None = None  # the previous quiet tick
        self.caught_up = 0.0

    def run(self) -> None:
        while True:
            self.tick()
            time.sleep(self.TICK_S)

    def tick(self) -> None:
        now = time.time()
        self.taint._refresh(force=True)
        snapshot = tuple((r.reading, r.lines) for r in self.readers)
        quiet = all(reading for reading, _ in snapshot) and not any(_readable(r.fd) for r in self.readers)
        if quiet and self.last is not None and self.last[1] == snapshot:
            self.caught_up = self.last[0]
        self.last = (now, snapshot) if quiet else None
        registry = self.taint.seen
        if self.written is not None and (not self.taint.active or self.written == (registry, self.caught_up)):
            return  # no soak running (nothing to report) or nothing new
        self.written = (registry, self.caught_up)
        record = {"pid": os.getpid(), "node": self.node, "registry": list(registry) if registry else None,
                  "caught_up": self.caught_up, "written": now}
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            temporary = f"{self.path}.tmp"
            with open(temporary, "w", encoding="utf-8") as file:
                file.write(json.dumps(record))
            os.replace(temporary, self.path)
        except OSError:
            pass  # the project is going away: nobody waits for this pump

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _readable(fd: int) -> int:
    """Bytes waiting in pipe ``fd`` (0 when it cannot be asked)."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


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
    parser.add_argument("--taint-file", help="the active canaries (.baton/taint_canaries.jsonl) to look for")
    parser.add_argument("--sightings-file", help="where canaries found in the output are appended")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    if (args.taint_file is None) != (args.sightings_file is None):
        parser.error("--taint-file and --sightings-file go together; give both or neither")
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
    taint = None
    if args.taint_file is not None:  # absolute: the pump may outlive its working directory
        taint = _Taint(os.path.abspath(args.taint_file), os.path.abspath(args.sightings_file), args.node)
    streams = ((child.stdout, "stdout"), (child.stderr, "stderr"))
    readers = [_Reader(stream.fileno()) for stream, _ in streams]
    pumps = [threading.Thread(target=_pump, args=(stream, name, args.node, out, taint, reader), daemon=True)
             for (stream, name), reader in zip(streams, readers, strict=True)]
    for pump in pumps:
        pump.start()
    progress = _Progress(taint, readers, args.node) if taint is not None else None
    if progress is not None:
        threading.Thread(target=progress.run, daemon=True).start()
    if lease is not None:
        threading.Thread(target=_watch_lease, args=(lease, interval, child), daemon=True).start()
    code = child.wait()
    deadline = time.monotonic() + 2
    for pump in pumps:
        pump.join(max(0.0, deadline - time.monotonic()))
    out.close()
    if progress is not None:
        progress.remove()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
