"""The Cloud Run provider's pure parts: the cost estimate and guard, the API gate, names, labels, invokers and
the shape of a node's service (adapter as ingress, service as sidecar on localhost)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from baton.config import CircuitConfig, DeployConfig
from baton.custodian.core import ProviderGate
from baton.errors import UsageError
from providers.cloudrun.cost import MONTH_S, check_budget, estimate
from providers.cloudrun.gate import ApiGate, GateRefused

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def test_the_estimate_is_instances_times_resources_times_a_month():
    deploy = DeployConfig(max_instances=2, cpu=1, memory_mib=512)
    cost = estimate(deploy, services=4)
    assert cost.monthly_usd == pytest.approx(4 * 2 * (0.000024 + 0.5 * 0.0000025) * MONTH_S)
    assert cost.within_budget


def test_over_budget_refuses_with_the_figures_in_one_sentence():
    deploy = DeployConfig(max_instances=10, cpu=2, memory_mib=1024, monthly_budget_usd=50)
    with pytest.raises(UsageError) as caught:
        check_budget(deploy, services=3)
    message = str(caught.value)
    assert "3 services x 10 instances x (2 vCPU + 1 GiB" in message and "$50.00" in message
    assert "\n" not in message and message.count(". ") == 0


class Quota(Exception):
    pass


def test_the_gate_retries_quota_errors_and_never_permanent_ones():
    gate = ApiGate(ProviderGate(concurrency=1, rate=100, breaker_after=10), backoff_s=0.001)
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise Quota()
        return "done"

    assert gate.call("x", flaky, retryable=lambda e: isinstance(e, Quota)) == "done"
    assert len(attempts) == 3 and gate.retried == 2

    def denied() -> None:
        attempts.append(1)
        raise PermissionError("denied")

    attempts.clear()
    with pytest.raises(PermissionError):
        gate.call("y", denied, retryable=lambda e: isinstance(e, Quota))
    assert len(attempts) == 1


def test_the_breaker_opens_after_repeated_quota_failures_and_refuses_with_why():
    now = [0.0]
    gate = ApiGate(ProviderGate(concurrency=2, rate=100, breaker_after=2, breaker_cooldown_s=30),
                   retries=5, backoff_s=0.001, clock=lambda: now[0])

    def always() -> None:
        raise Quota()

    with pytest.raises(GateRefused) as caught:
        gate.call("create service a", always, retryable=lambda e: isinstance(e, Quota))
    assert "breaker is open after 2" in str(caught.value)
    now[0] = 31.0  # cooled down: one call goes through again
    assert gate.call("get service a", lambda: 1, retryable=lambda e: False) == 1


def test_the_gate_holds_calls_beyond_its_concurrency():
    gate = ApiGate(ProviderGate(concurrency=1, rate=100))
    inside, peak, release = [0], [0], threading.Event()

    def work() -> None:
        inside[0] += 1
        peak[0] = max(peak[0], inside[0])
        release.wait(2)
        inside[0] -= 1

    threads = [threading.Thread(target=gate.call, args=("w", work), kwargs={"retryable": lambda e: False})
               for _ in range(3)]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(5)
    assert peak[0] == 1


def _shop() -> CircuitConfig:
    from baton.project import Project

    return Project.at(SHOP).load()


def test_service_names_labels_and_invokers():
    from providers.cloudrun.spec import circuit_account, invokers, labels, service_id

    assert service_id("Shop", "ledger_db") == "shop-ledger-db"
    assert len(service_id("c" * 40, "n" * 40)) <= 49
    assert service_id("9lives", "api").startswith("b-")
    found = labels(SHOP, "shop", "users")
    assert found["managed-by"] == "baton" and found["baton-node"] == "users" and len(found["baton-project"]) == 12
    account = circuit_account(_shop(), "proj")
    assert account == "baton-shop@proj.iam.gserviceaccount.com"
    assert invokers(account, public=False) == [f"serviceAccount:{account}"]
    assert "allUsers" in invokers(account, public=True)


def test_a_node_with_a_service_runs_the_adapter_as_ingress_and_the_service_beside_it():
    from google.cloud import run_v2

    from providers.cloudrun.spec import SIDECAR_PORT, node_service

    config = _shop()
    service = node_service(config, config.node("orders"), root=SHOP, adapter_image="r/a:1", service_image="r/o:1",
                           urls={"users": "https://u", "payments": "https://p"}, token_env="T", token="s",
                           account="a@p")
    adapter, sidecar = service.template.containers
    assert adapter.ports[0].container_port == 8080 and adapter.args[-1].endswith("orders.service.json")
    assert not sidecar.ports and sidecar.startup_probe.tcp_socket.port == SIDECAR_PORT
    env = {e.name: e.value for e in sidecar.env}
    assert env["BATON_USERS_URL"] == "https://u" and env["BATON_PAYMENTS_URL"] == "https://p"
    assert env["BATON_SERVICE_HOST"] == "127.0.0.1" and "T" not in env  # the token stays with the adapter
    assert service.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    mocked = node_service(config, config.node("gateway"), root=SHOP, adapter_image="r/a:1", service_image="",
                          urls={}, token_env="T", token="s", account="a@p")
    assert len(mocked.template.containers) == 1 and mocked.template.containers[0].args[-1].endswith("gateway.mock.json")
    assert mocked.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL
