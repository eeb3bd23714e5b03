"""Zero lost requests under contention: every action that changes what serves a node, under steady load,
with CPU-burning processes beside it.

    .venv/bin/python bench/stress.py [--swaps 10] [--canaries 3] [--heals 3] [--collapses 1] [--burners 2] [--json]

A throwaway one-node circuit (the shop's users service and contract) gets a steady load of GET /users/42
from ``--workers`` keep-alive clients while ``--burners`` processes spin on the CPU. Then, in turn: ``swap``
to a new instance; ``route canary --promote`` to 100 %; ``kill -9`` of the service until the custodian's
heal serves again; ``route ab`` at 50/50 and ``route clear``; ``collapse`` to the mock and ``slot`` back;
``up`` of the running circuit. Each request is counted under the action running when it completed: sent,
failed (any answer but 200, or no answer), and its latency. Prints one row per action and the total; exits 1
when any request failed. ``--json`` prints the same as one document (the drill test asserts on it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

BATON = str(Path(sys.executable).with_name("baton"))
SHOP = Path(__file__).resolve().parent.parent / "examples" / "shop"
SERVICE = f"{sys.executable} {SHOP / 'services' / 'users.py'}"
BURN = "while True: pass"


class PhasedLoad:
    """Steady concurrent GETs in a background thread, counted under the phase current when each completes."""

    def __init__(self, url: str, workers: int) -> None:
        self.url, self.workers = url, workers
        self.phase = "warm-up"
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.failures: dict[str, Counter[str]] = {}
        self.latencies: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def _count(self, started: float, outcome: str) -> None:
        phase = self.phase
        self.sent[phase] += 1
        self.latencies.setdefault(phase, []).append(time.perf_counter() - started)
        if outcome != "200":
            self.failed[phase] += 1
            self.failures.setdefault(phase, Counter())[outcome] += 1

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                async with session.get(self.url) as resp:
                    body = await resp.read()
                    self._count(started, str(resp.status) if resp.status == 200 else f"{resp.status} {body[:120]!r}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._count(started, type(exc).__name__)

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await asyncio.gather(*(self._worker(session) for _ in range(self.workers)))

    def wait_answers(self, answers: int, timeout: float = 30.0) -> None:
        """Until ``answers`` more requests completed (the load flows), not for a guessed time."""
        target = sum(self.sent.values()) + answers
        deadline = time.monotonic() + timeout
        while sum(self.sent.values()) < target:
            if time.monotonic() > deadline:
                raise SystemExit(f"the load got fewer than {answers} answers in {timeout:g} s")
            time.sleep(0.01)

    def __enter__(self) -> PhasedLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(90)


@contextlib.contextmanager
def cpu_burners(count: int) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


def baton(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run([BATON, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"baton {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_pid(project: Path) -> int | None:
    state = json.loads((project / ".baton" / "state.json").read_text())
    process = state["adapters"]["users"]["service"].get("process")
    return process["pid"] if process else None


def heal(project: Path, env: dict[str, str]) -> None:
    """kill -9 the service's process group; return once a new instance serves and the custodian says so."""
    pid = service_pid(project)
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        if time.monotonic() > deadline:
            raise SystemExit("the killed service was not healed within 120 s")
        time.sleep(0.2)
        if service_pid(project) in (None, pid):
            continue
        node = json.loads(baton("status", "--json", cwd=project, env=env))["nodes"][0]
        if node["health"] == "healthy" and (node["custodian"] or {}).get("status") in ("healthy", "restarted"):
            return


def drill(args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "BATON_PROBE_INTERVAL_S": "1", "BATON_NO_SCHEDULES": "1", "NO_COLOR": "1"}
    env.pop("BATON_NO_CUSTODIAN", None)
    canary = ["route", "canary", "users", SERVICE, "--promote", "--steps", "50,100", "--eval-interval", "2",
              "--min-requests", "10", "--latency-threshold", "10000"]
    actions: list[tuple[str, Any]] = (
        [("swap", lambda p: baton("swap", "users", SERVICE, cwd=p, env=env))] * args.swaps
        + [("canary", lambda p: baton(*canary, cwd=p, env=env))] * args.canaries
        + [("heal", lambda p: heal(p, env))] * args.heals
        + [("ab", lambda p: (baton("route", "ab", "users", SERVICE, "--split", "50/50", cwd=p, env=env),
                             baton("route", "clear", "users", cwd=p, env=env)))] * args.collapses
        + [("collapse", lambda p: (baton("collapse", cwd=p, env=env),
                                   baton("slot", "users", SERVICE, cwd=p, env=env)))] * args.collapses
        + [("up", lambda p: baton("up", cwd=p, env=env))] * args.collapses
    )
    with tempfile.TemporaryDirectory(prefix="baton-stress-") as tmp:
        project = Path(tmp) / "stress"
        baton("init", str(project), cwd=Path(tmp), env=env)
        shutil.copytree(SHOP / "specs", project / "specs")
        port = free_port()
        baton("node", "add", "users", "--port", str(port), "--contract", "specs/users.yaml", cwd=project, env=env)
        try:
            baton("up", "--mock", cwd=project, env=env)
            baton("slot", "users", SERVICE, cwd=project, env=env)
            with cpu_burners(args.burners), PhasedLoad(f"http://127.0.0.1:{port}/users/42", args.workers) as load:
                load.wait_answers(50)
                for name, action in actions:
                    load.phase = name
                    action(project)
                    load.wait_answers(20)  # the load flows after the action too
                load.phase = "after"
                load.wait_answers(20)
        finally:
            subprocess.run([BATON, "down", "--all"], cwd=project, capture_output=True, env=env, timeout=300)
    rows = []
    for name in dict.fromkeys(["warm-up", *(n for n, _ in actions), "after"]):
        latencies = sorted(load.latencies.get(name, [0.0]))
        rows.append({"action": name, "runs": sum(1 for n, _ in actions if n == name), "sent": load.sent[name],
                     "failed": load.failed[name], "failures": dict(load.failures.get(name, {})),
                     "p50_ms": round(1000 * statistics.median(latencies), 1),
                     "max_ms": round(1000 * latencies[-1], 1)})
    return {"burners": args.burners, "workers": args.workers, "rows": rows, "project": str(project),
            "sent": sum(load.sent.values()), "failed": sum(load.failed.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--canaries", type=int, default=3)
    parser.add_argument("--heals", type=int, default=3)
    parser.add_argument("--collapses", type=int, default=1, help="rounds of collapse-and-back, A/B and up")
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = drill(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"steady load of {args.workers} clients, {args.burners} CPU burners; "
              f"command: .venv/bin/python bench/stress.py --swaps {args.swaps} --canaries {args.canaries} "
              f"--heals {args.heals}")
        print(f"{'action':>10} {'runs':>5} {'sent':>8} {'failed':>7} {'p50 ms':>8} {'max ms':>9}")
        for row in result["rows"]:
            print(f"{row['action']:>10} {row['runs']:>5} {row['sent']:>8} {row['failed']:>7} {row['p50_ms']:>8} "
                  f"{row['max_ms']:>9}")
            for outcome, count in row["failures"].items():
                print(f"{'':>10}   {count} x {outcome}")
        print(f"{'total':>10} {'':>5} {result['sent']:>8} {result['failed']:>7}")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
