"""The dashboard's pure half: rates from two counter readings, what serves a node, routing and canary views, the
node's colour, the topology's layers, and the whole aggregation from plain inputs."""

from __future__ import annotations

import json

from baton.dashboard.layout import layout
from baton.dashboard.model import (
    AdapterAnswers,
    Inputs,
    Sample,
    aggregate,
    canary_of,
    flow_run_url,
    rates,
    routing_of,
    serving,
    tone,
)

NOW = 1_700_000_000.0


def _answers(requests: int, failed: int = 0, *, instance: str = "i1", verdict: str = "healthy",
             backend: dict | None = None, strategy: str = "single") -> AdapterAnswers:
    return AdapterAnswers(
        status={"instance": instance, "routing_strategy": strategy, "routing_locked": False,
                "backend": backend if backend is not None else {"name": "primary", "weight": 100, "mock": True}},
        health={"verdict": verdict, "detail": "" if verdict == "healthy" else "backend refused"},
        metrics={"requests_total": requests, "requests_failed": failed,
                 "error_rate": round(failed / requests, 4) if requests else 0.0,
                 "latency_ms": {"p50": 1.5, "p95": 3.0, "p99": 4.25, "mean": 2.0, "window": requests}})


# -- rates -------------------------------------------------------------------------------------------------------


def test_rates_compare_two_readings_of_one_adapter() -> None:
    assert rates(Sample(NOW, "i1", 100, 2), Sample(NOW + 2, "i1", 140, 6)) == (20.0, 0.1)


def test_a_first_reading_has_no_rate_rather_than_zero() -> None:
    assert rates(None, Sample(NOW, "i1", 100, 0)) == (None, None)


def test_a_window_without_requests_has_a_rate_of_zero_and_no_error_rate() -> None:
    assert rates(Sample(NOW, "i1", 100, 1), Sample(NOW + 1, "i1", 100, 1)) == (0.0, None)


def test_a_restarted_adapter_starts_its_rates_afresh() -> None:
    assert rates(Sample(NOW, "i1", 100, 0), Sample(NOW + 1, "i2", 150, 0)) == (None, None)  # another instance
    assert rates(Sample(NOW, "", 100, 0), Sample(NOW + 1, "", 5, 0)) == (None, None)  # counters went back


# -- one node ------------------------------------------------------------------------------------------------------


def test_serving_reads_the_adapters_backend_and_falls_back_on_state() -> None:
    mock = {"backend": {"name": "primary", "weight": 100, "mock": True}}
    live = {"backend": {"name": "primary", "weight": 100, "host": "127.0.0.1", "port": 9}}
    canary = {"backend": {"strategy": "canary", "targets": [{"name": "stable", "weight": 90, "mock": True},
                                                             {"name": "canary", "weight": 10, "host": "h", "port": 1}]}}
    assert serving(mock, None, True) == "mock"
    assert serving(live, None, True) == "live"
    assert serving(canary, None, True) == "live"
    assert serving(None, {"service": {"is_mock": False}}, True) == "live"  # the adapter did not answer
    assert serving(None, None, True) == "mock"
    assert serving(live, None, False) == "stopped"


def test_routing_names_the_split_and_its_weights() -> None:
    single = routing_of({"routing_strategy": "single", "backend": {"name": "primary", "weight": 100,
                                                                   "host": "127.0.0.1", "port": 9}})
    assert single.label == "single" and single.targets == ({"name": "primary", "weight": 100,
                                                            "backend": "127.0.0.1:9"},)
    ab = routing_of({"routing_strategy": "weighted", "routing_locked": True, "backend": {
        "strategy": "weighted", "targets": [{"name": "a", "weight": 70, "host": "h", "port": 1},
                                            {"name": "b", "weight": 30, "mock": True}]}})
    assert ab.label == "A/B" and ab.locked
    assert [(t["name"], t["weight"], t["backend"]) for t in ab.targets] == [("a", 70, "h:1"), ("b", 30, "mock")]
    assert routing_of(None) is None


