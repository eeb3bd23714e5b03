"""Idle cost: the memory and CPU Baton's processes hold while N projects sit idle.

    .venv/bin/python bench/idle.py --window 60 [--projects 1,5] [--settle 150] [--json]

For each N, N throwaway projects are built in one temporary directory with the real ``baton`` CLI (the
quickstart circuit: an ingress ``gateway`` calling ``api``, distinct ports per project), booted, and given one
real service each (``python -m http.server``). Every call gets a fresh ``BATON_HOME`` in that directory,
``DO_NOT_TRACK=1`` and no ``PREFECT_*`` or other ``BATON_*`` variable of the caller's, so the defaults
(custodian and schedules on) are what is measured. Idle means no command for a while: the default settle (150 s)
outlasts the conductor's shedding of Prefect (``BATON_CONDUCTOR_SHED_S``, 120 s), as an idle project's would.
After ``--settle`` seconds the run's processes (those whose
cwd, command line or environment names the temporary directory, and their descendants) are watched for
``--window`` seconds: RSS (VmRSS) and PSS (smaps_rollup) at both ends; CPU time (utime+stime) polled from
/proc every 0.5 s, so a process spawned during the window counts from its last sample. A second CPU total
takes the children reaped by surviving processes from their parents' cutime+cstime, exactly.

Prints, per N: a table by role (processes alive at the end; CPU % of one core over the window, spawned ones
included), the totals with the issue's targets for N=5, and what was spawned during the window. Cleanup always
runs (Ctrl-C too): ``baton down --all`` per project, ``baton server stop`` when that command exists, then
whatever still runs is reported as left over (a bug) and killed by process group. Figures only; not a test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

BATON = str(Path(sys.executable).with_name("baton"))
SERVICE = f"{sys.executable} -m http.server --bind 127.0.0.1 $BATON_SERVICE_PORT"
TICK_S = 0.5
CLK_TCK = os.sysconf("SC_CLK_TCK")
ROLES = ("prefect server", "conductor", "adapter host", "log pump", "service", "prefect (other)", "other")
TARGET_N, TARGET_RSS_MB, TARGET_CPU_PCT = 5, 350.0, 2.0


@dataclass(frozen=True)
class Proc:
    """One process of the run as /proc showed it at one moment."""

    pid: int
    start_ticks: int
    ppid: int
    pgid: int
    zombie: bool
    cpu_ticks: int  # utime + stime
    child_ticks: int  # cutime + cstime: children it has reaped
    cmd: str
    rss_kb: int = 0
    pss_kb: int = 0

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.start_ticks


def role_of(cmd: str, parent: str | None = None) -> str:
    words = cmd.split()
    if "baton.logpump" in cmd:  # before "service": the pump's argv carries the service's
        return "log pump"
    if "baton_adapter" in cmd:
        return "adapter host"
    if "prefect server" in cmd:
        return "prefect server"
    if "serve" in words and any(w.endswith(("baton", "baton.cli.main")) for w in words):
        return "conductor"
    if "http.server" in cmd:
        return "service"
    if "prefect" in cmd or ("multiprocessing" in cmd and parent in ("conductor", "prefect server", "prefect (other)")):
        return "prefect (other)"  # Prefect's Runner starts each scheduled run as a multiprocessing spawn child
    return "other"


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _kb(text: bytes, field: bytes) -> int:
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith(field)), 0)


def scan(tmp: str, memory: bool = False) -> dict[tuple[int, int], Proc]:
    """Every process of the run: those naming ``tmp`` in cwd, command line or environment, and descendants."""
    needle, me = tmp.encode(), os.getpid()
    stats: dict[int, list[str]] = {}
    marked: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
        if not stat:
            continue
        stats[pid] = stat[stat.rfind(")") + 2:].split()  # the name (field 2) may hold spaces and ')'
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd").encode()
        except OSError:
            cwd = b""
        if needle in cwd or needle in _read(f"/proc/{pid}/cmdline") or needle in _read(f"/proc/{pid}/environ"):
            marked.add(pid)
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    todo = list(marked)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in marked:
                marked.add(child)
                todo.append(child)
    found = {}
    for pid in marked:
        f = stats[pid]
        cmd = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
        rss = _kb(_read(f"/proc/{pid}/status"), b"VmRSS:") if memory else 0
        pss = _kb(_read(f"/proc/{pid}/smaps_rollup"), b"Pss:") if memory else 0
        proc = Proc(pid, int(f[19]), int(f[1]), int(f[2]), f[0] == "Z", int(f[11]) + int(f[12]),
                    int(f[13]) + int(f[14]), cmd, rss, pss)
        found[proc.key] = proc
    return found


def baton(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run([BATON, *args], check=False, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"baton {' '.join(args)} failed ({cwd}): {proc.stderr.strip()}")
    return proc.stdout


def free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def build(tmp: Path, n: int, env: dict[str, str], projects: list[Path]) -> None:
    """N quickstart-like circuits, each up with one real service on ``api``."""
    # Data ports and their management ports (+10000) both below the ephemeral range (32768+), where an outgoing
    # connection could take one between the check and the bind; random, as tests pick ports nearby too.
    base = random.randrange(11000, 20000)
    ports = list(itertools.islice((port for port in range(base, 22000) if free(port) and free(port + 10000)), 2 * n))
    for i in range(n):
        project = tmp / f"idle{i}"
        projects.append(project)
        baton("init", str(project), cwd=tmp, env=env)
        baton("node", "add", "gateway", "--role", "ingress", "--port", str(ports[2 * i]), cwd=project, env=env)
        baton("node", "add", "api", "--port", str(ports[2 * i + 1]), cwd=project, env=env)
        baton("edge", "add", "gateway", "api", cwd=project, env=env)
        baton("up", cwd=project, env=env)
        baton("slot", "api", SERVICE, cwd=project, env=env)
        print(f"  project {i + 1}/{n} up", file=sys.stderr)


def mb(procs: list[Proc]) -> dict[str, float]:
    return {"rss_mb": round(sum(p.rss_kb for p in procs) / 1024, 1),
            "pss_mb": round(sum(p.pss_kb for p in procs) / 1024, 1)}


def sample(tmp: str, window: float) -> dict[str, Any]:
    """Watch the run's processes for ``window`` seconds; figures by role and in total."""
    start = scan(tmp, memory=True)
    t0 = time.monotonic()
    last, tick = dict(start), t0 + TICK_S
    while tick < t0 + window:
        time.sleep(max(0.0, tick - time.monotonic()))
        last.update(scan(tmp))
        tick += TICK_S
    time.sleep(max(0.0, t0 + window - time.monotonic()))
    end = scan(tmp, memory=True)
    elapsed = time.monotonic() - t0
    last.update(end)
    by_pid = {p.pid: p for p in last.values()}
    role: dict[tuple[int, int], str] = {}
    for p in sorted(last.values(), key=lambda p: p.start_ticks):  # parents first
        role[p.key] = role_of(p.cmd, role.get(by_pid[p.ppid].key) if p.ppid in by_pid else None)
    spawned = [p for k, p in last.items() if k not in start]
    alive = [p for p in end.values() if not p.zombie]
    survivors = {p.pid for p in alive}

    def pct(ticks: int) -> float:
        return round(100.0 * ticks / CLK_TCK / elapsed, 2)

    def cpu(p: Proc) -> int:  # from its last sample
        return p.cpu_ticks - (start[p.key].cpu_ticks if p.key in start else 0)

    def whole(p: Proc) -> int:  # reaped children taken from their parent's cutime+cstime instead
        was = start.get(p.key)
        if p.key not in end and p.ppid in survivors:  # in its parent's cutime, its whole life
            return -(was.cpu_ticks + was.child_ticks) if was else 0
        return cpu(p) + (p.child_ticks - (was.child_ticks if was else 0) if p.key in end else 0)

    roles = {}
    for name in ROLES:
        here = [p for p in alive if role[p.key] == name]
        seen = [p for p in last.values() if role[p.key] == name]
        if seen:
            roles[name] = {"count": len(here), **mb(here),
                           "cpu_pct": pct(sum(cpu(p) for p in seen)),
                           "spawned": sum(role[p.key] == name for p in spawned)}
    parent = {p.key: role[by_pid[p.ppid].key] if p.ppid in by_pid else "outside the run" for p in spawned}
    at_start = [p for p in start.values() if not p.zombie]
    return {
        "window_s": round(elapsed, 1),
        "roles": roles,
        "total": {"count": len(alive), **mb(alive),
                  "cpu_pct": pct(sum(cpu(p) for p in last.values())), "spawned": len(spawned)},
        "cpu_pct_reaped_exact": pct(sum(whole(p) for p in last.values())),
        "at_window_start": {"count": len(at_start), **mb(at_start)},
        "spawned_commands": dict(Counter(f"{p.cmd[:150]} (child of {parent[p.key]})" for p in spawned)),
    }


