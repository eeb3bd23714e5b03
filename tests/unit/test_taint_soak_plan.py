"""The soak test's pure parts: where canaries are seeded, which request fields carry them, the seeding hop the
judge leaves alone, the report and its markdown, durations on the command line, and `baton test`'s refusals."""

from __future__ import annotations

import pytest
from baton_adapter.taint.values import canary_value

from baton.cli.durations import parse_duration
from baton.config import CircuitConfig
from baton.errors import UsageError
from baton.taint import Canary, Sighting, judge
from baton.taint.soak import (
    SEED_TRACE_PREFIX,
    carries,
    failure_summary,
    render_markdown,
    seed_plan,
    seeding_traceparent,
    soak_targets,
    summarize,
)
from baton_cli import run_baton

SHOP = CircuitConfig.model_validate({
    "name": "shop", "version": 2,
    "nodes": [{"name": "gateway", "port": 20001, "role": "ingress"},
              {"name": "orders", "port": 20002, "data_access": {"reads": ["PII"], "writes": ["FINANCIAL"]}},
              {"name": "users", "port": 20003, "data_access": {"reads": ["PII"], "writes": ["PII"]}},
              {"name": "payments", "port": 20004, "role": "egress"}],
    "edges": [{"source": "gateway", "target": "orders"},
              {"source": "orders", "target": "users", "data_tiers_in_flight": ["PII"]},
              {"source": "orders", "target": "payments", "data_tiers_in_flight": ["FINANCIAL"]}],
    "taint": {"enabled": True},
})


def test_the_ingress_gets_every_kind_and_other_nodes_what_they_declare() -> None:
    assert seed_plan(SHOP, nodes=[], tiers=["PII"]) == {
        "gateway": ["email", "name", "ssn", "phone"], "orders": ["email", "name", "ssn", "phone"],
        "users": ["email", "name", "ssn", "phone"]}
    assert seed_plan(SHOP, nodes=[], tiers=["FINANCIAL"]) == {"gateway": ["card"], "orders": ["card"]}
    # a node named explicitly gets every kind of the tiers, declared or not
    assert seed_plan(SHOP, nodes=["payments"], tiers=["pii", "financial"]) == {
        "payments": ["email", "name", "ssn", "card", "phone"]}


def test_seed_plan_refuses_unknown_nodes_and_tiers_in_one_sentence() -> None:
    with pytest.raises(UsageError, match="no node named 'nope'"):
        seed_plan(SHOP, nodes=["nope"], tiers=["PII"])
    with pytest.raises(UsageError, match="no canary kind has tier SECRET"):
        seed_plan(SHOP, nodes=[], tiers=["SECRET"])


def test_generated_requests_carry_canaries_in_the_fields_of_their_kind(tmp_path) -> None:
    from baton_adapter.mock import MockEngine, example_request

    spec = tmp_path / "signup.yaml"
    spec.write_text("""\
openapi: 3.0.3
info: {title: Signup, version: "1"}
paths:
  /signups:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [email, full_name, plan]
              properties:
                email: {type: string, format: email}
                full_name: {type: string}
                plan: {type: string, enum: [free, pro]}
            example: {email: someone@example.com, full_name: Some One, plan: free}
      responses:
        "201": {description: created}
""")
    engine = MockEngine.from_contract(str(spec), node="signup")
    op = engine.operations[0]
    plain = example_request(engine, op, 7)
    assert plain.body == {"email": "someone@example.com", "full_name": "Some One", "plan": "free"}
    values = {"email": ("canary-0000002a@baton.test",), "name": ("Canary_0000002b Testuser",)}
    engine.seed_canaries(values, direction="request")
    seeded = example_request(engine, op, 7)
    assert seeded.body["email"] == "canary-0000002a@baton.test"
    assert seeded.body["full_name"] == "Canary_0000002b Testuser" and seeded.body["plan"] in ("free", "pro")
    assert carries(seeded.body_bytes(), [v for vs in values.values() for v in vs])
    assert not carries(plain.body_bytes(), ["canary-0000002a@baton.test"]) and not carries(None, ["x"])
    # seeded for requests, the engine's own answers stay as they were
    assert not engine.seeded("response") and engine.seeded("request")


