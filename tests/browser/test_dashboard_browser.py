"""The live dashboard in headless Chromium, on a real circuit (free ports on 127.0.0.1): the conductor serves it
at the URL ``baton dashboard --serve`` prints (asked again: the same URL; a taken port: one sentence naming it);
the page shows every node in the topology and as a card, its req/s figure changes once traffic flows, recent
actions link to their runs in Prefect's UI, and nothing opens without the token. The test saves a screenshot beside
its own files, and to ``examples/dashboard.png`` (the README's) with ``BATON_SAVE_SCREENSHOT=1``."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from baton_cli import ROOT, free_port, ok, run_baton, wait_for

pytestmark = pytest.mark.browser

# the custodian watches (its verdicts show on the page); no canary or certificate schedule is needed
ENV = {"BATON_NO_CUSTODIAN": "0", "BATON_PROBE_INTERVAL_S": "1"}
NODES = ("gateway", "users", "api", "stripe")
SCREENSHOT = ROOT / "examples" / "dashboard.png"

SERVICE = """\
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # headers and body leave in one segment (no delayed-ACK stall)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "12")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["BATON_SERVICE_PORT"])), Handler).serve_forever()
"""


def _circuit(project: Path) -> dict[str, int]:
    """gateway (ingress) -> users, gateway -> api -> stripe (egress)."""
    ports = {name: free_port() for name in NODES}
    roles = {"gateway": ", role: ingress", "stripe": ", role: egress"}
    nodes = "\n".join(f"  - {{name: {name}, port: {port}, management_port: {free_port()}{roles.get(name, '')}}}"
                      for name, port in ports.items())
    (project / "baton.yaml").write_text(f"""\
name: storefront
version: 2
nodes:
{nodes}
edges:
  - {{source: gateway, target: users}}
  - {{source: gateway, target: api, label: orders}}
  - {{source: api, target: stripe, label: payments}}
""")
    return ports


class Traffic:
    """Requests to some nodes' data ports from a thread, until stopped (a steady load the page can see)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.sent = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            for port in self.ports:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/orders", timeout=5) as response:
                        response.read()
                except (urllib.error.URLError, OSError):  # a mock may refuse the path: it was counted anyway
                    pass
                self.sent += 1

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(10)


@pytest.fixture
def project(tmp_path: Path):
    project = tmp_path / "storefront"
    ok(run_baton("init", str(project), "--name", "storefront"))
    try:
        yield project
    finally:
        run_baton("dashboard", "--stop", cwd=project, env=ENV)
        run_baton("down", "--all", cwd=project, env=ENV, timeout=120)


