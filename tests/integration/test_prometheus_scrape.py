"""A real Prometheus server (Debian's ``prometheus``, 127.0.0.1, a free port, scrape interval 1 s) scrapes every
adapter of a real circuit over its management port with the project's bearer token, and PromQL through its HTTP
API gives back the traffic sent: each node's request rate while a paced load runs, and the exact totals after.

Traffic: 40 req/s to the gateway and 20 req/s to the api for 15 s, each sender on an absolute schedule (request
``i`` leaves at ``start + i / rate``, catching up after a stall), users gets none. ``rate(...[5s])`` is read
with a range query over the steady middle of the load (one point a second) and its median compared with the
rate sent, within 15 %: a 5 s window over 1 s scrapes spans about 4 s between its first and last samples, so
the quantisation of a count read between two requests is 2 requests in 160 (1.3 %) at 40 req/s and in 80
(2.5 %) at 20 req/s; the scrape timestamp is taken when the scrape starts, milliseconds before the adapter
counts; a sender that stalls catches up within the window. The rest of the 15 % is room for a CI machine
under load (two CPU-bound test processes beside this one), and the median shrugs off a point next to a stall.
The totals are exact (``sum by (node) (baton_requests_total)`` once Prometheus has scraped after the load).
The scrape configuration is the README's (checked by ``promtool check config``), and the README's PromQL lines
are evaluated as written.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from baton_cli import free_port, ok, run_baton, wait_for

pytestmark = pytest.mark.integration

RATES = {"gateway": 40.0, "api": 20.0}
SECONDS = 15.0
TOLERANCE = 0.15


def _prometheus() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if found is None:
        if os.environ.get("BATON_REQUIRE_PROMETHEUS"):
            pytest.fail("BATON_REQUIRE_PROMETHEUS is set but the prometheus server is not installed (Debian: "
                        "prometheus)")
        pytest.skip("the prometheus server is not installed (Debian's prometheus package; .ci/run installs it)")
    return found


def _promtool(prometheus: str) -> str:
    return shutil.which("promtool") or str(Path(prometheus).with_name("promtool"))


def _readme_section() -> str:
    from baton_cli import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("#### Every adapter speaks Prometheus")
    return readme[start:readme.index("\n#### ", start + 1)]


def _readme_scrape_config() -> dict:
    import re

    import yaml

    (block,) = re.findall(r"```yaml\n(.*?)```", _readme_section(), re.S)
    return yaml.safe_load(block)


def _readme_promql() -> list[str]:
    import re

    (block,) = re.findall(r"```promql\n(.*?)```", _readme_section(), re.S)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def _circuit(project: Path) -> dict[str, dict[str, int]]:
    ports = {n: {"port": free_port(), "management_port": free_port()} for n in ("gateway", "api", "users")}
    nodes = "\n".join(f"  - {{name: {n}, port: {p['port']}, management_port: {p['management_port']}"
                      f"{', role: ingress' if n == 'gateway' else ''}}}" for n, p in ports.items())
    (project / "baton.yaml").write_text(f"""\
name: promdrill
version: 2
nodes:
{nodes}
edges:
  - {{source: gateway, target: api}}
  - {{source: api, target: users}}
