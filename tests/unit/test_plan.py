"""The apply plan engine: declared vs running, as ordered steps."""

from __future__ import annotations

from baton.plan import make_plan

POLICY = {"timeout_ms": 30000, "retries": 0, "retry_backoff_ms": 100, "circuit_breaker_threshold": 0}


def entry(name: str, port: int, **extra) -> dict:
    return {"name": name, "host": "127.0.0.1", "port": port, "management_port": port + 10000, "mode": "http",
            "role": "service", "policy": POLICY, **extra}


def plan(**overrides):
    base = dict(
        declared_nodes=["a", "b"],
        wanted_entries={"a": entry("a", 9001), "b": entry("b", 9002)},
        running=True,
        hosts={"h1": ["a", "b"]},
        running_entries={"a": entry("a", 9001, backend={"mock": True}), "b": entry("b", 9002)},
        wanted_routing={},
        running_routing={"a": {"strategy": "single", "targets": [{"name": "primary", "port": 1}]}, "b": None},
        live_services={},
        wanted_env={"a": {}, "b": {}},
    )
    base.update(overrides)
    return [(s.kind, s.target, s.nodes) for s in make_plan(**base).steps]


def test_nothing_to_do_when_everything_matches() -> None:
    assert plan() == []


def test_boot_when_nothing_runs() -> None:
    assert plan(running=False) == [("boot", "circuit", ("a", "b"))]


def test_changed_port_reboots_the_host_and_new_nodes_get_a_host() -> None:
    steps = plan(declared_nodes=["a", "b", "c"],
                 wanted_entries={"a": entry("a", 9001), "b": entry("b", 9012), "c": entry("c", 9003)},
                 wanted_env={"a": {}, "b": {}, "c": {}})
    assert steps == [("reboot-host", "h1", ("a", "b")), ("add-node", "c", ("c",))]


def test_removed_node_stops_first_then_its_host_reboots_without_it() -> None:
    steps = plan(declared_nodes=["a"], wanted_entries={"a": entry("a", 9001)})
    assert steps == [("remove-node", "b", ("b",)), ("reboot-host", "h1", ("a",))]
    alone = plan(declared_nodes=["a"], wanted_entries={"a": entry("a", 9001)}, hosts={"h1": ["a"], "h2": ["b"]})
    assert alone == [("remove-node", "b", ("b",)), ("stop-host", "h2", ())]


def test_policy_change_from_an_edge_reboots() -> None:
    steps = plan(wanted_entries={"a": entry("a", 9001), "b": entry("b", 9002, policy={**POLICY, "retries": 2})})
    assert steps == [("reboot-host", "h1", ("a", "b"))]


def test_changed_dependencies_respawn_a_live_service() -> None:
    steps = plan(live_services={"a": {"BATON_SERVICE_PORT": "1", "BATON_B_URL": "http://127.0.0.1:9002"}},
                 wanted_env={"a": {}, "b": {}})
    assert steps == [("respawn-service", "a", ("a",))]
    same = plan(live_services={"a": {"BATON_B_URL": "http://127.0.0.1:9002"}},
                wanted_env={"a": {"BATON_B_URL": "http://127.0.0.1:9002"}, "b": {}})
    assert same == []


def test_routing_is_set_when_declared_and_cleared_when_not() -> None:
    weighted = {"strategy": "weighted", "targets": [{"name": "x", "port": 9101, "weight": 80},
                                                    {"name": "y", "port": 9102, "weight": 20}]}
    assert plan(wanted_routing={"a": weighted}) == [("set-routing", "a", ("a",))]
    running = {"a": {**weighted, "targets": [{**t, "host": "127.0.0.1"} for t in weighted["targets"]],
                     "locked": False, "rules": None, "default_target": None}, "b": None}
    assert plan(wanted_routing={"a": weighted}, running_routing=running) == []
    assert plan(running_routing=running) == [("clear-routing", "a", ("a",))]