def test_canary_progress_follows_its_steps() -> None:
    record = {"phase": "Progressing", "weight": 25, "concluded": False, "last_step_at": NOW - 10,
              "policy": {"steps": [10, 25, 50, 100], "interval_s": 30},
              "decisions": [{"reason": "Starting canary at 10%"}, {"reason": "Advancing to 25%"}]}
    view = canary_of({"canary": record}, NOW)
    assert (view.phase, view.weight, view.in_flight, view.progress) == ("Progressing", 25, True, 0.5)
    assert view.reason == "Advancing to 25%" and view.next_evaluation_in_s == 20.0 and view.steps == (10, 25, 50, 100)
    done = canary_of({"canary": {**record, "phase": "Succeeded", "weight": 100, "concluded": True}}, NOW)
    assert done.progress == 1.0 and not done.in_flight and done.next_evaluation_in_s is None
    assert canary_of({"canary": None}, NOW) is None and canary_of(None, NOW) is None


def test_tone_says_bad_warn_ok_or_idle() -> None:
    assert tone("healthy", None, 0.0, None) == "ok"
    assert tone("healthy", None, None, None) == "ok"
    assert tone("healthy", None, 0.2, None) == "warn"  # a failing window
    assert tone("healthy", {"status": "mocked"}, None, None) == "warn"  # a stand-in mock
    assert tone("degraded", None, None, None) == "warn"
    assert tone("unhealthy", None, None, None) == "bad"
    assert tone("unreachable", None, None, None) == "bad"
    assert tone("healthy", {"status": "faulted"}, None, None) == "bad"
    assert tone("stopped", None, None, None) == "idle"


def test_a_flow_run_links_to_its_page_in_prefects_ui() -> None:
    assert flow_run_url("http://127.0.0.1:4200/", "abc") == "http://127.0.0.1:4200/runs/flow-run/abc"
    assert flow_run_url("", "abc") == ""


# -- the topology ------------------------------------------------------------------------------------------------


def test_layers_follow_edge_direction_and_rows_keep_edges_short() -> None:
    placed = layout(["gateway", "api", "users", "stripe"],
                    [("gateway", "api", ""), ("api", "stripe", "pay"), ("gateway", "users", "")])
    layers = {p.name: p.layer for p in placed.nodes}
    assert layers == {"gateway": 0, "api": 1, "users": 1, "stripe": 2}
    boxes = {p.name: p for p in placed.nodes}
    assert boxes["gateway"].x < boxes["api"].x < boxes["stripe"].x
    assert boxes["api"].x == boxes["users"].x and boxes["api"].y != boxes["users"].y
    assert placed.width > boxes["stripe"].x and placed.height > max(p.y for p in placed.nodes)
    assert [e["label"] for e in placed.edges] == ["", "pay", ""] and not any(e["back"] for e in placed.edges)


def test_a_cycle_is_cut_at_its_back_edge_and_still_drawn() -> None:
    placed = layout(["a", "b", "c"], [("a", "b", ""), ("b", "c", ""), ("c", "a", "")])
    assert {p.name: p.layer for p in placed.nodes} == {"a": 0, "b": 1, "c": 2}
    assert [(e["source"], e["target"], e["back"]) for e in placed.edges] == [
        ("a", "b", False), ("b", "c", False), ("c", "a", True)]


def test_edges_to_unknown_nodes_and_self_loops_are_left_out_and_lone_nodes_are_placed() -> None:
    placed = layout(["a", "b", "alone"], [("a", "b", ""), ("a", "ghost", ""), ("b", "b", "")])
    assert [(e["source"], e["target"]) for e in placed.edges] == [("a", "b")]
    assert {p.name: p.layer for p in placed.nodes} == {"a": 0, "b": 1, "alone": 0}
    assert layout([], []).nodes == ()


def test_a_long_chain_lays_out_without_recursion_limits() -> None:
    names = [f"n{i}" for i in range(2000)]
    placed = layout(names, [(a, b, "") for a, b in zip(names, names[1:], strict=False)] + [("n1999", "n0", "")])
    assert max(p.layer for p in placed.nodes) == 1999


# -- the whole -----------------------------------------------------------------------------------------------------


def _inputs(now: float, adapters: dict[str, AdapterAnswers], **extra) -> Inputs:
    return Inputs(circuit="shop", nodes=[("gateway", "ingress"), ("api", "service"), ("stripe", "egress")],
                  edges=[("gateway", "api", ""), ("api", "stripe", "")], running=True, now=now, adapters=adapters,
                  **extra)


