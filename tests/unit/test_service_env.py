"""The environment a service gets, where the management token comes from, and how drift is judged: pure
functions and the token file, no server."""

from __future__ import annotations

import stat
import subprocess
import threading
from pathlib import Path

import pytest

from baton.config import CircuitConfig
from baton.control import (GENERATED_TOKEN_ENV, ControlClient, ControlTokenMissing, control_token,
                           ensure_token_file, read_token_file, token_env)
from baton.state import CanaryRecord, NodeState, ServiceSlot
from baton.wiring import adapter_node, base_env, command_env, service_env, service_environment
from providers.local import exactly, pump_env
from tasks.observe import drift

NODES = {"nodes": [{"name": "web", "port": 8001, "role": "ingress"}, {"name": "api", "port": 8003}],
         "edges": [{"source": "web", "target": "api"}]}
OPEN = CircuitConfig.model_validate({"name": "c", **NODES})
NAMED = CircuitConfig.model_validate({"name": "c", **NODES,
                                      "security": {"control": {"auth": True, "token_env": "SHOP_TOKEN"}}})

BATON_ENV = {
    "PATH": "/usr/bin:/bin", "HOME": "/home/u", "USER": "u", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
    "TMPDIR": "/tmp/x", "PREFECT_API_URL": "http://127.0.0.1:4200/api", "PREFECT_LOGGING_LEVEL": "INFO",
    "BATON_HOME": "/home/u/.baton", "BATON_LEASE": "/p/.baton/leases/x.json", "BATON_CONTROL_TOKEN": "t",
    "SHOP_TOKEN": "s", "AWS_SECRET_ACCESS_KEY": "k", "VIRTUAL_ENV": "/venv", "BATON_LEASE_CHECK_S": "0.5",
}


def test_a_service_environment_is_the_base_and_batons_variables_only() -> None:
    env = service_env(OPEN, OPEN.node("web"), service_port=41000)
    whole = service_environment(BATON_ENV, env)
    assert set(whole) == {"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "BATON_SERVICE_PORT", "BATON_SERVICE_HOST",
                          "BATON_NODE_NAME", "BATON_CONTROL_PORT", "BATON_API_URL", "PORT"}
    assert whole["PORT"] == whole["BATON_SERVICE_PORT"] == "41000"
    assert base_env({"LC_TIME": "x", "LCX": "y"}) == {"LC_TIME": "x"}


def test_the_service_runs_under_env_i_and_the_pump_keeps_no_secret() -> None:
    argv = exactly({"A": "1", "PATH": "/usr/bin:/bin"}, ["sh", "-c", "env"])
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=BATON_ENV).stdout
    shells_own = ("PWD=", "SHLVL=", "_=")  # what sh itself sets
    assert sorted(line for line in out.split() if not line.startswith(shells_own)) == ["A=1", "PATH=/usr/bin:/bin"]
    pump = pump_env(BATON_ENV)
    assert "BATON_LEASE_CHECK_S" in pump and not {"SHOP_TOKEN", "BATON_CONTROL_TOKEN", "PREFECT_API_URL",
                                                   "BATON_HOME", "AWS_SECRET_ACCESS_KEY"} & set(pump)


def test_commands_cannot_expand_the_token_or_batons_own_variables() -> None:
    env = service_env(NAMED, NAMED.node("api"), service_port=41000)
    names = command_env(NAMED, BATON_ENV, env)
    assert "SHOP_TOKEN" not in names and "BATON_CONTROL_TOKEN" not in names and "BATON_HOME" not in names
    assert not [k for k in names if k.startswith("PREFECT_")]
    assert names["BATON_SERVICE_PORT"] == "41000" and names["HOME"] == "/home/u"


def test_every_adapter_requires_a_token_whatever_security_says() -> None:
    root = Path("/p")
    assert adapter_node(OPEN, OPEN.node("api"), root=root, backend=None)["token_env"] == GENERATED_TOKEN_ENV
    assert adapter_node(NAMED, NAMED.node("api"), root=root, backend=None)["token_env"] == "SHOP_TOKEN"
    off = CircuitConfig.model_validate({"name": "c", **NODES, "security": {"control": {"auth": False}}})
    assert adapter_node(off, off.node("api"), root=root, backend=None)["token_env"] == GENERATED_TOKEN_ENV
    assert token_env(OPEN) == GENERATED_TOKEN_ENV and token_env(NAMED) == "SHOP_TOKEN"


def test_a_token_env_of_batons_own_is_refused() -> None:
    with pytest.raises(ValueError, match="PREFECT_API_KEY is a variable Baton or Prefect sets itself"):
        CircuitConfig.model_validate({"name": "c", **NODES, "security": {"control": {"token_env": "PREFECT_API_KEY"}}})


def test_the_generated_token_is_private_from_its_creation_and_generated_once(tmp_path: Path) -> None:
    state_dir = tmp_path / ".baton"
    assert read_token_file(state_dir) is None and control_token(OPEN, state_dir) is None
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(ensure_token_file(state_dir))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1 and len(tokens[0]) >= 32
    assert stat.S_IMODE((state_dir / "control_token").stat().st_mode) == 0o600
    assert [p.name for p in state_dir.iterdir()] == ["control_token"]  # no temporary file left
    assert ControlClient.for_node(OPEN, "api", state_dir=state_dir).token == tokens[0]
    (state_dir / "control_token").chmod(0o644)  # an older Baton's file
    assert ensure_token_file(state_dir) == tokens[0]
    assert stat.S_IMODE((state_dir / "control_token").stat().st_mode) == 0o600


def test_a_missing_token_variable_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_TOKEN", raising=False)
    with pytest.raises(ControlTokenMissing, match="security.control.token_env names SHOP_TOKEN, which is not set"):
        control_token(NAMED, tmp_path, create=True)
    with pytest.raises(ControlTokenMissing, match="SHOP_TOKEN"):
        ControlClient.for_node(NAMED, "api", state_dir=tmp_path)
    assert not (tmp_path / "control_token").exists()
    monkeypatch.setenv("SHOP_TOKEN", "from-the-variable")
    assert ControlClient.for_node(NAMED, "api", state_dir=tmp_path).token == "from-the-variable"


def _live(port: int) -> ServiceSlot:
    return ServiceSlot(is_mock=False, host="127.0.0.1", port=port)


def test_drift_is_a_route_baton_did_not_record() -> None:
    node = NodeState(node_name="api", service=_live(41000))
    assert drift(node, [], {"host": "127.0.0.1", "port": 41000, "name": "primary", "weight": 100}) is None
    assert drift(node, [], {"host": "127.0.0.1", "port": 9, "name": "primary", "weight": 100}) == (
        "changed outside Baton: adapter routes to 127.0.0.1:9, state says 127.0.0.1:41000")
    assert drift(node, [], {"mock": True, "name": "primary"}).endswith("routes to its mock, state says 127.0.0.1:41000")
    assert drift(NodeState(node_name="api"), [], {"mock": True}) is None
    assert drift(NodeState(node_name="api"), [], {"host": "10.0.0.1", "port": 80}) == (
        "changed outside Baton: adapter routes to 10.0.0.1:80, state says its mock")
    # a command in progress: the version it is starting (pending) or retiring is Baton's
    assert drift(node, [_live(41001)], {"host": "127.0.0.1", "port": 41001}) is None


def test_drift_of_a_split_compares_its_targets() -> None:
    routing = {"strategy": "weighted", "targets": [{"name": "a", "host": "127.0.0.1", "port": 41000, "weight": 50},
                                                   {"name": "b", "host": "127.0.0.1", "port": 41001, "weight": 50}]}
    node = NodeState(node_name="api", service=_live(41000), targets={"b": _live(41001)}, routing=routing)
    assert drift(node, [], {"strategy": "weighted", "targets": routing["targets"]}) is None
    assert drift(node, [], {"host": "127.0.0.1", "port": 41001}) is None  # promoted by a command in flight
    rewired = {"strategy": "weighted", "targets": [{"host": "127.0.0.1", "port": 41000, "weight": 50},
                                                   {"host": "127.0.0.1", "port": 6666, "weight": 50}]}
    assert "6666" in drift(node, [], rewired)
    locked = NodeState(node_name="api", service=_live(41002),
                       routing={"strategy": "single", "targets": [{"host": "127.0.0.1", "port": 41000}], "locked": 1})
    assert drift(locked, [], {"host": "127.0.0.1", "port": 41002}) is None  # a lock's table names what served then


def test_drift_of_a_split_compares_its_weights_unless_a_canary_moves_them() -> None:
    routing = {"strategy": "weighted", "targets": [{"name": "a", "host": "127.0.0.1", "port": 41000, "weight": 80},
                                                   {"name": "b", "host": "127.0.0.1", "port": 41001, "weight": 20}]}
    node = NodeState(node_name="api", service=_live(41000), targets={"b": _live(41001)}, routing=routing)
    flipped = {"strategy": "weighted", "targets": [{**routing["targets"][0], "weight": 0},
                                                   {**routing["targets"][1], "weight": 100}]}
    assert drift(node, [], flipped) == ("changed outside Baton: adapter splits 127.0.0.1:41000 0% / 127.0.0.1:41001 "
                                        "100%, state says 127.0.0.1:41000 80% / 127.0.0.1:41001 20%")
    assert drift(node, [], {"strategy": "weighted", "targets": routing["targets"]}) is None
    canary = {"strategy": "canary", "targets": [{"name": "stable", "host": "127.0.0.1", "port": 41000, "weight": 90},
                                                {"name": "canary", "host": "127.0.0.1", "port": 41001, "weight": 10}]}
    moving = NodeState(node_name="api", service=_live(41000), targets={"canary": _live(41001)}, routing=canary,
                       canary=CanaryRecord(command="run", policy={}, weight=25))
    stepped = {"strategy": "canary", "targets": [{**canary["targets"][0], "weight": 75},
                                                 {**canary["targets"][1], "weight": 25}]}
    assert moving.canary.in_flight and drift(moving, [], stepped) is None
