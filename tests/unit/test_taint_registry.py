"""The canary registry: planning a seeding (pure), its refusals, the generation, the PUT body, and the file
(corrupt lines skipped and counted, never a crash)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from baton_adapter.taint.values import fingerprint_of

from baton.config import CircuitConfig
from baton.errors import UsageError
from baton.taint import (
    MAX_CANARIES,
    Canary,
    append_canaries,
    clear_registry,
    generation,
    load_canaries,
    plan_seed,
    save_canaries,
    taint_body,
)
from baton.taint.registry import CANARIES_FILE


def _config(enabled: bool = True, categories: list[str] | None = None) -> CircuitConfig:
    taint: dict = {"enabled": enabled}
    if categories is not None:
        taint["categories"] = categories
    return CircuitConfig.model_validate({
        "name": "shop", "version": 2, "taint": taint,
        "nodes": [{"name": "gateway", "port": 20001, "role": "ingress"}, {"name": "users", "port": 20002},
                  {"name": "orders", "port": 20003}, {"name": "payments", "port": 20004}],
        "edges": [{"source": "gateway", "target": "users"}, {"source": "gateway", "target": "orders"},
                  {"source": "orders", "target": "payments"}, {"source": "orders", "target": "users"}],
    })


def _bits(seed: int = 7):
    return random.Random(seed).getrandbits


def test_by_default_every_node_gets_one_canary_of_each_category() -> None:
    planned = plan_seed(_config(), randbits=_bits(), now=100.0)
    assert len(planned) == 4 * 5
    assert {(c.origin, c.kind) for c in planned} == {(n, k) for n in ("gateway", "users", "orders", "payments")
                                                    for k in ("email", "name", "ssn", "card", "phone")}
    assert len({c.fingerprint for c in planned}) == 20
    for canary in planned:
        assert fingerprint_of(canary.kind, canary.value) == canary.fingerprint
        assert canary.tier == ("FINANCIAL" if canary.kind == "card" else "PII")
        assert canary.created_at == 100.0


def test_scope_is_the_origin_and_its_neighbours_either_way() -> None:
    planned = {c.origin: c.scope for c in plan_seed(_config(), kinds=["email"], randbits=_bits())}
    assert planned == {"gateway": ["gateway", "users", "orders"], "users": ["users", "gateway", "orders"],
                       "orders": ["orders", "gateway", "users", "payments"], "payments": ["payments", "orders"]}


def test_nodes_kinds_tiers_and_per_kind_choose_what_is_seeded() -> None:
    planned = plan_seed(_config(), nodes=["users"], kinds=["email", "card", "ssn"], tiers=["pii"], per_kind=3,
                        randbits=_bits())
    assert sorted((c.origin, c.kind) for c in planned) == [("users", "email")] * 3 + [("users", "ssn")] * 3
    financial = plan_seed(_config(), nodes=["orders"], tiers=["FINANCIAL"], randbits=_bits())
    assert [(c.kind, c.tier) for c in financial] == [("card", "FINANCIAL")]
    assert {c.kind for c in plan_seed(_config(categories=["phone"]), nodes=["users"], randbits=_bits())} == {"phone"}


def test_a_plan_by_node_seeds_exactly_those_kinds() -> None:
    planned = plan_seed(_config(), kinds_by_node={"users": ["email", "ssn"], "payments": ["card"], "orders": []},
                        randbits=_bits())
    assert sorted((c.origin, c.kind) for c in planned) == [("payments", "card"), ("users", "email"), ("users", "ssn")]
    with pytest.raises(UsageError, match="no node named 'billing'"):
        plan_seed(_config(), kinds_by_node={"billing": ["email"]}, randbits=_bits())
    with pytest.raises(UsageError, match="unknown canary kind 'iban'"):
        plan_seed(_config(), kinds_by_node={"users": ["iban"]}, randbits=_bits())


def test_fingerprints_are_unique_against_existing_canaries() -> None:
    first = plan_seed(_config(), nodes=["users"], kinds=["email"], randbits=_bits(1))
    again = plan_seed(_config(), nodes=["users"], kinds=["email"], randbits=_bits(1), existing=first)
    assert first[0].fingerprint != again[0].fingerprint  # the same draw was taken: the next one is used


def test_a_draw_that_never_changes_is_refused_not_looped_on() -> None:
    with pytest.raises(UsageError, match="could not draw"):
        plan_seed(_config(), nodes=["users"], kinds=["email"], per_kind=2, randbits=lambda _: 0x1234)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"nodes": ["billing"]}, "no node named 'billing' in baton.yaml; known nodes: gateway, users, orders, payments."),
    ({"kinds": ["passport"]}, "unknown canary kind 'passport'; expected some of email, name, ssn, card, phone."),
    ({"tiers": ["SECRET"]}, "no canary kind has tier 'SECRET'; the tiers are PII (email, name, ssn, phone); "
                            "FINANCIAL (card)."),
    ({"kinds": ["email"], "tiers": ["FINANCIAL"]}, "none of the kinds email has tier FINANCIAL"),
    ({"per_kind": 0}, "canaries per kind must be within 1-1000, found 0."),
    ({"per_kind": 1000}, f"an adapter scans for at most {MAX_CANARIES} canaries"),
])
def test_bad_input_is_refused_in_one_sentence(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        plan_seed(_config(), randbits=_bits(), **kwargs)
    assert message in caught.value.message
    assert caught.value.exit_code == 2


def test_taint_disabled_is_refused_saying_what_to_add() -> None:
    with pytest.raises(UsageError, match=r"add `taint: \{enabled: true\}` to baton.yaml"):
        plan_seed(_config(enabled=False), randbits=_bits())


def test_an_unknown_category_in_baton_yaml_is_named() -> None:
    with pytest.raises(UsageError, match="'iban' in taint.categories of baton.yaml"):
        plan_seed(_config(categories=["email", "iban"]), randbits=_bits())


def test_generation_is_a_short_hash_of_the_set_whatever_its_order() -> None:
    planned = plan_seed(_config(), randbits=_bits())
    assert generation(planned) == generation(list(reversed(planned)))
    assert len(generation(planned)) == 12 and generation([]) == ""
    assert generation(planned[1:]) != generation(planned)


def test_the_put_body_scans_for_every_canary_and_seeds_the_node_s_own() -> None:
    planned = plan_seed(_config(), kinds=["email", "card"], randbits=_bits())
    body = taint_body(planned, "users")
    assert body["enabled"] is True and body["generation"] == generation(planned)
    assert len(body["canaries"]) == 8 and set(body["canaries"][0]) == {"fingerprint", "kind"}
    own = {(c.fingerprint, c.kind) for c in planned if c.origin == "users"}
    assert {(s["fingerprint"], s["kind"]) for s in body["seed"]} == own and len(own) == 2


def test_the_file_round_trips_and_skips_corrupt_lines(tmp_path: Path) -> None:
    planned = plan_seed(_config(), kinds=["email"], randbits=_bits())
    append_canaries(tmp_path, planned[:2])
    with (tmp_path / CANARIES_FILE).open("ab") as handle:
        handle.write(b"not json\n[1, 2]\n\xff\xfe\n")
        handle.write(json.dumps({**planned[0].model_dump(), "value": "canary-00000000@baton.test"}).encode() + b"\n")
        handle.write(json.dumps(planned[0].model_dump()).encode() + b"\n")  # a repeated fingerprint
        handle.write(json.dumps({**planned[2].model_dump(), "kind": "passport"}).encode() + b"\n")
        handle.write(b'{"fingerprint": "0a1b')  # cut short by a crash
    append_canaries(tmp_path, planned[3:])
    registry = load_canaries(tmp_path)
    # the cut-short line and the next append share a line: both are lost, counted once
    assert [c.fingerprint for c in registry.canaries] == [c.fingerprint for c in planned[:2]]
    assert registry.corrupt == 7
    save_canaries(tmp_path, planned)
    again = load_canaries(tmp_path)
    assert again.canaries == tuple(planned) and again.corrupt == 0
    assert again.generation == generation(planned)
    assert clear_registry(tmp_path) == 4
    assert load_canaries(tmp_path).canaries == ()


def test_a_missing_registry_is_empty(tmp_path: Path) -> None:
    assert load_canaries(tmp_path / "nowhere") == load_canaries(tmp_path)
    assert load_canaries(tmp_path).canaries == () and load_canaries(tmp_path).corrupt == 0


def test_a_canary_whose_value_does_not_carry_its_fingerprint_is_invalid() -> None:
    with pytest.raises(ValueError, match="does not carry"):
        Canary(fingerprint="0a1b2c3d", kind="email", value="canary-0a1b2c3e@baton.test", tier="PII", origin="a",
               scope=["a"], created_at=0.0)