def quietly(argv: list[str], cwd: str | Path, env: dict[str, str]) -> str | None:
    """Run a cleanup command: None when it worked, else what went wrong (cleanup goes on either way)."""
    what = f"baton {shlex.join(argv[1:])} in {cwd}"
    try:
        proc = subprocess.run(argv, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return f"{what}: timed out"
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return None if proc.returncode == 0 else f"{what}: exit {proc.returncode}: {tail}"


def remaining(tmp: str, patience: float) -> list[Proc]:
    deadline = time.monotonic() + patience
    while (left := [p for p in scan(tmp).values() if not p.zombie]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def cleanup(tmp: str, projects: list[Path], env: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Stop everything the run started; what still ran afterwards (then killed), and the commands that failed."""
    failed = [quietly([BATON, "down", "--all"], project, env) for project in projects if project.exists()]
    has_server = subprocess.run([BATON, "server", "--help"], check=False, env=env, capture_output=True, timeout=60)
    if has_server.returncode == 0:
        failed.append(quietly([BATON, "server", "stop"], tmp, env))
    left = remaining(tmp, 5.0)  # a process on its way out is not a leftover
    report = [{"pid": p.pid, "role": role_of(p.cmd), "cmd": p.cmd[:200]} for p in left]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in left:
            try:
                if p.pgid == os.getpgrp():  # never our own group
                    os.kill(p.pid, sig)
                else:
                    os.killpg(p.pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        left = remaining(tmp, 5.0)
    return report, [f for f in failed if f]


def run(n: int, settle: float, window: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="baton-idle-", ignore_cleanup_errors=True) as name:
        tmp = Path(name)
        (tmp / "home").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BATON_"))}
        env |= {"BATON_HOME": str(tmp / "home"), "DO_NOT_TRACK": "1"}
        projects: list[Path] = []
        try:
            print(f"N={n}: building in {tmp}", file=sys.stderr)
            began = time.monotonic()
            build(tmp, n, env, projects)
            setup_s = round(time.monotonic() - began, 1)
            print(f"N={n}: settling {settle:g} s, then sampling {window:g} s", file=sys.stderr)
            time.sleep(settle)
            result = {"projects": n, "setup_s": setup_s, **sample(str(tmp), window)}
        finally:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
            try:
                leftovers, failed = cleanup(str(tmp), projects, env)
            finally:
                signal.signal(signal.SIGINT, previous)
            print(f"N={n}: cleaned up; {len(failed)} cleanup command(s) failed, {len(leftovers)} process(es) "
                  "left over", file=sys.stderr)
        result |= {"cleanup_failures": failed, "leftovers": leftovers}
        if n == TARGET_N:
            result["targets"] = {"rss_mb_max": TARGET_RSS_MB, "cpu_pct_max": TARGET_CPU_PCT,
                                 "rss_met": result["total"]["rss_mb"] <= TARGET_RSS_MB,
                                 "cpu_met": result["cpu_pct_reaped_exact"] <= TARGET_CPU_PCT}
        return result


def show(r: dict[str, Any]) -> None:
    print(f"\n{r['projects']} project(s): setup {r['setup_s']:.1f} s, window {r['window_s']:.1f} s")
    print(f"{'role':<16} {'count':>5} {'RSS MB':>8} {'PSS MB':>8} {'CPU %':>7} {'spawned':>8}")
    for name, x in [*r["roles"].items(), ("total", r["total"])]:
        print(f"{name:<16} {x['count']:>5} {x['rss_mb']:>8.1f} {x['pss_mb']:>8.1f} {x['cpu_pct']:>7.2f} "
              f"{x['spawned']:>8}")
    print(f"{'total, reaped':<16} {'':>5} {'':>8} {'':>8} {r['cpu_pct_reaped_exact']:>7.2f}   "
          "(children reaped by surviving processes counted exactly)")
    if "targets" in r:
        t, rss, cpu = r["targets"], r["total"]["rss_mb"], r["cpu_pct_reaped_exact"]
        print(f"{'target (issue)':<16} {'':>5} {'<= ' + format(t['rss_mb_max'], 'g'):>8} {'':>8} "
              f"{'<= ' + format(t['cpu_pct_max'], 'g'):>7}   now RSS {rss / t['rss_mb_max']:.1f}x and CPU "
              f"{cpu / t['cpu_pct_max']:.1f}x the target")
    s = r["at_window_start"]
    print(f"at the window's start: {s['count']} processes, {s['rss_mb']:.1f} MB RSS, {s['pss_mb']:.1f} MB PSS")
    print(f"spawned during the window: {r['total']['spawned']}")
    for cmd, count in r["spawned_commands"].items():
        print(f"  {count} x {cmd}")
    for line in r["cleanup_failures"]:
        print(f"cleanup command failed: {line}")
    print(f"left over after cleanup (killed): {len(r['leftovers'])}")
    for p in r["leftovers"]:
        print(f"  {p['role']}: {p['cmd']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", default="1,5", help="comma-separated project counts (default 1,5)")
    parser.add_argument("--settle", type=float, default=150.0,
                        help="seconds to wait after start-up (default 150: past the conductor's shedding of Prefect)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds to sample (default 60)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    counts = [int(c) for c in args.projects.split(",") if c.strip().isdigit() and int(c) > 0]
    if not counts or len(counts) != len(args.projects.split(",")):
        parser.error(f"--projects expects positive counts such as 1,5; got {args.projects!r}.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks on SIGTERM too
    here = os.getcwd() + os.sep
    command = shlex.join([p.removeprefix(here) for p in (sys.executable, os.path.abspath(sys.argv[0]))]
                         + sys.argv[1:])
    prefect = metadata.version("prefect")  # installed with baton
    machine = {"cores": os.cpu_count(), "python": sys.version.split()[0], "prefect": prefect}
    if not args.json:
        print(f"$ {command}")
        print(f"({machine['cores']} cores, Python {machine['python']}, Prefect {prefect}; settle {args.settle:g} s, "
              f"window {args.window:g} s; CPU % is of one core)")
    results = []
    for n in counts:
        results.append(run(n, args.settle, args.window))
        if not args.json:
            show(results[-1])
    if args.json:
        print(json.dumps({"command": command, "machine": machine, "settle_s": args.settle, "runs": results},
                         indent=2))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (cleaned up)")
