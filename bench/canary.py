"""Canary promotion time: the foreground flow (`--promote`) against the scheduled tick (`--detach`).

    .venv/bin/python bench/canary.py [--runs 3] [--interval 1] [--tick 1]

A one-node circuit serves a real service under a steady load (4 clients); a healthy canary with steps
20,50,100 is promoted, which takes at least 4 evaluation intervals (3 steps, then Promoting -> Succeeded).
Prints, per driver, the median time from the command to the canary's conclusion and its ratio to that
floor, and the requests that failed during the run. Figures only; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BATON = str(Path(sys.executable).with_name("baton"))
SERVICE = f"{sys.executable} {Path(__file__).resolve().parent.parent / 'examples' / 'shop' / 'services' / 'users.py'}"


def baton(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run([BATON, *args], cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode not in (0,):
        raise SystemExit(f"baton {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


class Load:
    def __init__(self, url: str, clients: int = 4) -> None:
        self.url, self.ok, self.failed, self.stop = url, 0, 0, threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    response.read()
                    self.ok += 1
            except OSError:
                self.failed += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def concluded(project: Path, env: dict[str, str]) -> dict | None:
    node = json.loads(baton("status", "--json", cwd=project, env=env))["nodes"][0]
    return node["canary"] if node["canary"] and not node["canary"]["in_flight"] else None


def one(detach: bool, interval: float, tick: float) -> tuple[float, int, int]:
    env = {**os.environ, "BATON_NO_CUSTODIAN": "1", "BATON_NO_SCHEDULES": "0" if detach else "1",
           "BATON_SCHEDULE_CANARY_TICK_S": str(tick)}
    with tempfile.TemporaryDirectory(prefix="baton-canary-") as tmp:
        project = Path(tmp) / "can"
        baton("init", str(project), cwd=Path(tmp), env=env)
        baton("node", "add", "api", cwd=project, env=env)
        port = json.loads(baton("status", "--json", cwd=project, env=env))["nodes"][0]["port"]
        try:
            baton("up", "--mock", cwd=project, env=env)
            baton("slot", "api", SERVICE, cwd=project, env=env)
            args = ["route", "canary", "api", SERVICE, "--promote", "--eval-interval", str(interval),
                    "--min-requests", "10", "--steps", "20,50,100", *(["--detach"] if detach else [])]
            with Load(f"http://127.0.0.1:{port}/users/42") as load:
                time.sleep(0.5)
                start = time.perf_counter()
                baton(*args, cwd=project, env=env)
                while not concluded(project, env):
                    time.sleep(0.1)
                elapsed = time.perf_counter() - start
            outcome = concluded(project, env)
            if outcome["phase"] != "Succeeded":
                raise SystemExit(f"the canary was not promoted: {outcome}")
            return elapsed, load.ok, load.failed
        finally:
            subprocess.run([BATON, "down", "--all"], cwd=project, capture_output=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--tick", type=float, default=1.0)
    args = parser.parse_args()
    floor = 4 * args.interval
    print(f"{'driver':>28} {'runs':>5} {'to conclusion, median':>22} {'/ floor':>8} {'requests':>9} {'failed':>7}")
    for detach in (False, True):
        results = [one(detach, args.interval, args.tick) for _ in range(args.runs)]
        median = statistics.median(r[0] for r in results)
        name = f"scheduled tick every {args.tick:g} s" if detach else "foreground --promote"
        print(f"{name:>28} {args.runs:>5} {median:>20.2f} s {median / floor:>8.2f} "
              f"{sum(r[1] for r in results):>9} {sum(r[2] for r in results):>7}")


if __name__ == "__main__":
    sys.exit(main())
