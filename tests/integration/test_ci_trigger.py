"""What the deploy workflow runs: ``baton ci register`` puts the `apply` deployment on the session's Prefect
server, a real process worker picks its runs up, and ``baton ci trigger`` runs it and waits for the result:
exit 0 when the circuit converged on baton.yaml, 1 with the reason when the run failed, 2 on bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.config import derive_management_port
from baton_cli import ROOT, free_port, ok, port_free, run_baton

pytestmark = pytest.mark.integration

PREFECT = str(Path(sys.executable).with_name("prefect"))


def node_port() -> str:
    """A free traffic port whose derived management port is free too (other sessions run circuits here)."""
    while True:
        port = free_port()
        if port_free(derive_management_port(port)):
            return str(port)


def add_node(project: Path, name: str, *args: str) -> None:
    ok(run_baton("node", "add", name, "--port", node_port(), *args, cwd=project))


def nodes(project: Path) -> dict[str, dict]:
    return {n["name"]: n for n in ok(run_baton("status", "--json", cwd=project)).json()["nodes"]}


@pytest.fixture
def ci_env(tmp_path: Path, prefect_api: str) -> dict[str, str]:
    """What the CI job has: the server's address (a team server there), its own Prefect home."""
    return {"PREFECT_API_URL": prefect_api, "PREFECT_HOME": str(tmp_path / "prefect-home")}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """gateway -> api (not running); whatever a test starts in it is stopped afterwards."""
    project = tmp_path / "shop"
    ok(run_baton("init", str(project)))
    try:
        add_node(project, "gateway", "--role", "ingress")
        add_node(project, "api")
        ok(run_baton("edge", "add", "gateway", "api", cwd=project))
        yield project
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


@pytest.fixture
def pool(project: Path, ci_env: dict[str, str]) -> str:
    """A fresh process work pool holding the `apply` deployment for ``project`` (``baton ci register``)."""
    name = f"ci-{uuid.uuid4().hex[:8]}"
    registered = ok(run_baton("ci", "register", "--project", str(project), "--pool", name, "--name", "apply",
                              "--json", env=ci_env, timeout=180)).json()
    assert registered["pool_created"] and registered["deployments"] == ["apply/apply"], registered
    assert registered["file"] == str(ROOT / "flows" / "prefect.yaml")  # this checkout's flows, not another's
    return name


