"""Default bodies are identical across restarts (separate processes) and differ between nodes and seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from _mock_support import ALL_CONTRACTS, contract, fill, get
from baton_adapter.mock import MockEngine

_SCRIPT = """
import hashlib, json, sys
sys.path.insert(0, sys.argv[1])
from _mock_support import contract, fill, get
from baton_adapter.mock import MockEngine
out = {}
for name in json.loads(sys.argv[2]):
    engine = MockEngine.from_contract(contract(name), sys.argv[3])
    for op in engine.operations:
        if op.method == "get":
            path, query, headers = fill(engine, op)
            resp = get(engine, path, headers, query)
            out[name + " " + op.path] = [resp.status, resp.headers, hashlib.sha256(resp.body).hexdigest()]
print(json.dumps(out, sort_keys=True))
"""


def _run(node: str, hash_seed: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    here = os.path.dirname(__file__)
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, here, json.dumps(ALL_CONTRACTS), node],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_two_processes_answer_identical_bodies_with_the_default_seed() -> None:
    first = _run("orders", "1")
    second = _run("orders", "2")  # a different str-hash seed: nothing may depend on hash()
    assert first == second
    assert len(first) >= 20


def test_another_node_gets_other_values() -> None:
    a = MockEngine.from_contract(contract("users.yaml"), "orders")
    b = MockEngine.from_contract(contract("users.yaml"), "payments")
    assert get(a, "/users").body != get(b, "/users").body


def test_an_explicit_seed_overrides_the_node_seed() -> None:
    a = MockEngine.from_contract(contract("users.yaml"), "orders", seed=7)
    b = MockEngine.from_contract(contract("users.yaml"), "payments", seed=7)
    assert get(a, "/users").body == get(b, "/users").body
    op = next(op for op in a.operations if op.path == "/users/{id}/profile")
    path, _, _ = fill(a, op)
    assert get(a, path).body == get(b, path).body
