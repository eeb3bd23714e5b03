"""Self-healing time: ``kill -9`` of a slotted service (or of its adapter host) until its node answers from a
new instance.

    .venv/bin/python bench/heal.py [--kills 5] [--probe 1 5] [--target service|adapter]

For each probe interval, a throwaway one-node circuit runs a real service; each round kills the service's
process group (``--target adapter``: the adapter host's) with SIGKILL and polls the node's public port every
20 ms until an answer comes from a new process. Prints, per interval: the median and worst time to heal and
the repair's own time (the heal-restart or heal-adapter flow, from `baton history`). Figures only; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BATON = str(Path(sys.executable).with_name("baton"))
SERVICE = f"{sys.executable} {Path(__file__).resolve().parent.parent / 'examples' / 'shop' / 'services' / 'users.py'}"


def baton(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run([BATON, *args], cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"baton {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def victim_pid(project: Path, target: str) -> int:
    """The process group leader that is killed: the service of ``api``, or the adapter host serving it."""
    state = json.loads((project / ".baton" / "state.json").read_text())
    if target == "adapter":
        return next(h["process"]["pid"] for h in state["hosts"].values() if "api" in h["nodes"])
    return state["adapters"]["api"]["service"]["process"]["pid"]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


def heal_runs(project: Path, env: dict[str, str], target: str) -> list[float]:
    action = "heal-adapter" if target == "adapter" else "heal-restart"
    runs = json.loads(baton("history", "--action", action, "--json", cwd=project, env=env))
    return [r["duration_s"] for r in runs["runs"] if r["duration_s"] is not None]


def measure(interval: float, kills: int, target: str) -> dict[str, float]:
    env = {**os.environ, "BATON_PROBE_INTERVAL_S": str(interval), "BATON_NO_SCHEDULES": "1"}
    with tempfile.TemporaryDirectory(prefix="baton-heal-") as tmp:
        project = Path(tmp) / "heal"
        baton("init", str(project), cwd=Path(tmp), env=env)
        baton("node", "add", "api", cwd=project, env=env)
        port = json.loads(baton("status", "--json", cwd=project, env=env))["nodes"][0]["port"]
        url = f"http://127.0.0.1:{port}/users/42"
        try:
            baton("up", "--mock", cwd=project, env=env)
            baton("slot", "api", SERVICE, cwd=project, env=env)
            healed = []
            for _ in range(kills):
                time.sleep(interval + 1.0)  # a healthy verdict first
                pid = victim_pid(project, target)
                start = time.perf_counter()
                os.killpg(pid, signal.SIGKILL)
                while not (victim_pid(project, target) != pid and answers(url)):
                    if time.perf_counter() - start > 120:
                        raise SystemExit("the service was not healed within 120 s")
                    time.sleep(0.02)
                healed.append(time.perf_counter() - start)
            flows = heal_runs(project, env, target)
        finally:
            subprocess.run([BATON, "down", "--all"], cwd=project, capture_output=True, env=env)
    return {"interval_s": interval, "median_s": statistics.median(healed), "worst_s": max(healed),
            "flow_median_s": statistics.median(flows) if flows else float("nan"), "kills": kills}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--probe", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--target", choices=("service", "adapter"), default="service",
                        help="what is killed: the slotted service or the adapter host serving the node")
    args = parser.parse_args()
    print(f"kill -9 of the {'adapter host' if args.target == 'adapter' else 'service'}; "
          f"command: .venv/bin/python bench/heal.py --kills {args.kills} --target {args.target}")
    print(f"{'probe interval':>15} {'kills':>6} {'healed median':>14} {'worst':>8} {'heal flow median':>17} "
          f"{'median / interval':>18}")
    for interval in args.probe:
        r = measure(interval, args.kills, args.target)
        print(f"{r['interval_s']:>13.1f} s {r['kills']:>6} {r['median_s']:>12.2f} s {r['worst_s']:>6.2f} s "
              f"{r['flow_median_s']:>15.2f} s {r['median_s'] / r['interval_s']:>18.2f}")


if __name__ == "__main__":
    sys.exit(main())
