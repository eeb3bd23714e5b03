"""Judging a sighting (pure): scope, tiers on edges (declared, or read from the receiver's data_access), several
callers, an ingress, responses judged at the caller, and logs."""

from __future__ import annotations

import pytest
from baton_adapter.taint.values import canary_value

from baton.config import CircuitConfig
from baton.taint import Canary, Sighting, edge_of, judge

#   gateway (ingress) -> users      [PII]
#   gateway           -> orders     (declares nothing; orders reads PII)
#   orders            -> payments   [FINANCIAL]
#   admin (ingress)   -> payments   (declares nothing; payments reads nothing)
#   orders            -> ledger     (declares nothing; ledger writes FINANCIAL)
#   payments          -> ledger     [PII]
CONFIG = CircuitConfig.model_validate({
    "name": "shop", "version": 2,
    "nodes": [{"name": "gateway", "port": 20001, "role": "ingress"},
              {"name": "users", "port": 20002, "data_access": {"reads": ["PII"]}},
              {"name": "orders", "port": 20003, "data_access": {"reads": ["PII"]}},
              {"name": "payments", "port": 20004},
              {"name": "admin", "port": 20005, "role": "ingress"},
              {"name": "ledger", "port": 20006, "data_access": {"writes": ["FINANCIAL"]}}],
    "edges": [{"source": "gateway", "target": "users", "data_tiers_in_flight": ["PII"]},
              {"source": "gateway", "target": "orders"},
              {"source": "orders", "target": "payments", "data_tiers_in_flight": ["FINANCIAL"]},
              {"source": "admin", "target": "payments"},
              {"source": "orders", "target": "ledger"},
              {"source": "payments", "target": "ledger", "data_tiers_in_flight": ["PII"]}],
})


CARD = canary_value("card", "00000001")


def _canary(origin: str, scope: list[str], kind: str = "email", tier: str = "PII") -> Canary:
    values = {"email": ("0a1b2c3d", "canary-0a1b2c3d@baton.test"), "card": ("00000001", CARD)}
    fingerprint, value = values[kind]
    return Canary(fingerprint=fingerprint, kind=kind, value=value, tier=tier, origin=origin, scope=scope,
                  created_at=0.0)


USERS_EMAIL = _canary("users", ["users", "gateway"])
ORDERS_EMAIL = _canary("orders", ["orders", "gateway", "payments", "ledger"])


def _seen(node: str, direction: str = "request", **extra) -> Sighting:
    return Sighting(fingerprint="0a1b2c3d", kind="email", node=node, direction=direction, trace_id="t-1",
                    method="POST", path="/x", time=5.0, **extra)


def test_inside_the_scope_on_an_edge_that_carries_the_tier_is_fine() -> None:
    assert judge(CONFIG, USERS_EMAIL, _seen("users")) is None  # gateway -> users carries PII


def test_outside_the_scope_is_a_violation_naming_the_scope() -> None:
    violation = judge(CONFIG, USERS_EMAIL, _seen("orders"), detected_at=9.0)
    assert violation is not None
    assert violation.reasons == ["PII canary of users seen at orders, outside its scope users, gateway"]
    assert violation.edge == "gateway -> orders"  # the edge declares nothing and orders reads PII: admitted
    assert (violation.fingerprint, violation.kind, violation.tier, violation.origin, violation.node) == (
        "0a1b2c3d", "email", "PII", "users", "orders")
    assert (violation.trace_id, violation.method, violation.path, violation.time, violation.detected_at,
            violation.source, violation.direction) == ("t-1", "POST", "/x", 5.0, 9.0, "adapter", "request")


def test_an_edge_declaring_other_tiers_does_not_admit() -> None:
    violation = judge(CONFIG, ORDERS_EMAIL, _seen("payments"))
    assert violation is not None and violation.edge == "orders|admin -> payments"
    assert violation.reasons == ["no edge into payments admits PII (orders -> payments carries FINANCIAL, not PII; "
                                 "admin -> payments declares no data tiers and payments does not read or write PII)"]


def test_one_edge_declaring_other_tiers_says_so() -> None:
    canary = _canary("gateway", ["gateway", "users", "orders"])
    violation = judge(CONFIG, canary, _seen("payments"))
    assert violation is not None
    assert "PII canary of gateway seen at payments, outside its scope gateway, users, orders" in violation.reasons


