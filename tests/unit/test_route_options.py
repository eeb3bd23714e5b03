"""``baton route`` options read as meant, or refused with exit 2 before any flow starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.canary import MAX_NO_DATA_WINDOWS
from baton.cli import route_cmd
from baton.cli.route_cmd import parse_steps, parse_target
from baton.errors import UsageError
from baton_cli import ok, run_baton


@pytest.mark.parametrize(("raw", "strategy", "target"), [
    ("a=58855:70", "weighted", {"name": "a", "host": "127.0.0.1", "port": 58855, "weight": 70}),
    ("b=10.0.0.7:9102:30", "weighted", {"name": "b", "host": "10.0.0.7", "port": 9102, "weight": 30}),
    ("b=localhost:9102", "single", {"name": "b", "host": "localhost", "port": 9102, "weight": 100}),
    ("b=9102", "header", {"name": "b", "host": "127.0.0.1", "port": 9102, "weight": 100}),
    ("b=9102:0", "canary", {"name": "b", "host": "127.0.0.1", "port": 9102, "weight": 0}),
])
def test_targets_read_as_port_and_weight(raw: str, strategy: str, target: dict) -> None:
    assert parse_target(raw, strategy) == target


@pytest.mark.parametrize(("raw", "strategy", "message"), [
    ("a=58855", "weighted", "'a=58855' has no weight; weighted routing needs"),
    ("a=localhost:58855", "canary", "has no weight; canary routing needs"),
    ("a=58855:170", "weighted", "a weight within 0-100"),
    ("a=0:70", "weighted", "a port within 1-65535"),
    ("a=host:port:1", "weighted", "--target expects NAME=HOST:PORT:WEIGHT"),
    ("a", "single", "--target expects"),
    ("a=1:2:3:4", "single", "--target expects"),
])
def test_targets_that_cannot_be_read_are_refused(raw: str, strategy: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_target(raw, strategy)


def test_steps_rise_strictly_and_pct_is_the_first() -> None:
    assert parse_steps("10,25,50,100", None) == [10, 25, 50, 100]
    assert parse_steps("10,25,50", 30) == [30, 50]
    for bad in ("50,10", "10,10", "0,50", "10,150", "ten", ""):
        with pytest.raises(UsageError, match="--steps expects percentages rising strictly within 1-100"):
            parse_steps(bad, None)


def test_the_cli_limit_of_quiet_windows_is_the_policy_one() -> None:
    assert route_cmd.MAX_NO_DATA_WINDOWS == MAX_NO_DATA_WINDOWS


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("opts") / "p"
    ok(run_baton("init", str(root)))
    ok(run_baton("node", "add", "api", cwd=root))
    return root


@pytest.mark.parametrize(("args", "message"), [
    (("--steps", "50,10"), "--steps expects percentages rising strictly within 1-100"),
    (("--eval-interval", "0"), "'--eval-interval'"),
    (("--error-threshold", "-1"), "'--error-threshold'"),
    (("--latency-threshold", "-5"), "'--latency-threshold'"),
    (("--pct", "0"), "'--pct'"),
    (("--pct", "100"), "'--pct'"),
    (("--max-no-data", "0"), "'--max-no-data'"),
    (("--max-duration", "0"), "'--max-duration'"),
])
def test_canary_options_are_refused_before_any_flow(project: Path, args: tuple[str, ...], message: str) -> None:
    result = run_baton("route", "canary", "api", "python app.py", "--promote", *args, cwd=project)
    assert result.code == 2 and message in result.stderr, result.stderr
    assert not (project / ".baton" / "state.json").exists()  # nothing ran


def test_a_weighted_target_is_port_and_weight_or_refused(project: Path) -> None:
    result = run_baton("route", "set", "api", "--strategy", "weighted", "--target", "a=58855:70",
                       "--target", "b=58855", cwd=project)
    assert result.code == 2 and "'b=58855' has no weight" in result.stderr, result.stderr