def test_aggregate_gives_every_node_its_figures_and_remembers_the_readings() -> None:
    first, samples = aggregate(_inputs(NOW, {"gateway": _answers(10), "api": _answers(4), "stripe": _answers(0)}))
    assert [n.rps for n in first.nodes] == [None, None, None]  # one reading: no rate yet
    assert set(samples) == {"gateway", "api", "stripe"}
    live = {"name": "primary", "weight": 100, "host": "127.0.0.1", "port": 9}
    second, _ = aggregate(_inputs(NOW + 2, {
        "gateway": _answers(50, 4), "api": _answers(4, backend=live),
        "stripe": AdapterAnswers(error="its adapter does not answer on http://127.0.0.1:1 (ClientConnectorError)")},
        recorded={"stripe": {"service": {"is_mock": True}}},
        custody={"api": {"status": "healthy", "reason": "answering", "paused": False, "failures": 0}},
        violations={"api": 3}, violations_total=3,
        runs=[{"id": "r1", "name": "slot-api", "action": "slot", "node": "api", "state": "Completed"}],
        ui_url="http://127.0.0.1:4200",
        signals=[{"timestamp": NOW, "node_name": "api", "status_code": 200, "extra": "dropped"},
                 {"timestamp": NOW + 1, "node_name": "gateway", "status_code": 500}],
        decisions=[{"timestamp": NOW - 5, "node_name": "api", "status": "healthy", "reason": "answering"}]),
        samples)
    gateway, api, stripe = second.nodes
    assert (gateway.rps, gateway.error_rate, gateway.p50_ms, gateway.p99_ms) == (20.0, 0.1, 1.5, 4.25)
    assert gateway.tone == "warn" and gateway.serving == "mock"
    assert (api.rps, api.error_rate, api.serving, api.tone, api.violations) == (0.0, None, "live", "ok", 3)
    assert api.custodian == {"status": "healthy", "reason": "answering", "paused": False}
    assert (stripe.health, stripe.tone, stripe.rps, stripe.serving) == ("unreachable", "bad", None, "mock")
    assert "does not answer" in stripe.health_detail
    assert second.runs[0]["url"] == "http://127.0.0.1:4200/runs/flow-run/r1"
    assert [s["node_name"] for s in second.signals] == ["gateway", "api"] and "extra" not in second.signals[1]
    assert second.totals == {"nodes": 3, "live": 1, "mock": 2, "healthy": 2, "rps": 20.0, "violations": 3,
                             "tls": "off"}
    topology = second.topology
    assert topology["nodes"]["stripe"]["tone"] == "bad" and topology["nodes"]["api"]["serving"] == "live"
    json.dumps(second.to_json())  # the page's API: plain JSON


def test_a_circuit_that_is_down_shows_its_topology_with_every_node_stopped() -> None:
    dashboard, samples = aggregate(Inputs(circuit="shop", nodes=[("a", "service"), ("b", "service")],
                                          edges=[("a", "b", "")], running=False, now=NOW))
    assert [(n.health, n.serving, n.tone) for n in dashboard.nodes] == [("stopped", "stopped", "idle")] * 2
    assert samples == {} and set(dashboard.topology["nodes"]) == {"a", "b"}


def test_tls_shows_how_long_the_served_certificate_lasts() -> None:
    answers = AdapterAnswers(**{**_answers(1).__dict__, "tls": {"enabled": True,
                                                               "current": {"not_after": "2023-11-24T22:13:20Z"}}})
    dashboard, _ = aggregate(Inputs(circuit="c", nodes=[("a", "service")], edges=[], running=True, now=NOW,
                                    adapters={"a": answers}, tls_mode="circuit"))
    assert dashboard.nodes[0].tls == {"mode": "circuit", "enabled": True, "not_after": "2023-11-24T22:13:20Z",
                                      "days_left": 10.0}
    off, _ = aggregate(Inputs(circuit="c", nodes=[("a", "service")], edges=[], running=True, now=NOW,
                              adapters={"a": _answers(1)}))
    assert off.nodes[0].tls is None