def test_targets_are_the_ingress_and_live_nodes_with_canaries_of_their_own() -> None:
    canaries = [{"origin": "users", "kind": "email", "value": "canary-00000001@baton.test"},
                {"origin": "orders", "kind": "email", "value": "canary-00000002@baton.test"}]
    urls = {n.name: f"http://127.0.0.1:{n.port}" for n in SHOP.nodes}
    targets = soak_targets(SHOP, live=["orders"], canaries=canaries, url_of=urls)
    assert [(t.node, t.seeding, dict(t.canaries)) for t in targets] == [
        ("gateway", False, {}), ("orders", True, {"email": ("canary-00000002@baton.test",)})]


def test_the_judge_leaves_the_seeding_hop_alone_and_nothing_else() -> None:
    fingerprint = "0000002a"
    canary = Canary(fingerprint=fingerprint, kind="ssn", value=canary_value("ssn", fingerprint), tier="PII",
                    origin="payments", scope=["payments", "orders"], created_at=0.0)
    trace = seeding_traceparent().split("-")[1]
    assert trace.startswith(SEED_TRACE_PREFIX) and len(trace) == 32
    seeding = Sighting(fingerprint=fingerprint, node="payments", direction="request", trace_id=trace)
    assert judge(SHOP, canary, seeding) is None  # orders -> payments carries FINANCIAL, but this is the seeding
    later = Sighting(fingerprint=fingerprint, node="payments", direction="request", trace_id="ab" * 16)
    assert judge(SHOP, canary, later) is not None
    elsewhere = Sighting(fingerprint=fingerprint, node="users", direction="request", trace_id=trace)
    assert judge(SHOP, canary, elsewhere) is not None  # the seeding trace id excuses only the origin's own hop


def test_the_report_counts_by_edge_and_kind_and_renders() -> None:
    violations = [{"edge": "orders -> payments", "kind": "email", "reasons": ["outside its scope"], "node": "payments",
                   "fingerprint": "00000001", "origin": "users", "direction": "request", "trace_id": "t"}] * 3
    report = summarize(circuit="shop", tiers=["PII"], rate=20, started_at=1.0, ended_at=11.0, duration_s=10.0,
                       canaries=[{"fingerprint": "00000001", "kind": "email", "tier": "PII", "origin": "users",
                                  "value": "canary-00000001@baton.test", "scope": ["users"]}],
                       sent={"gateway": {"sent": 100, "failed": 0, "carrying": 10}, "orders": {"sent": 100}},
                       violations=violations)
    assert not report.passed and report.violations["by_edge"] == {"orders -> payments": {"email": 3}}
    assert report.requests["sent"] == 200 and report.requests["carrying"] == 10
    assert report.canaries[0] == {"fingerprint": "00000001", "kind": "email", "tier": "PII", "origin": "users",
                                  "value": "canary-00000001@baton.test"}
    text = render_markdown(report)
    assert "FAILED: 3 violation(s)" in text and "| orders -> payments | email | 3 |" in text
    assert failure_summary(report).startswith("the taint soak found 3 violation(s) (orders -> payments: email x3)")
    clean = summarize(circuit="shop", tiers=["PII"], rate=20, started_at=1.0, ended_at=2.0, duration_s=1.0,
                      canaries=[], sent={}, violations=[])
    assert clean.passed and "passed: no canary crossed a boundary" in render_markdown(clean)


@pytest.mark.parametrize(("text", "seconds"), [("300", 300), ("90s", 90), ("5m", 300), ("1.5h", 5400), ("1d", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_baton_test_refuses_bad_input_in_one_line(project_dir) -> None:
    for args, needle in ((("test",), "needs --canary"), (("test", "--canary", "--duration", "soon"), "expected a duration"),
                         (("test", "--canary", "--duration", "0"), "above zero"),
                         (("test", "--canary", "--tiers", ","), "at least one tier")):
        result = run_baton(*args, cwd=project_dir)
        assert result.code == 2, (args, result.stderr)
        assert needle in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
