"""The Cloud Run provider end to end on the stand-in: deploy the shop, IAM, a canary and a swap under steady
load with zero failed requests, status, teardown leaving nothing; quota errors retried within the gate,
permanent errors failing with their message, the cost guard refusing before anything is deployed."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.cloudrun
ACCOUNT = "baton-shop@baton-test.iam.gserviceaccount.com"
TOKEN = f"Bearer serviceAccount:{ACCOUNT}"  # the stand-in's identity tokens (see cloudrun_standin.router)


def _get(url: str, *, token: str = TOKEN) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Authorization": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode(), resp.headers.get("X-Standin-Revision", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), ""


class Load:
    """Steady requests from two threads until stopped; every status and serving revision counted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: Counter[int] = Counter()
        self.revisions: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body, revision = _get(self.url)
            except OSError as exc:
                self.errors.append(str(exc))
                continue
            self.statuses[status] += 1
            self.revisions[revision] += 1
            if status != 200:
                self.errors.append(f"{status}: {body[:200]}")

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


@pytest.fixture
def provider():
    from providers import get_provider

    return get_provider("cloudrun")


def _config(root: Path):
    from baton.project import Project

    return Project.at(root).load()


def test_shop_deploys_routes_canary_swap_and_tears_down(shop, cloud_env, adapter_image, users_images,
                                                       provider, docker_client):
    root = shop()
    config, state = _config(root), root / ".baton"
    retried = provider.gate.retried  # the gate is the process's, shared by every provider object
    cloud_env.fault(429, "Quota exceeded for quota metric 'Write requests' of service 'run.googleapis.com'.",
                    method="createService", times=2)

    deployed = provider.deploy_circuit(root, state, config, images={"users": users_images[0]},
                                       adapter_base=adapter_image)

    assert provider.gate.retried - retried == 2  # the quota errors were retried within the gate, and the deploy went on
    nodes = deployed["nodes"]
    assert set(nodes) == {"gateway", "orders", "users", "payments"}
    print(f"deploy: {deployed['seconds']} s")
    # the real service answers behind its adapter; the gateway's mock answers from its contract
    status, body, _ = _get(f"{nodes['users']['url']}/users/42")
    assert status == 200 and "Ada Lovelace" in body
    gateway = _get(f"{nodes['gateway']['url']}/")
    assert gateway[0] == 200, gateway
    # IAM: the circuit's account invokes every node, nobody else (no --public-ingress)
    api = provider.api("baton-test", "europe-west1")
    for name, entry in nodes.items():
        members = {m for b in api.policy(entry["service"]).bindings if b.role == "roles/run.invoker"
                   for m in b.members}
        assert members == {f"serviceAccount:{ACCOUNT}"}, name
    assert _get(f"{nodes['users']['url']}/users/42", token="")[0] == 403
    # deploy-status reads the services' conditions
    seen = provider.circuit_status(root, state, config)
    assert {n: s["state"] for n, s in seen["nodes"].items()} == {n: "succeeded" for n in nodes}

    url = f"{nodes['users']['url']}/users/42"
    with Load(url) as load:
        canary = provider.new_version(root, state, config, "users", users_images[1], percent=10)
        provider.set_split(state, "users", {canary["previous"]: 50, canary["revision"]: 50})
        provider.promote(state, "users")
        swapped = provider.new_version(root, state, config, "users", users_images[2], percent=100)
        for _ in range(20):  # the swap's revision takes traffic once ready: requests after it land there
            assert _get(url)[2] == swapped["revision"]
    assert not load.errors, load.errors[:5]
    assert load.statuses[200] > 50
    assert load.revisions[canary["revision"]] > 0 and load.revisions[canary["previous"]] > 0

    from google.cloud import run_v2

    from baton.images.offline import OFFLINE_BASE

    foreign = run_v2.Service(template=run_v2.RevisionTemplate(containers=[run_v2.Container(
        image=OFFLINE_BASE, command=["sh", "-c", "exec python3 -m http.server $PORT"],
        ports=[run_v2.ContainerPort(container_port=8080)])]))
    api.create("someone-elses", foreign)  # not Baton's: teardown must leave it

    torn = provider.teardown_circuit(root, state, config)
    print(f"teardown: {torn['seconds']} s; the gate: {provider.gate.to_json()}")
    assert sorted(torn["deleted"]) == sorted(e["service"] for e in nodes.values())
    assert api.list({"managed-by": "baton"}) == []
    assert [s.name.rsplit("/", 1)[-1] for s in api.list({})] == ["someone-elses"]
    api.delete("someone-elses")
    left = docker_client.containers.list(all=True, filters={"label": f"cloudrun-standin={cloud_env.instance}"})
    assert left == []


def test_permanent_error_fails_with_its_message_unretried(shop, cloud_env, adapter_image, provider):
    from baton.errors import BatonError

    root = shop()
    cloud_env.fault(403, "Permission 'run.services.create' denied on resource 'baton-test'.",
                    method="createService", times=-1)
    before, retried = cloud_env.calls().get("createService", 0), provider.gate.retried
    with pytest.raises(BatonError) as caught:
        provider.deploy_circuit(root, root / ".baton", _config(root), adapter_base=adapter_image)
    message = str(caught.value)
    assert "Permission 'run.services.create' denied" in message and "\n" not in message
    # each node of the first level (users, payments) tried once, never retried; later levels never tried
    assert cloud_env.calls()["createService"] == before + 2 and provider.gate.retried == retried
    cloud_env.clear_faults()
    provider.teardown_circuit(root, root / ".baton", _config(root))


def test_cost_guard_refuses_an_over_budget_deploy_before_any_call(shop, cloud_env, provider):
    from baton.errors import UsageError

    root = shop(max_instances=100, cpu=2, memory_mib=2048, monthly_budget_usd=500)
    before = cloud_env.calls()
    with pytest.raises(UsageError) as caught:
        provider.deploy_circuit(root, root / ".baton", _config(root))
    message = str(caught.value)
    assert "4 services x 100 instances" in message and "$54,950.40 a month" in message and "$500.00" in message
    assert cloud_env.calls() == before
