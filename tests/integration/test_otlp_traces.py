"""Traces of a real circuit exported over OTLP/HTTP to a receiver of the tests (tests/otlp_receiver.py, decoded
with opentelemetry-proto): with ``observability.otlp_endpoint`` set, ``baton up`` and ``baton slot`` each give a
flow-run span (action, circuit, node, Prefect's run id and final state); a request with a ``traceparent`` into the
gateway, whose slotted service calls the api, gives one server span per adapter in the client's trace, the api's a
child of the gateway's and tagged with the ``x-data-classification`` its contract declares; the slotted service,
which holds the events-only token and not the management token, can post a service event to its adapter and
opens nothing else with it."""

from __future__ import annotations

import json
import secrets
import sys
import urllib.request
from pathlib import Path

import pytest

from baton_cli import free_port, ok, run_baton
from otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.integration

CONTRACT = """\
openapi: 3.0.3
info: {title: API, version: 1.0.0}
paths:
  /users/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses:
        "200":
          description: A user.
          content:
            application/json:
              schema:
                type: object
                required: [id, email]
                properties:
                  id: {type: integer}
                  email: {type: string, format: email, x-data-classification: PII}
"""

# the gateway's service: forwards the traceparent it got to the api; /probe tries its adapter's management API
# with the events-only token it was given; /env lists the names of its environment
FORWARDER = """\
import json, os, urllib.error, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANAGE = "http://127.0.0.1:" + os.environ["BATON_CONTROL_PORT"]


def manage(method, path, body=None):
    request = urllib.request.Request(MANAGE + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + os.environ.get("BATON_EVENTS_TOKEN", ""),
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        elif self.path == "/probe":
            body = json.dumps({"event": manage("POST", "/events", {"type": "started", "message": "forwarder up"}),
                               "status": manage("GET", "/status"),
                               "routing": manage("POST", "/routing", {"strategy": "single"})}).encode()
        elif self.path == "/env":
            body = json.dumps(sorted(os.environ)).encode()
        else:
            request = urllib.request.Request(os.environ["BATON_API_URL"] + "/users/7",
                                             headers={"traceparent": self.headers.get("traceparent", "")})
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["BATON_SERVICE_PORT"])), Handler).serve_forever()
"""


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
        return response.read()


@pytest.fixture
def receiver():
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, receiver: OtlpReceiver):
    project = tmp_path / "otlpdrill"
    ok(run_baton("init", str(project), "--name", "otlpdrill"))
    try:
        yield project
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def test_flow_runs_and_requests_through_two_adapters_are_traced(project: Path, receiver: OtlpReceiver) -> None:
    ports = {n: {"port": free_port(), "management_port": free_port()} for n in ("gateway", "api")}
    (project / "specs").mkdir()
    (project / "specs" / "api.yaml").write_text(CONTRACT)
    (project / "forwarder.py").write_text(FORWARDER)
    (project / "baton.yaml").write_text(f"""\
name: otlpdrill
version: 2
observability:
  otlp_endpoint: {receiver.endpoint}
nodes:
  - {{name: gateway, role: ingress, port: {ports['gateway']['port']}, management_port: {ports['gateway']['management_port']}}}
  - {{name: api, port: {ports['api']['port']}, management_port: {ports['api']['management_port']}, contract: specs/api.yaml}}
edges:
  - {{source: gateway, target: api}}
""")
    ok(run_baton("up", "--mock", cwd=project, timeout=180))
    up = receiver.wait_for(lambda spans: [s for s in spans if s.name == "baton up"], "the span of baton up")[0]
    assert (up.attributes["baton.action"], up.attributes["baton.circuit"], up.attributes["prefect.flow_run.state"]) \
        == ("up", "otlpdrill", "Completed")
    assert len(up.attributes["prefect.flow_run.id"]) == 36 and up.attributes["prefect.flow_run.name"]
    assert (up.resource["service.name"], up.resource["service.namespace"]) == ("baton", "otlpdrill")
    assert up.end_ns > up.start_ns and up.status_code != 2  # not ERROR

    ok(run_baton("slot", "gateway", f"{sys.executable} forwarder.py", cwd=project, timeout=120))
    slot = receiver.wait_for(lambda spans: [s for s in spans if s.name == "baton slot"], "the span of baton slot")[0]
    assert (slot.attributes["baton.node"], slot.attributes["prefect.flow_run.state"]) == ("gateway", "Completed")
    assert slot.trace_id != up.trace_id  # every run is a trace of its own

    # a request in a client's trace: the gateway's adapter, its service, the api's adapter (its mock)
    trace, client_span = secrets.token_hex(16), secrets.token_hex(8)
    answer = json.loads(_get(f"http://127.0.0.1:{ports['gateway']['port']}/orders",
                             {"traceparent": f"00-{trace}-{client_span}-01"}))
    assert "email" in answer
    spans = receiver.wait_for(lambda got: (found := [s for s in got if s.trace_id == trace]) and len(found) >= 2
                              and found, "the two adapters' spans of the client's trace")
    by_node = {s.resource["service.name"]: s for s in spans}
    gateway, api = by_node["gateway"], by_node["api"]
    assert gateway.parent_span_id == client_span and api.parent_span_id == gateway.span_id
    assert api.attributes["baton.request.classifications"] == ["PII"] and api.name == "GET /users/{id}"
    assert "baton.request.classifications" not in gateway.attributes
    assert gateway.resource["service.namespace"] == api.resource["service.namespace"] == "otlpdrill"
    assert (gateway.attributes["url.path"], api.attributes["url.path"]) == ("/orders", "/users/7")

    # the service holds the events-only token: it posts an event, and nothing else opens with it
    assert json.loads(_get(f"http://127.0.0.1:{ports['gateway']['port']}/probe")) == {
        "event": 201, "status": 401, "routing": 401}
    names = json.loads(_get(f"http://127.0.0.1:{ports['gateway']['port']}/env"))
    assert "BATON_EVENTS_TOKEN" in names and "BATON_CONTROL_TOKEN" not in names
    token = (project / ".baton" / "control_token").read_text().strip()
    events = json.loads(_get(f"http://127.0.0.1:{ports['gateway']['management_port']}/events",
                             {"Authorization": f"Bearer {token}"}))
    assert [(e["type"], e["message"]) for e in events] == [("started", "forwarder up")]
