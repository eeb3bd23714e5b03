"""The adapter's Prometheus exposition from a real adapter process that served traffic to A/B targets, errors
and connection failures included: the exposition content type (no invented header), prometheus_client's parser
reads the families with the counts sent, and ``promtool check metrics`` (Debian's prometheus package) accepts
it without a single lint remark. The route needs the management token like every other."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from _adapter_support import app_server, hello_app, raw_server, run, start_adapter_process
from otlp_receiver import OtlpReceiver

TOKEN = "prometheus-test-token"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def promtool() -> str | None:
    """``promtool``, or a skip (a failure when CI requires the Prometheus tests)."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("BATON_REQUIRE_PROMETHEUS") or os.environ.get("BATON_REQUIRE_PROMTOOL"):
            pytest.fail("BATON_REQUIRE_PROMETHEUS is set but promtool is not installed (Debian: prometheus)")
        pytest.skip("promtool is not installed (Debian's prometheus package; .ci/run installs it)")
    return found


def failing_app(status: int) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text="no")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A backend that reads a request head and closes the connection without answering."""
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


def _scrape(port: int, token: str | None = TOKEN) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics/prometheus", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_an_adapter_that_served_ab_traffic_and_errors_exposes_what_promtool_and_the_parser_accept(
        tmp_path: Path) -> None:
    tool = promtool()
    sent = {"a": 30, "b": 10, "c": 5}

    async def main() -> str:
        with OtlpReceiver() as receiver:
            async with app_server(hello_app("A")) as pa, app_server(failing_app(503)) as pb, \
                    raw_server(hang_up) as pc:
                routing = {"strategy": "header", "default_target": "a",
                           "rules": [{"header": "X-Variant", "value": "b", "target": "b"},
                                     {"header": "X-Variant", "value": "c", "target": "c"}],
                           "targets": [{"name": "a", "host": "127.0.0.1", "port": pa},
                                       {"name": "b", "host": "127.0.0.1", "port": pb},
                                       {"name": "c", "host": "127.0.0.1", "port": pc}]}
                config = tmp_path / "adapter.json"
                config.write_text(json.dumps({"node": {
                    "name": "checkout", "role": "ingress", "port": 0, "management_port": 0, "routing": routing,
                    "token_env": "PROM_TEST_TOKEN", "policy": {"circuit_breaker_threshold": 1000},
                    "tracing": {"otlp_endpoint": receiver.endpoint}}}))
                proc, ready = start_adapter_process(["--config", str(config)], env={"PROM_TEST_TOKEN": TOKEN})
                try:
                    node = ready["nodes"][0]
                    async with aiohttp.ClientSession() as session:
                        for variant, count in sent.items():
                            for i in range(count):
                                # c takes a POST and hangs up: a connection failure nothing may resend (502)
                                async with session.request("POST" if variant == "c" else "GET",
                                                           f"http://127.0.0.1:{node['port']}/v/{i}",
                                                           headers={"X-Variant": variant}, data=b"x" * i) as resp:
                                    await resp.read()
                                    assert resp.status == {"a": 200, "b": 503, "c": 502}[variant]
                    assert _scrape(node["management_port"], token=None)[0] == 401
                    receiver.wait_for(lambda spans: len(spans) == sum(sent.values()), "a span per request")
                    status, headers, text = _scrape(node["management_port"])
                finally:
                    proc.terminate()
                    proc.wait(10)
        assert status == 200
        assert headers["Content-Type"] == CONTENT_TYPE and "X-Content-Type-Version" not in headers
        return text

    text = run(main())
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {(s.labels["target"], s.labels["status_class"]): s.value for s in families["baton_requests"].samples}
    assert requests == {("a", "2xx"): 30, ("b", "5xx"): 10, ("c", "5xx"): 5}
    assert {s.name for s in families["baton_requests"].samples} == {"baton_requests_total"}
    failed = families["baton_requests_failed"].samples
    assert [(s.name, s.labels, s.value) for s in failed] == [
        ("baton_requests_failed_total", {"node": "checkout", "role": "ingress"}, 15.0)]
    attempts = {(s.labels["target"], s.labels["outcome"]): s.value for s in families["baton_attempts"].samples}
    assert attempts == {("a", "2xx"): 30, ("b", "5xx"): 10, ("c", "error"): 5}
    counts = {s.labels["target"]: s.value for s in families["baton_latency_seconds"].samples
              if s.name == "baton_latency_seconds_count"}
    assert counts == {"a": 30, "b": 10, "c": 5}
    infinite = {s.labels["target"]: s.value for s in families["baton_latency_seconds"].samples
                if s.name == "baton_latency_seconds_bucket" and s.labels["le"] == "+Inf"}
    assert infinite == counts
    assert families["baton_bytes_received"].samples[0].value == sum(sum(range(n)) for n in sent.values())
    assert families["baton_bytes_sent"].samples[0].name == "baton_bytes_sent_total"
    assert families["baton_active_connections"].type == "gauge"
    assert {s.labels["target"] for s in families["baton_breaker_open"].samples} == {"a", "b", "c"}
    spans = {s.labels["outcome"]: s.value for s in families["baton_trace_spans"].samples}
    assert spans["exported"] == 45 and spans["dropped"] == spans["failed"] == 0
    for family in families.values():  # every sample labelled with the node and its role
        assert all(s.labels["node"] == "checkout" and s.labels["role"] == "ingress" for s in family.samples)

    check = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert (check.stdout + check.stderr).strip() == "", check.stdout + check.stderr  # not even a lint remark


def test_a_fresh_adapter_exposes_valid_empty_families() -> None:
    tool = promtool()
    proc, ready = start_adapter_process(["--node", "idle", "--port", "0", "--management-port", "0", "--mock"])
    try:
        status, headers, text = _scrape(ready["nodes"][0]["management_port"], token=None)
    finally:
        proc.terminate()
        proc.wait(10)
    assert status == 200 and headers["Content-Type"] == CONTENT_TYPE
    assert "# TYPE baton_requests_failed_total counter" in text and "# TYPE baton_latency_seconds histogram" in text
    check = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and (check.stdout + check.stderr).strip() == "", check.stdout + check.stderr
