"""``baton taint seed|status|violations|clear`` and the taint line of ``baton status``: refusals in one sentence
with exit 2, one JSON document with ``--json``, never a traceback. Seed and clear run their flows once (in
this process, against the session's Prefect server) on a circuit that is not running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baton_cli import ok, run_baton

CIRCUIT = """\
name: shop
version: 2
taint:
  enabled: {enabled}
nodes:
  - {{name: gateway, port: 20001, role: ingress}}
  - {{name: users, port: 20002}}
  - {{name: payments, port: 20003}}
edges:
  - {{source: gateway, target: users, data_tiers_in_flight: [PII]}}
  - {{source: gateway, target: payments, data_tiers_in_flight: [FINANCIAL]}}
"""


def _circuit(project: Path, enabled: bool = True) -> Path:
    (project / "baton.yaml").write_text(CIRCUIT.format(enabled=str(enabled).lower()))
    return project


def _violation(i: int, node: str = "payments", kind: str = "email") -> str:
    return json.dumps({"fingerprint": f"{i:08x}", "kind": kind, "tier": "PII", "origin": "users", "node": node,
                       "direction": "request", "edge": f"gateway -> {node}", "reasons": [f"seen at {node}"],
                       "trace_id": f"t{i}", "method": "POST", "path": "/", "time": 1000.0 + i,
                       "detected_at": 1000.5 + i, "source": "adapter"})


def _refused(result, sentence: str) -> None:
    assert result.code == 2, (result.code, result.stdout, result.stderr)
    assert sentence in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1  # one line


def test_seed_refuses_when_taint_is_off_saying_what_to_add(project_dir: Path) -> None:
    _circuit(project_dir, enabled=False)
    _refused(run_baton("taint", "seed", cwd=project_dir), "add `taint: {enabled: true}` to baton.yaml")


@pytest.mark.parametrize(("args", "sentence"), [
    (["--node", "billing"], "no node named 'billing' in baton.yaml; known nodes: gateway, users, payments."),
    (["--kinds", "email,passport"], "unknown canary kind 'passport'; expected some of email, name, ssn, card, phone."),
    (["--tiers", "SECRET"], "no canary kind has tier 'SECRET'"),
    (["--kinds", "card", "--tiers", "PII"], "none of the kinds card has tier PII"),
    (["--per-kind", "0"], "Invalid value for '--per-kind'"),
])
def test_seed_refuses_bad_input_in_one_sentence(project_dir: Path, args: list[str], sentence: str) -> None:
    _circuit(project_dir)
    _refused(run_baton("taint", "seed", *args, "--json", cwd=project_dir), sentence)
    assert not (project_dir / ".baton" / "taint_canaries.jsonl").exists()


def test_status_and_violations_with_nothing_yet(project_dir: Path) -> None:
    _circuit(project_dir)
    status = ok(run_baton("taint", "status", "--json", cwd=project_dir)).json()
    assert status["enabled"] is True and status["active"] == 0 and status["canaries"] == []
    assert status["violations"] == 0 and status["last_violation"] is None and status["adapters"] == {}
    human = ok(run_baton("taint", "status", cwd=project_dir))
    assert "No active canaries" in human.stdout and "Violations: 0" in human.stdout
    violations = ok(run_baton("taint", "violations", "--json", cwd=project_dir)).json()
    assert violations == {"count": 0, "groups": [], "violations": [], "omitted": 0, "corrupt_lines": 0}
    assert "No violations" in ok(run_baton("taint", "violations", cwd=project_dir)).stdout
    plain = ok(run_baton("status", "--json", cwd=project_dir)).json()
    assert plain["taint"] == {"enabled": True, "canaries": 0, "generation": "", "violations": 0,
                              "last_violation": None}


def test_status_off_says_how_to_turn_it_on(project_dir: Path) -> None:
    _circuit(project_dir, enabled=False)
    human = ok(run_baton("taint", "status", cwd=project_dir))
    assert "Taint analysis is off" in human.stdout
    assert "Taint:" not in ok(run_baton("status", cwd=project_dir)).stdout  # nothing to say while off and empty


def test_violations_are_grouped_filtered_and_corrupt_lines_counted(project_dir: Path) -> None:
    _circuit(project_dir)
    state = project_dir / ".baton"
    state.mkdir(exist_ok=True)
    lines = [_violation(i) for i in range(5)] + ["not json", _violation(5, node="users", kind="card")]
    (state / "taint_violations.jsonl").write_text("\n".join(lines) + "\n")
    report = ok(run_baton("taint", "violations", "--json", cwd=project_dir)).json()
    assert report["count"] == 6 and report["corrupt_lines"] == 1
    assert [(g["edge"], g["kind"], g["count"]) for g in report["groups"]] == [
        ("gateway -> payments", "email", 5), ("gateway -> users", "card", 1)]
    assert report["groups"][0]["trace_ids"] == ["t0", "t1", "t2", "t3", "t4"]
    assert (report["groups"][0]["first"], report["groups"][0]["last"]) == (1000.0, 1004.0)
    only = ok(run_baton("taint", "violations", "--node", "users", "--json", cwd=project_dir)).json()
    assert only["count"] == 1 and only["violations"][0]["kind"] == "card"
    newest = ok(run_baton("taint", "violations", "--last", "2", "--json", cwd=project_dir)).json()
    assert [v["fingerprint"] for v in newest["violations"]] == ["00000004", "00000005"]
    table = ok(run_baton("taint", "violations", cwd=project_dir)).stdout
    assert "gateway -> payments" in table and "6 violations" in table
    _refused(run_baton("taint", "violations", "--node", "billing", cwd=project_dir),
             "no node named 'billing' in baton.yaml")
    _refused(run_baton("taint", "violations", "--last", "0", cwd=project_dir), "Invalid value for '--last'")
    plain = ok(run_baton("status", "--json", cwd=project_dir)).json()["taint"]
    assert plain["violations"] == 7 and plain["last_violation"]["node"] == "users"  # lines, without parsing each
    assert "Taint: on; 0 canaries; 7 violations" in ok(run_baton("status", cwd=project_dir)).stdout


def test_status_shows_the_registry_and_counts_corrupt_lines(project_dir: Path) -> None:
    from baton.config import CircuitConfig
    from baton.taint import plan_seed

    _circuit(project_dir)
    import yaml

    config = CircuitConfig.model_validate(yaml.safe_load((project_dir / "baton.yaml").read_text()))
    canaries = plan_seed(config, nodes=["users", "payments"], kinds=["email", "card"])
    state = project_dir / ".baton"
    state.mkdir(exist_ok=True)
    (state / "taint_canaries.jsonl").write_text(
        "".join(json.dumps(c.model_dump()) + "\n" for c in canaries) + "{broken\n")
    report = ok(run_baton("taint", "status", "--json", cwd=project_dir)).json()
    assert report["active"] == 4 and report["corrupt_lines"] == 1
    assert report["by_node"] == {"users": {"email": 1, "card": 1}, "payments": {"email": 1, "card": 1}}
    assert {c["value"] for c in report["canaries"]} == {c.value for c in canaries}
    assert report["adapters"] == {}  # the circuit is not running
    human = ok(run_baton("taint", "status", cwd=project_dir)).stdout
    assert canaries[0].value in human and "1 lines of .baton/taint_canaries.jsonl are not canaries" in human


def test_seed_and_clear_run_their_flows(project_dir: Path, prefect_api: str) -> None:
    _circuit(project_dir)
    local = {"BATON_NO_CONDUCTOR": "1"}
    seeded = ok(run_baton("taint", "seed", "--node", "users", "--kinds", "email,card", "--json", cwd=project_dir,
                          env=local, timeout=180)).json()
    assert sorted(s["kind"] for s in seeded["seeded"]) == ["card", "email"]
    assert seeded["loaded"] == [] and seeded["unreachable"] == {} and len(seeded["generation"]) == 12
    more = ok(run_baton("taint", "seed", "--tiers", "FINANCIAL", cwd=project_dir, env=local, timeout=180))
    assert "Seeded 3 canaries" in more.stdout and "none runs" in more.stdout
    status = ok(run_baton("taint", "status", "--json", cwd=project_dir)).json()
    assert status["active"] == 5 and status["by_node"]["users"] == {"email": 1, "card": 2}
    assert len({c["fingerprint"] for c in status["canaries"]}) == 5
    cleared = ok(run_baton("taint", "clear", "--json", cwd=project_dir, env=local, timeout=180)).json()
    assert cleared == {"canaries": 5, "violations": 0, "cleared": [], "unreachable": {}}
    assert ok(run_baton("taint", "status", "--json", cwd=project_dir)).json()["active"] == 0
    runs = ok(run_baton("history", "--json", cwd=project_dir)).json()["runs"]
    assert {"taint-seed-shop", "taint-clear-shop"} <= {r["name"] for r in runs}
