"""The events-only token: derived from the management token, it opens ``POST /events`` on the management API and
nothing else (every other route, method and a lookalike path answer 401); the management token still opens
everything; the control plane derives the same token and hands it to services as ``BATON_EVENTS_TOKEN``."""

from __future__ import annotations

import aiohttp
import pytest

from _adapter_support import run, running_node
from baton.config import CircuitConfig
from baton.control import EVENTS_TOKEN_FILE, control_token, events_token
from baton.wiring import command_env, service_env
from baton_adapter.event_token import events_token as derive

MANAGEMENT = "management-token-for-the-events-test"
ROUTES = [("GET", "/events"), ("GET", "/status"), ("GET", "/health"), ("GET", "/metrics"),
          ("GET", "/metrics/prometheus"), ("GET", "/signals"), ("GET", "/routing"), ("POST", "/routing"),
          ("POST", "/backend"), ("POST", "/drain"), ("GET", "/taint"), ("PUT", "/taint"), ("DELETE", "/taint"),
          ("GET", "/tls"), ("PUT", "/events"), ("POST", "/events/"), ("POST", "/events/../routing")]


def test_the_events_token_posts_events_and_opens_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTS_TEST_TOKEN", MANAGEMENT)
    token = derive(MANAGEMENT)
    assert token != MANAGEMENT and len(token) == 64 and derive(MANAGEMENT) == token

    async def main() -> None:
        async with running_node(mock=True, token_env="EVENTS_TEST_TOKEN") as node, aiohttp.ClientSession() as client:
            base = f"http://127.0.0.1:{node.management_port}"
            service = {"Authorization": f"Bearer {token}"}
            event = {"type": "deploy", "message": "v2 ready", "severity": "info", "data": {"v": 2}}
            async with client.post(base + "/events", json=event, headers=service) as resp:
                assert resp.status == 201
                assert (await resp.json())["node_name"] == "api"
            for method, path in ROUTES:
                async with client.request(method, base + path, json={}, headers=service) as resp:
                    assert resp.status == 401, (method, path, resp.status)
            for wrong in (token[:-1] + ("0" if token[-1] != "0" else "1"), derive("another project's token"), ""):
                async with client.post(base + "/events", json=event,
                                       headers={"Authorization": f"Bearer {wrong}"}) as resp:
                    assert resp.status == 401
            async with client.get(base + "/events", headers={"Authorization": f"Bearer {MANAGEMENT}"}) as resp:
                assert [e["message"] for e in await resp.json()] == ["v2 ready"]
            async with client.post(base + "/events", json=event,
                                   headers={"Authorization": f"Bearer {MANAGEMENT}"}) as resp:
                assert resp.status == 201

    run(main())


def test_the_control_plane_derives_the_same_token_and_gives_it_to_services_only(tmp_path) -> None:
    config = CircuitConfig.model_validate({"name": "shop", "version": 2,
                                           "nodes": [{"name": "api", "port": 41001, "management_port": 41002}]})
    state_dir = tmp_path / ".baton"
    assert events_token(config, state_dir) is None  # nothing generated yet, nothing made up
    token = events_token(config, state_dir, create=True)
    assert token == derive(control_token(config, state_dir))
    written = state_dir / EVENTS_TOKEN_FILE
    assert written.read_text().strip() == token and written.stat().st_mode & 0o777 == 0o600
    env = service_env(config, config.node("api"), service_port=5000, events_token=token)
    assert env["BATON_EVENTS_TOKEN"] == token and control_token(config, state_dir) not in env.values()
    assert "BATON_EVENTS_TOKEN" not in command_env(config, {}, env)  # never expanded into a recorded argv
    assert "BATON_EVENTS_TOKEN" not in service_env(config, config.node("api"), service_port=5000)
