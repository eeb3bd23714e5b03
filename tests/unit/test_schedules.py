"""The scheduled deployments baton serve takes from flows/prefect.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.cli.schedules import deployments_file, load_flow, scheduled_deployments
from baton.errors import BatonError


def test_the_canary_tick_is_declared_on_an_interval() -> None:
    found = {d.name: d for d in scheduled_deployments(environ={})}
    tick = found["canary-tick"]
    assert tick.interval_s == 30 and tick.entrypoint == "flows/canary.py:canary_tick"
    assert "action:canary-tick" in tick.tags
    assert "apply" not in found  # triggered from CI, not scheduled


def test_every_entrypoint_names_a_flow() -> None:
    import yaml

    document = yaml.safe_load(deployments_file().read_text())
    for entry in document["deployments"]:
        flow = load_flow(entry["entrypoint"])
        assert hasattr(flow, "to_deployment"), entry["entrypoint"]
        assert "root" in flow.parameters.properties


def test_the_interval_can_be_overridden_per_project() -> None:
    tick = next(d for d in scheduled_deployments(environ={"BATON_SCHEDULE_CANARY_TICK_S": "2.5"}))
    assert tick.env_override == "BATON_SCHEDULE_CANARY_TICK_S" and tick.interval_s == 2.5


@pytest.mark.parametrize("value", ["0", "soon", "-1"])
def test_a_bad_override_is_one_clear_sentence(value: str) -> None:
    with pytest.raises(BatonError, match="BATON_SCHEDULE_CANARY_TICK_S expects a positive number of seconds"):
        scheduled_deployments(environ={"BATON_SCHEDULE_CANARY_TICK_S": value})


def test_an_unreadable_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "prefect.yaml"
    bad.write_text("deployments: [\n")
    with pytest.raises(BatonError, match="cannot read the deployments file"):
        scheduled_deployments(bad, environ={})