def test_the_live_dashboard_shows_every_node_and_follows_traffic(chromium, prefect_api: str, project: Path,
                                                                 tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ports = _circuit(project)
    ok(run_baton("up", "--mock", cwd=project, env=ENV, timeout=180))
    service = tmp_path / "service.py"
    service.write_text(SERVICE)
    ok(run_baton("slot", "api", f"{sys.executable} {service}", cwd=project, env=ENV, timeout=120))

    # a taken port: one sentence naming it and --port, nothing served
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        refused = run_baton("dashboard", "--serve", "--port", str(busy), "--no-open", cwd=project, env=ENV,
                            timeout=120)
    assert refused.code == 1 and f"port {busy} on 127.0.0.1 is taken" in refused.stderr
    assert "--port" in refused.stderr and "Traceback" not in refused.stderr

    port = free_port()
    served = ok(run_baton("dashboard", "--serve", "--port", str(port), "--no-open", "--json", cwd=project,
                          env=ENV, timeout=120)).json()
    url = served["url"]
    assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/\?token=[\w-]{{20,}}", url) and served["already"] is False
    again = ok(run_baton("dashboard", "--serve", "--port", str(port), "--no-open", "--json", cwd=project,
                         env=ENV)).json()
    assert again["url"] == url and again["already"] is True
    human = ok(run_baton("dashboard", "--serve", "--no-open", cwd=project, env=ENV))
    assert url in human.stdout and "already served" in human.stdout
    base = f"http://127.0.0.1:{port}"

    # nothing opens without the token: the page, an asset, the API (a browser context of its own, no cookie)
    stranger = chromium.new_context()
    try:
        page = stranger.new_page()
        answer = page.goto(base + "/")
        assert answer.status == 401 and "needs its token" in page.content()
        assert page.goto(base + "/?token=not-the-token").status == 401
        assert stranger.request.get(base + "/api/dashboard").status == 401
        assert stranger.request.get(base + "/static/dashboard.js").status == 401
    finally:
        stranger.close()

    context = chromium.new_context(viewport={"width": 1440, "height": 1100})
    try:
        page = context.new_page()
        assert page.goto(url).status == 200
        assert page.url == base + "/"  # the token moved into a cookie, out of the address bar
        expect(page.locator("#circuit")).to_have_text("storefront")
        for name in NODES:
            expect(page.locator(f'#topology g.node[data-node="{name}"]')).to_be_visible()
            expect(page.locator(f'#cards article.card[data-node="{name}"]')).to_be_visible()
        expect(page.locator("#topology path.edge")).to_have_count(3)
        expect(page.locator('#topology g.node[data-node="api"]')).not_to_have_class(re.compile(r"\bmock\b"))
        expect(page.locator('#topology g.node[data-node="users"]')).to_have_class(re.compile(r"\bmock\b"))
        expect(page.locator('#cards [data-node="api"] .badge')).to_have_text("live")
        expect(page.locator('#cards [data-node="users"] .badge')).to_have_text("mocked")
        assert context.request.get(base + "/api/dashboard").status == 200  # the page's cookie opens the API

        rps = page.get_by_test_id("rps-gateway")
        before = rps.text_content()
        assert not re.fullmatch(r"[1-9]\d*\.\d|0\.[1-9]", before or ""), before  # no traffic yet
        positive = re.compile(r"^([1-9]\d*\.\d|0\.[1-9])$")
        with Traffic([ports["gateway"], ports["api"]]) as traffic:
            expect(rps).to_have_text(positive, timeout=30_000)
            expect(page.get_by_test_id("rps-api")).to_have_text(positive, timeout=30_000)
            expect(page.locator("#signals tbody tr td", has_text="/orders").first).to_be_visible(timeout=30_000)
            run_link = page.locator("#runs a.run-link").first
            prefect_run = re.compile(r"^http://127\.0\.0\.1:\d+/runs/flow-run/[0-9a-f-]{36}$")
            expect(run_link).to_have_attribute("href", prefect_run, timeout=30_000)
            expect(page.locator('#cards [data-node="api"] .custodian')).to_contain_text("healthy", timeout=30_000)
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert traffic.sent > 0
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        if os.environ.get("BATON_SAVE_SCREENSHOT") == "1":  # refresh the README's picture; a test run leaves the tree alone
            shutil.copyfile(tmp_path / "dashboard.png", SCREENSHOT)
    finally:
        context.close()

    # the same figures without a browser: one reading, parsed
    table = ok(run_baton("dashboard", "--json", "--window", "0.5", cwd=project, env=ENV)).json()
    assert [n["name"] for n in table["nodes"]] == list(NODES) and table["running"] is True
    rows = {n["name"]: n for n in table["nodes"]}
    assert rows["gateway"]["requests_total"] > 0 and rows["api"]["serving"] == "live"
    assert rows["users"]["serving"] == "mock" and rows["gateway"]["routing"]["strategy"] == "single"

    stopped = ok(run_baton("dashboard", "--stop", "--json", cwd=project, env=ENV)).json()
    assert stopped == {"stopped": True}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_the_page_goes_on_when_the_conductor_sheds_prefect(chromium, prefect_api: str, project: Path) -> None:
    """An idle conductor re-executes itself to shed Prefect (same pid, socket and token): the dashboard's socket
    and token are handed over too, so an open page goes on updating and --serve still answers the same URL."""
    from playwright.sync_api import expect

    from baton.conductor_client import ConductorClient

    env = {**ENV, "BATON_CONDUCTOR_SHED_S": "2"}
    ports = _circuit(project)
    ok(run_baton("up", "--mock", cwd=project, env=env, timeout=180))  # a flow ran: the conductor loaded Prefect
    url = ok(run_baton("dashboard", "--serve", "--port", "0", "--no-open", "--json", cwd=project,
                       env=env)).json()["url"]
    conductor = ConductorClient.discover(project / ".baton")
    assert conductor is not None
    pid = conductor.process.pid
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        for name in NODES:
            expect(page.locator(f'#cards article.card[data-node="{name}"]')).to_be_visible()
        wait_for(lambda: (ConductorClient.discover(project / ".baton").health() or {}).get("prefect_loaded") is False,
                 60, "the conductor to shed Prefect")
        assert ConductorClient.discover(project / ".baton").process.pid == pid  # re-executed, not replaced
        seen = page.locator("body").get_attribute("data-generated-at")
        with Traffic([ports["users"]]):
            expect(page.locator("body")).not_to_have_attribute("data-generated-at", seen or "", timeout=30_000)
            expect(page.get_by_test_id("rps-users")).to_have_text(re.compile(r"^([1-9]\d*\.\d|0\.[1-9])$"),
                                                                  timeout=30_000)
        expect(page.locator("#connection")).to_contain_text("live")
    finally:
        context.close()
    again = ok(run_baton("dashboard", "--serve", "--no-open", "--json", cwd=project, env=env)).json()
    assert again == {**again, "url": url, "already": True}