""")
    return ports


def _query(base: str, path: str, **params: str) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        answer = json.loads(resp.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def _by_node(data: dict) -> dict[str, float]:
    return {r["metric"].get("node", "?"): float(r["value"][1]) for r in data["result"]}


async def _paced(url: str, rate: float, seconds: float) -> int:
    """GETs to ``url`` on an absolute schedule of ``rate`` a second for ``seconds``; the number answered 200."""
    count, answered = int(rate * seconds), 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        start = time.monotonic()
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule of the load itself, not a wait for readiness
            async with session.get(f"{url}/?i={i}") as resp:
                await resp.read()
                answered += resp.status == 200
    return answered


@pytest.fixture
def project(tmp_path: Path):
    project = tmp_path / "promdrill"
    ok(run_baton("init", str(project), "--name", "promdrill"))
    try:
        yield project
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def test_prometheus_scrapes_every_adapter_and_promql_gives_back_the_traffic_sent(project: Path,
                                                                                   tmp_path: Path) -> None:
    binary = _prometheus()
    ports = _circuit(project)
    ok(run_baton("up", "--mock", cwd=project, timeout=180))
    token_file = project / ".baton" / "control_token"
    assert token_file.exists()
    targets = [f"127.0.0.1:{p['management_port']}" for p in ports.values()]
    config = tmp_path / "prometheus.yml"
    scrape = _readme_scrape_config()  # the README's, as written, with this project's token file and ports
    job = scrape["scrape_configs"][0]
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"][0]["targets"] = targets
    job["static_configs"][0]["labels"] = {"circuit": "promdrill"}
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}, **scrape}))
    check = subprocess.run([_promtool(binary), "check", "config", str(config)], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    web = free_port()
    base = f"http://127.0.0.1:{web}"
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{web}"], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        def up() -> bool:
            try:
                active = _query(base, "/api/v1/targets")["activeTargets"]
            except OSError:
                assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                return False
            return len(active) == 3 and all(t["health"] == "up" for t in active)

        wait_for(up, 60, "Prometheus to scrape the three adapters (targets up)")
        wait_for(lambda: len(_query(base, "/api/v1/query", query="baton_requests_failed_total")["result"]) == 3,
                 30, "a sample of every adapter")
        started = time.time()

        async def load() -> list[int]:
            return await asyncio.gather(*(_paced(f"http://127.0.0.1:{ports[n]['port']}", r, SECONDS)
                                          for n, r in RATES.items()))

        answered = asyncio.run(load())
        ended = time.time()
        sent = {n: int(r * SECONDS) for n, r in RATES.items()}
        assert dict(zip(RATES, answered, strict=True)) == sent

        # the exact totals, once Prometheus has scraped after the load
        totals = wait_for(lambda: (t := _by_node(_query(base, "/api/v1/query",
                                                        query="sum by (node) (baton_requests_total)"))) == sent and t,
                          30, f"the totals {sent} in Prometheus")
        assert "users" not in totals  # no request, no series of requests (its failed counter is there, at 0)
        failed = _by_node(_query(base, "/api/v1/query", query="baton_requests_failed_total"))
        assert failed == {"gateway": 0.0, "api": 0.0, "users": 0.0}

        # the rates while the load ran: its steady middle (a 5 s window wholly inside the load)
        series = _query(base, "/api/v1/query_range", query="sum by (node) (rate(baton_requests_total[5s]))",
                        start=f"{started + 6:.3f}", end=f"{ended - 1:.3f}", step="1")["result"]
        rates = {r["metric"]["node"]: [float(v) for _, v in r["values"]] for r in series}
        assert set(rates) == set(RATES)
        for node, rate in RATES.items():
            assert len(rates[node]) >= 6, rates
            median = statistics.median(rates[node])
            assert abs(median - rate) <= TOLERANCE * rate, (node, median, rates[node])
        by_instance = _query(base, "/api/v1/query", query="count by (instance) (baton_active_connections)")
        assert {r["metric"]["instance"] for r in by_instance["result"]} == set(targets)
        # the README's PromQL, as written, evaluated at the load's steady middle
        at = f"{(started + ended) / 2 + 3:.3f}"
        per_second, error_ratio, p99 = (_query(base, "/api/v1/query", query=q, time=at) for q in _readme_promql())
        assert set(_by_node(per_second)) == set(RATES)
        assert set(_by_node(error_ratio).values()) == {0.0}
        quantiles = _by_node(p99)
        assert all(0 < quantiles[node] < 10 for node in RATES), p99  # seconds; users served nothing (NaN)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()