@pytest.fixture
def worker(tmp_path: Path, pool: str, ci_env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A real ``prefect worker`` serving ``pool``, stopped by process group afterwards."""
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen([PREFECT, "worker", "start", "--pool", pool], cwd=tmp_path, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, **ci_env, "PREFECT_WORKER_QUERY_SECONDS": "1"})
    try:
        yield process
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=30)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def trigger(*args: str, env: dict[str, str]):
    return run_baton("ci", "trigger", *args, env=env, timeout=400)


def test_a_ci_triggered_apply_converges_the_circuit_and_a_failed_run_fails_the_job(
        project: Path, pool: str, worker: subprocess.Popen, ci_env: dict[str, str]) -> None:
    ok(run_baton("up", "--mock", "--no-conductor", cwd=project, timeout=180))
    add_node(project, "search")
    ok(run_baton("edge", "add", "api", "search", cwd=project))
    assert nodes(project)["search"]["health"] != "healthy"

    done = ok(trigger("apply/apply", "--timeout", "300", "--poll", "0.5", "--tag", "commit:abc123", "--json",
                      env=ci_env))
    outcome = done.json()
    assert outcome["state"] == "Completed" and outcome["deployment"] == "apply/apply", outcome
    assert outcome["parameters"] == {} and not outcome["timed_out"]
    lines = done.stderr.splitlines()
    assert lines[0].startswith("[") and "triggered apply/apply" in lines[0] and pool in lines[0], done.stderr
    states = [line.split("] ", 1)[1] for line in lines if "] " in line and "|" not in line.split("] ", 1)[1]]
    lifecycle = ["Scheduled", "Pending", "Submitting", "Running", "Completed"]  # a poll may miss any but the end
    seen = [state for state in states if state in lifecycle]
    assert seen[-1] == "Completed" and seen == sorted(seen, key=lifecycle.index), done.stderr
    search = nodes(project)["search"]
    assert search["state"] == "mock" and search["health"] == "healthy", search

    # the run is Prefect's record: the server holds it, Completed, with the job's tag; the project's history too
    assert outcome["flow_run_name"] == "apply-shop"
    runs = ok(run_baton("history", "--action", "apply", "--json", cwd=project)).json()["runs"]
    assert [(r["name"], r["state"], r["actor"]) for r in runs] == [("apply-shop", "Completed", "ci")], runs
    shown = subprocess.run([PREFECT, "flow-run", "inspect", outcome["flow_run_id"]], capture_output=True, text=True,
                           env={**os.environ, **ci_env, "COLUMNS": "200"}, timeout=60)
    assert "COMPLETED" in shown.stdout and "commit:abc123" in shown.stdout, shown.stdout[-2000:]

    config = project / "baton.yaml"
    valid = config.read_text()
    config.write_text(valid + "\nedges:\n  - {from: api, to: ghost}\n")
    try:
        failed = trigger("apply/apply", "--timeout", "300", "--poll", "0.5", env=ci_env)
    finally:  # `down --all` needs a valid baton.yaml to stop what this test started
        config.write_text(valid)
    assert failed.code == 1, (failed.stdout, failed.stderr)
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: apply/apply: flow run apply-shop ended Failed after "), failed.stderr
    assert 'ConfigError: baton.yaml line' in last and 'duplicate key "edges"' in last, last
    assert "Traceback" not in failed.stderr, failed.stderr


def test_bad_input_is_refused_in_one_sentence(pool: str, ci_env: dict[str, str]) -> None:
    unknown = trigger("apply/nope", env=ci_env)
    assert unknown.code == 2 and unknown.stdout == ""
    assert unknown.stderr.strip() == (f"error: no deployment named 'apply/nope' on {ci_env['PREFECT_API_URL']}; "
                                      "the server knows " + unknown.stderr.split("the server knows ")[1].strip())
    assert "apply/apply" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1

    wrong = trigger("apply", "--param", "rooot=/tmp", env=ci_env)  # a bare deployment name is enough when unique
    assert wrong.code == 2 and "apply/apply takes no parameter 'rooot'; it takes" in wrong.stderr, wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1

    unset = run_baton("ci", "trigger", "apply/apply", env={"PREFECT_API_URL": "", "PREFECT_HOME": ci_env["PREFECT_HOME"]})
    assert unset.code == 2 and "PREFECT_API_URL is not set" in unset.stderr
    gone = trigger("apply/apply", env={**ci_env, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert gone.code == 1 and "cannot reach the Prefect API at http://127.0.0.1:9/api" in gone.stderr
    assert "Traceback" not in unknown.stderr + wrong.stderr + unset.stderr + gone.stderr


def test_a_run_no_worker_takes_times_out_and_says_how_to_cancel_it(pool: str, ci_env: dict[str, str]) -> None:
    waited = trigger("apply/apply", "--timeout", "2", "--poll", "0.2", "--json", env=ci_env)
    assert waited.code == 1 and waited.json()["timed_out"] and waited.json()["state"] == "Scheduled", waited
    last = waited.stderr.strip().splitlines()[-1]
    assert last.startswith("error: apply/apply: flow run ") and last.endswith(" if it must not.")
    assert " is still Scheduled after 2 s; it goes on on the server: cancel it with `" in last, last
    cancel = last.split("`")[1]
    assert cancel == f"prefect flow-run cancel {waited.json()['flow_run_id']}"
    done = subprocess.run(cancel.split(), capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ci_env, "PATH": f"{Path(PREFECT).parent}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr
