"""The log pump with taint on: a real ``python -m baton.logpump`` around a real child process. Active canaries in
its output (re-encoded as logs re-encode them) become sightings; inactive ones and look-alikes do not; a
canary file that changes is read again; without the taint arguments nothing is scanned."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from baton_adapter.taint.values import canary_value

from baton.config import CircuitConfig
from baton.taint import plan_seed

CONFIG = CircuitConfig.model_validate({"name": "c", "taint": {"enabled": True},
                                       "nodes": [{"name": "api", "port": 20001}]})


def _pump(tmp_path: Path, script: str, *, taint: bool = True) -> subprocess.CompletedProcess:
    program = tmp_path / "service.py"
    program.write_text(script)
    extra = ["--taint-file", str(tmp_path / "canaries.jsonl"), "--sightings-file",
             str(tmp_path / "sightings.jsonl")] if taint else []
    return subprocess.run([sys.executable, "-m", "baton.logpump", "--node", "api", "--out", str(tmp_path / "log.jsonl"),
                           *extra, "--", sys.executable, str(program)], capture_output=True, text=True, timeout=60)


def _sightings(tmp_path: Path) -> list[dict]:
    path = tmp_path / "sightings.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _seed(tmp_path: Path, kinds: list[str]) -> dict[str, str]:
    canaries = plan_seed(CONFIG, kinds=kinds)
    (tmp_path / "canaries.jsonl").write_text("".join(json.dumps(c.model_dump()) + "\n" for c in canaries))
    return {c.kind: c.value for c in canaries} | {f"{c.kind}_fp": c.fingerprint for c in canaries}


def test_active_canaries_in_the_output_become_sightings(tmp_path: Path) -> None:
    seeded = _seed(tmp_path, ["email", "card", "ssn"])
    card = seeded["card"]
    spaced = " ".join(card[i:i + 4] for i in range(0, 16, 4))  # a log that prints the card the human way
    inactive = canary_value("email", "0badf00d")
    script = (f"import sys\n"
              f"print('user {seeded['email'].upper()} paid with', {spaced!r}, flush=True)\n"
              f"print('ssn', {seeded['ssn']!r}, 'twice', {seeded['ssn']!r}, file=sys.stderr, flush=True)\n"
              f"print('nothing here, and', {inactive!r}, flush=True)\n")
    result = _pump(tmp_path, script)
    assert result.returncode == 0, result.stderr
    found = sorted((s["fingerprint"], s["kind"], s["part"]) for s in _sightings(tmp_path))
    assert found == sorted([(seeded["email_fp"], "email", "stdout"), (seeded["card_fp"], "card", "stdout"),
                            (seeded["ssn_fp"], "ssn", "stderr")])  # one per canary and line
    for sighting in _sightings(tmp_path):
        assert sighting["node"] == "api" and sighting["direction"] == "log" and sighting["pid"] > 0
        assert sighting["time"] > 0
    logged = [json.loads(line)["message"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(logged) == 3  # the log itself is unchanged


def test_a_canary_file_that_changes_is_read_again(tmp_path: Path) -> None:
    (tmp_path / "canaries.jsonl").write_text("")
    canary = plan_seed(CONFIG, kinds=["phone"])[0]
    stop = tmp_path / "stop"
    script = (f"import os, time\n"
              f"deadline = time.monotonic() + 30\n"
              f"while not os.path.exists({str(stop)!r}) and time.monotonic() < deadline:\n"
              f"    print('calling', {canary.value!r}, flush=True)\n"
              f"    time.sleep(0.05)\n")
    program = tmp_path / "service.py"
    program.write_text(script)
    pump = subprocess.Popen([sys.executable, "-m", "baton.logpump", "--node", "api", "--out",
                             str(tmp_path / "log.jsonl"), "--taint-file", str(tmp_path / "canaries.jsonl"),
                             "--sightings-file", str(tmp_path / "sightings.jsonl"), "--", sys.executable,
                             str(program)])
    try:
        log = tmp_path / "log.jsonl"
        deadline = time.monotonic() + 20
        while not (log.exists() and log.read_text().count("\n") >= 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sightings(tmp_path) == []  # printed while no canary was active
        (tmp_path / "canaries.jsonl").write_text(json.dumps(canary.model_dump()) + "\n")
        while not _sightings(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sightings(tmp_path)[0]["fingerprint"] == canary.fingerprint
    finally:
        stop.write_text("")
        pump.wait(30)


def test_without_the_taint_arguments_nothing_is_scanned(tmp_path: Path) -> None:
    seeded = _seed(tmp_path, ["email"])
    result = _pump(tmp_path, f"print({seeded['email']!r})\n", taint=False)
    assert result.returncode == 0 and _sightings(tmp_path) == []


def test_one_taint_argument_alone_is_refused(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "baton.logpump", "--node", "api", "--out", str(tmp_path / "o"),
                             "--taint-file", str(tmp_path / "c"), "--", "true"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "--taint-file and --sightings-file go together" in result.stderr


def test_the_pump_says_which_canaries_it_scans_for_and_when_it_has_caught_up(tmp_path: Path) -> None:
    from baton.taint.pumps import behind, live_pumps, not_scanning

    state = tmp_path
    (state / "taint_canaries.jsonl").write_text("")
    program = tmp_path / "service.py"
    program.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-m", "baton.logpump", "--node", "api", "--out", str(tmp_path / "log.jsonl"),
                             "--taint-file", str(state / "taint_canaries.jsonl"), "--sightings-file",
                             str(state / "sightings.jsonl"), "--", sys.executable, str(program)])
    try:
        from baton.taint.pumps import registry_version

        def until(predicate, timeout: float = 20.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                value = predicate()
                if value:
                    return value
                time.sleep(0.05)
            raise AssertionError("the pump did not get there")

        until(lambda: live_pumps(state))  # written once with no canary active
        seeded = _seed(state, ["email"])  # a soak seeds: the pump scans for the new file within a tick
        (state / "canaries.jsonl").replace(state / "taint_canaries.jsonl")
        version = registry_version(state)
        until(lambda: not not_scanning(live_pumps(state), version))
        ended = time.time()
        until(lambda: not behind(live_pumps(state), ended))  # idle service: caught up past the traffic's end
        (pump,) = live_pumps(state)
        assert pump.node == "api" and pump.pid == proc.pid and pump.caught_up >= ended
        assert seeded["email"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not live_pumps(state) and not list((state / "logpumps").glob("*.json"))  # removed at exit