def test_an_edge_declaring_nothing_admits_what_the_receiver_reads_or_writes() -> None:
    financial = _canary("orders", ["orders", "ledger", "payments", "gateway"], kind="card", tier="FINANCIAL")
    card = Sighting(fingerprint="00000001", kind="card", node="ledger", direction="request")
    assert judge(CONFIG, financial, card) is None  # orders -> ledger declares nothing; ledger writes FINANCIAL


def test_with_several_callers_any_edge_admitting_is_enough() -> None:
    # payments -> ledger carries PII; orders -> ledger declares nothing and ledger does not read PII
    assert judge(CONFIG, ORDERS_EMAIL, _seen("ledger")) is None


def test_a_single_edge_that_does_not_admit() -> None:
    canary = _canary("gateway", ["gateway", "users", "orders"], kind="card", tier="FINANCIAL")
    card = Sighting(fingerprint="00000001", kind="card", node="users", direction="request")
    violation = judge(CONFIG, canary, card)
    assert violation is not None and violation.edge == "gateway -> users"
    assert violation.reasons == ["edge gateway -> users carries PII, not FINANCIAL"]


def test_an_ingress_has_no_edge_to_check_but_its_scope_is() -> None:
    assert edge_of(CONFIG, "gateway") == "client -> gateway"
    assert judge(CONFIG, USERS_EMAIL, _seen("gateway")) is None
    violation = judge(CONFIG, USERS_EMAIL, _seen("admin"))
    assert violation is not None and violation.edge == "client -> admin"
    assert violation.reasons == ["PII canary of users seen at admin, outside its scope users, gateway"]


def test_a_response_is_judged_at_the_caller_that_receives_it() -> None:
    assert judge(CONFIG, USERS_EMAIL, _seen("users", "response")) is None  # back to gateway, in scope, PII edge
    # orders answers gateway, inside the scope; gateway -> orders declares nothing, and for a response the node
    # receiving the data is the caller, gateway, which reads nothing (orders reading PII does not count)
    leaked = judge(CONFIG, USERS_EMAIL, _seen("orders", "response"))
    assert leaked is not None and leaked.edge == "gateway -> orders"
    assert leaked.reasons == ["edge gateway -> orders declares no data tiers and gateway does not read or write PII"]


def test_a_response_to_a_caller_that_does_not_admit_the_tier() -> None:
    canary = _canary("orders", ["orders", "gateway", "payments", "ledger", "users"])
    violation = judge(CONFIG, canary, _seen("payments", "response"))
    assert violation is not None and violation.direction == "response"
    # orders -> payments carries FINANCIAL; admin -> payments declares nothing and admin does not read PII
    assert violation.reasons == ["no edge into payments admits PII (orders -> payments carries FINANCIAL, not PII; "
                                 "admin -> payments declares no data tiers and admin does not read or write PII)"]


def test_a_response_outside_the_scope_names_the_receiver() -> None:
    canary = _canary("users", ["users", "payments"])
    violation = judge(CONFIG, canary, _seen("users", "response"))
    assert violation is not None
    assert violation.reasons == ["PII canary of users sent by users back to gateway, outside its scope users, "
                                 "payments"]
    several = judge(CONFIG, _canary("ledger", ["ledger"]), _seen("payments", "response"))
    assert several is not None
    assert several.reasons[0] == ("PII canary of ledger sent by payments back to its callers orders, admin, all "
                                  "outside its scope ledger")


def test_a_response_with_one_caller_in_scope_is_not_a_scope_violation() -> None:
    canary = _canary("orders", ["orders", "payments"], kind="card", tier="FINANCIAL")
    card = Sighting(fingerprint="00000001", kind="card", node="payments", direction="response")
    assert judge(CONFIG, canary, card) is None  # orders may receive it, over an edge that carries FINANCIAL


def test_an_ingress_answering_its_client_is_not_judged() -> None:
    assert judge(CONFIG, _canary("users", ["users"]), _seen("gateway", "response")) is None


@pytest.mark.parametrize("node", ["users", "payments", "gateway"])
def test_a_canary_in_a_log_is_always_a_violation(node: str) -> None:
    violation = judge(CONFIG, USERS_EMAIL, _seen(node, "log", part="stderr"))
    assert violation is not None
    assert violation.edge == f"{node} -> log" and violation.source == "log" and violation.direction == "log"
    assert violation.reasons == [f"PII canary of users printed to the stderr log of {node}: PII must not be logged"]
