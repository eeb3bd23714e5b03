"""Without a contract the mock answers / and /health."""

from __future__ import annotations

from _mock_support import get
from baton_adapter.mock import MockEngine


def test_root_and_health_answer_without_a_contract() -> None:
    engine = MockEngine.from_contract(None, "billing")
    root = get(engine, "/")
    assert (root.status, root.json()) == (200, {"status": "mock", "node": "billing"})
    health = get(engine, "/health")
    assert health.status == 200 and health.json()["status"] == "ok"
    assert get(engine, "/health", method="HEAD").body == b""
    missing = get(engine, "/orders")
    assert missing.status == 404 and missing.json()["node"] == "billing"
    assert engine.operations == ()


def test_a_fault_inside_the_engine_answers_500_instead_of_raising(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from _mock_support import contract

    engine = MockEngine.from_contract(contract("users.yaml"), "users")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("generator exploded")

    monkeypatch.setattr(engine._generator, "generate", boom)
    resp = get(engine, "/users/42/profile")
    assert resp.status == 500 and resp.json()["error"] == "mock_failed"
