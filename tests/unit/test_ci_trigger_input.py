"""The CI trigger's input handling: parameters, log lines, the deployments file and its pool, refusals that
need no server; and the deploy workflow calls it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from baton.deployment_run import _first_line, parse_params
from baton.errors import UsageError
from baton.registration import _spec_for, deployments_file
from baton_cli import ROOT, run_baton


def test_params_are_json_when_they_parse_and_strings_otherwise() -> None:
    assert parse_params(["root=/srv/shop", "build=true", "timeout_s=60", "steps=[5, 50]", "circuit=", "x= a=b"]) == {
        "root": "/srv/shop", "build": True, "timeout_s": 60, "steps": [5, 50], "circuit": "", "x": " a=b"}


@pytest.mark.parametrize("pair", ["root", "=value", " =x"])
def test_a_param_without_key_is_refused(pair: str) -> None:
    with pytest.raises(UsageError, match="--param takes KEY=VALUE"):
        parse_params([pair])


def test_a_multi_line_log_message_is_shown_as_its_first_line() -> None:
    assert _first_line("Finished in state Completed()") == "Finished in state Completed()"
    assert _first_line("boom\nTraceback (most recent call last):\n  File x\n") == "boom (+2 lines on the server)"


def test_the_deployments_file_is_this_checkouts_and_its_pool_can_change(tmp_path: Path) -> None:
    source = deployments_file()
    assert source == ROOT / "flows" / "prefect.yaml"
    assert _spec_for("baton", source, tmp_path) == source  # already on `baton`: used as it is
    moved = yaml.safe_load(_spec_for("ci-pool", source, tmp_path).read_text())
    original = yaml.safe_load(source.read_text())
    assert {d["work_pool"]["name"] for d in moved["deployments"]} == {"ci-pool"}
    assert [d["entrypoint"] for d in moved["deployments"]] == [d["entrypoint"] for d in original["deployments"]]
    assert {d["name"] for d in original["deployments"]} >= {"apply", "deploy"}


def test_register_refuses_what_cannot_work_before_touching_a_server(tmp_path: Path) -> None:
    env = {"PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_HOME": str(tmp_path / "ph")}
    no_project = run_baton("ci", "register", "--project", str(tmp_path), env=env)
    assert no_project.code == 2 and "holds no baton.yaml" in no_project.stderr
    assert len(no_project.stderr.strip().splitlines()) == 1
    (tmp_path / "baton.yaml").write_text("name: p\n")
    unknown = run_baton("ci", "register", "--project", str(tmp_path), "--name", "nope", env=env)
    assert unknown.code == 2 and "declares no deployment 'nope'; it declares canary-tick" in unknown.stderr
    unset = run_baton("ci", "register", "--project", str(tmp_path), env={**env, "PREFECT_API_URL": ""})
    assert unset.code == 2 and "PREFECT_API_URL is not set" in unset.stderr
    bad = run_baton("ci", "trigger", "apply/apply", "--timeout", "0", env=env)
    assert bad.code == 2 and "--timeout takes a positive number of seconds, got 0" in bad.stderr


def test_the_deploy_workflow_triggers_apply_on_changes_to_the_circuit() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    push = workflow[True]["push"]  # YAML 1.1 reads the key `on` as True
    assert push["branches"] == ["main"] and set(push["paths"]) == {"**/baton.yaml", "**/services/**"}
    job = workflow["jobs"]["deploy"]
    assert set(job["env"]) >= {"PREFECT_API_URL", "PREFECT_API_KEY"}
    assert "secrets.PREFECT_API_KEY" in job["env"]["PREFECT_API_KEY"]
    assert job["steps"][-1]["run"].startswith("baton ci trigger ")
