"""The Cloud Run provider: each node a Cloud Run service, routing by native revision traffic splits.

Where the :class:`~providers.base.Provider` protocol does not fit: that protocol starts adapter hosts and
service processes one by one and routes through each adapter's management API. On Cloud Run the unit is a
service whose revision holds the adapter (ingress container) and the slotted service (sidecar) together, only
the ingress port is reachable, and routing between versions is the service's traffic split. So this provider
declares ``deploys_circuit = True`` and offers circuit-level operations instead (deploy, swap, canary, split,
promote, teardown, status), which the deploy flows call through ``tasks/cloudrun.py``.

What Baton deployed is recorded in ``.baton/cloudrun.json`` (project, region, per node its service and URL);
teardown does not trust that record alone: it deletes every service of the region carrying this project's and
circuit's labels, and nothing else."""

from __future__ import annotations

import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from baton.config import CircuitConfig
from baton.config.document import atomic_write_text
from baton.control import control_token, token_env
from baton.errors import UsageError
from providers.cloudrun.api import CloudRunApi
from providers.cloudrun.cost import check_budget
from providers.cloudrun.gate import ApiGate, shared_gate
from providers.cloudrun.images import ImagePusher
from providers.cloudrun.spec import circuit_account, invokers, labels, node_service, service_id, traffic

__all__ = ["CloudRunProvider", "RECORD"]

RECORD = "cloudrun.json"
ApiFactory = Callable[[str, str], CloudRunApi]


def _api_from_env(project: str, region: str, gate: ApiGate) -> CloudRunApi:
    """The real API, or the endpoint ``BATON_CLOUDRUN_ENDPOINT`` names (with ``BATON_CLOUDRUN_ANONYMOUS=1``:
    no credentials, for a stand-in)."""
    credentials = None
    if os.environ.get("BATON_CLOUDRUN_ANONYMOUS") == "1":
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    return CloudRunApi(project, region, endpoint=os.environ.get("BATON_CLOUDRUN_ENDPOINT", ""),
                       credentials=credentials, gate=gate,
                       poll_s=float(os.environ.get("BATON_CLOUDRUN_POLL_S", "1.0")))


class CloudRunProvider:
    name = "cloudrun"
    deploys_circuit = True

    def __init__(self, api_factory: ApiFactory | None = None, gate: ApiGate | None = None) -> None:
        self.gate = gate or shared_gate(self.name)
        self._api_factory = api_factory or (lambda project, region: _api_from_env(project, region, self.gate))
        self._apis: dict[tuple[str, str], CloudRunApi] = {}

    def api(self, project: str, region: str) -> CloudRunApi:
        if (project, region) not in self._apis:
            self._apis[(project, region)] = self._api_factory(project, region)
        return self._apis[(project, region)]

    # -- the record -----------------------------------------------------------------------------------------

    def deployed(self, state_dir: Path) -> bool:
        """Whether Baton recorded a deployment of this circuit here (teardown removes the record)."""
        return (Path(state_dir) / RECORD).is_file()

    @staticmethod
    def record(state_dir: Path) -> dict[str, Any]:
        path = Path(state_dir) / RECORD
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @staticmethod
    def _save(state_dir: Path, record: Mapping[str, Any]) -> None:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(state_dir) / RECORD, json.dumps(record, indent=2, sort_keys=True))

    def _where(self, config: CircuitConfig, state_dir: Path, project: str, region: str) -> tuple[str, str]:
        record = self.record(state_dir)
        project = project or record.get("project") or config.deploy.project
        region = region or record.get("region") or config.deploy.region
        if not project or not region:
            raise UsageError("Cloud Run needs a project and a region; pass --project and --region or set "
                             "deploy.project and deploy.region in baton.yaml.")
        return project, region

    # -- deploy ---------------------------------------------------------------------------------------------

    def deploy_circuit(self, root: Path, state_dir: Path, config: CircuitConfig, *, project: str = "",
                       region: str = "", public_ingress: bool = False, images: Mapping[str, str] | None = None,
                       adapter_base: str = "") -> dict[str, Any]:
        """Every node as a Cloud Run service (dependencies first, so URLs exist before their consumers), the
        circuit's account as every node's invoker, ``allUsers`` on the ingress only when ``public_ingress``."""
        from baton.circuit import CircuitGraph

        started = time.monotonic()
        cost = check_budget(config.deploy, len(config.nodes))  # before anything is built, pushed or created
        project, region = self._where(config, state_dir, project, region)
        api = self.api(project, region)
        pusher = ImagePusher(config.deploy.registry, adapter_base or _adapter_base())
        adapter_image = pusher.adapter_image(config, root)
        record = self.record(state_dir) or {"project": project, "region": region, "nodes": {}}
        record.update(project=project, region=region, public_ingress=public_ingress, adapter_image=adapter_image)
        for node, image in (images or {}).items():
            record["nodes"].setdefault(node, {})["image"] = pusher.service_image(image)
        account = circuit_account(config, project)
        urls: dict[str, str] = {}

        def put(name: str) -> None:
            entry = record["nodes"].setdefault(name, {})
            service = self._build(root, state_dir, config, name, adapter_image, entry.get("image", ""), urls, account)
            deployed = self._put(api, service_id(config.name, name), service)
            node = config.node(name)
            public = public_ingress and node is not None and str(node.role) == "ingress"
            api.grant_invokers(service_id(config.name, name), invokers(account, public=public))
            entry.update(service=service_id(config.name, name), url=deployed.uri,
                         revision=deployed.latest_ready_revision.rsplit("/", 1)[-1], public=public)

        with ThreadPoolExecutor(max_workers=self.gate.limits.concurrency) as pool:
            for batch in _batches(config, CircuitGraph.from_config(config).topological_order()):
                list(pool.map(put, batch))  # one level at a time: a node's dependencies have URLs before it
                urls.update({n: record["nodes"][n]["url"] for n in batch})
                self._save(state_dir, record)
        return {"project": project, "region": region, "account": account, "cost": cost.to_json(),
                "nodes": record["nodes"], "seconds": round(time.monotonic() - started, 2),
                "gate": self.gate.to_json()}

    def _build(self, root: Path, state_dir: Path, config: CircuitConfig, name: str, adapter_image: str,
               image: str, urls: Mapping[str, str], account: str, *, revision: str = "",
               split: Mapping[str, int] | None = None) -> Any:
        node = config.node(name)
        assert node is not None
        return node_service(config, node, root=root, adapter_image=adapter_image, service_image=image, urls=urls,
                            token_env=token_env(config), token=control_token(config, state_dir, create=True) or "",
                            account=account, revision=revision, split=split)

    def _put(self, api: CloudRunApi, sid: str, service: Any) -> Any:
        """Create the service, or update it when it exists (a changed template makes a new revision)."""
        current = api.get(sid)
        if current is None:
            return api.create(sid, service)
        service.name = current.name
        return api.update(service)

    # -- versions and traffic -------------------------------------------------------------------------------

    def _node(self, state_dir: Path, node: str) -> tuple[dict[str, Any], dict[str, Any]]:
        record = self.record(state_dir)
        entry = record.get("nodes", {}).get(node)
        if not entry or not entry.get("service"):
            raise UsageError(f"{node} is not deployed on Cloud Run here; run `baton deploy --provider cloudrun`.")
        return record, entry

    def _urls(self, record: Mapping[str, Any]) -> dict[str, str]:
        return {n: e["url"] for n, e in record.get("nodes", {}).items() if e.get("url")}

    def new_version(self, root: Path, state_dir: Path, config: CircuitConfig, node: str, image: str, *,
                    percent: int = 100) -> dict[str, Any]:
        """A new revision of ``node`` running ``image``: ``percent`` 100 is a swap (traffic moves to it once it
        is ready), less is a canary beside the revision serving now."""
        if not 0 <= percent <= 100:
            raise UsageError(f"a traffic share is a percentage from 0 to 100, got {percent}.")
        record, entry = self._node(state_dir, node)
        api = self.api(record["project"], record["region"])
        pusher = ImagePusher(config.deploy.registry, record.get("adapter_base", "") or _adapter_base())
        pushed = pusher.service_image(image)
        current = entry["revision"]
        if entry.get("candidate") and entry.get("candidate_image") == pushed:  # the same version: set its share
            if percent == 100:
                return {**self.promote(state_dir, node), "revision": entry["candidate"], "previous": current}
            split = {current: 100 - percent, entry["candidate"]: percent}
            return {**self.set_split(state_dir, node, split), "revision": entry["candidate"], "previous": current}
        revision = f"{entry['service']}-{secrets.token_hex(3)}"
        split = {"": 100} if percent == 100 else {current: 100 - percent, revision: percent}
        service = self._build(root, state_dir, config, node, record["adapter_image"], pushed, self._urls(record),
                              circuit_account(config, record["project"]), revision=revision, split=split)
        deployed = self._put(api, entry["service"], service)
        if percent == 100:  # a canary in flight loses its share with the split: forget it
            entry.update(image=pushed, revision=revision, previous=current)
            entry.pop("candidate", None)
            entry.pop("candidate_image", None)
        else:
            entry.update(candidate=revision, candidate_image=pushed)
        self._save(state_dir, record)
        return {"node": node, "revision": revision, "previous": current, "split": split,
                "traffic": [(t.revision or "latest", t.percent) for t in deployed.traffic]}

    def set_split(self, state_dir: Path, node: str, split: Mapping[str, int]) -> dict[str, Any]:
        """Set ``node``'s traffic split (percent by revision; ``""``: the latest ready one); nothing else."""
        if sum(split.values()) != 100:
            raise UsageError(f"traffic percentages must add up to 100, got {dict(split)}.")
        record, entry = self._node(state_dir, node)
        api = self.api(record["project"], record["region"])
        current = api.get(entry["service"])
        if current is None:
            raise UsageError(f"the Cloud Run service {entry['service']} of {node} is gone; deploy again.")
        current.traffic = traffic(split)
        deployed = api.update(current)
        return {"node": node, "split": dict(split), "traffic": [(t.revision or "latest", t.percent)
                                                                 for t in deployed.traffic_statuses]}

    def drop_candidate(self, state_dir: Path, node: str) -> dict[str, Any]:
        """All traffic back to the node's revision; the canary revision keeps no share (rollback, route clear)."""
        record, entry = self._node(state_dir, node)
        result = self.set_split(state_dir, node, {entry["revision"]: 100})
        entry.pop("candidate", None)
        entry.pop("candidate_image", None)
        self._save(state_dir, record)
        return result

    def promote(self, state_dir: Path, node: str) -> dict[str, Any]:
        """The canary takes all traffic and becomes the node's revision."""
        record, entry = self._node(state_dir, node)
        candidate = entry.get("candidate")
        if not candidate:
            raise UsageError(f"{node} has no canary to promote.")
        result = self.set_split(state_dir, node, {candidate: 100})
        entry.update(previous=entry["revision"], revision=candidate, image=entry.pop("candidate_image", ""))
        entry.pop("candidate")
        self._save(state_dir, record)
        return result

    # -- teardown and status --------------------------------------------------------------------------------

    def teardown_circuit(self, root: Path, state_dir: Path, config: CircuitConfig, *, project: str = "",
                         region: str = "") -> dict[str, Any]:
        """Delete every service of the region labelled as this project's circuit; nothing else."""
        started = time.monotonic()
        project, region = self._where(config, state_dir, project, region)
        api = self.api(project, region)
        deleted = []
        for service in api.list(labels(root, config.name)):
            sid = service.name.rsplit("/", 1)[-1]
            api.delete(sid)
            deleted.append(sid)
        (Path(state_dir) / RECORD).unlink(missing_ok=True)
        return {"project": project, "region": region, "deleted": sorted(deleted),
                "seconds": round(time.monotonic() - started, 2)}

    def circuit_status(self, root: Path, state_dir: Path, config: CircuitConfig, *, project: str = "",
                       region: str = "") -> dict[str, Any]:
        """Each labelled service's Ready condition, URL and traffic, read from Cloud Run."""
        project, region = self._where(config, state_dir, project, region)
        nodes = {}
        for service in self.api(project, region).list(labels(root, config.name)):
            ready = service.terminal_condition
            nodes[service.labels.get("baton-node", service.name)] = {
                "service": service.name.rsplit("/", 1)[-1], "url": service.uri,
                "state": ready.state.name.removeprefix("CONDITION_").lower() if ready.type_ else "unknown",
                "detail": ready.message, "revision": service.latest_ready_revision.rsplit("/", 1)[-1],
                "traffic": [(t.revision or "latest", t.percent) for t in service.traffic_statuses]}
        return {"provider": self.name, "project": project, "region": region, "running": bool(nodes),
                "nodes": nodes}

    # -- the process-level protocol (not how Cloud Run works; see the module docstring) --------------------

    def _circuit_level(self, *_: Any, **__: Any) -> Any:
        raise UsageError("the cloudrun provider deploys whole circuits: use `baton deploy --provider cloudrun`, "
                         "`baton teardown` and `baton deploy-status`.")

    start_host = stop_host = start_service = stop_service = _circuit_level

    def host_alive(self, host: Any) -> bool:
        return False

    def service_alive(self, slot: Any) -> bool:
        return False

    def host_log_tail(self, host: Any, lines: int = 5) -> str:
        return ""

    def service_log_tail(self, state_dir: Path, node: str, slot: Any, lines: int = 3) -> str:
        return ""

    def free_port(self) -> int:
        return 0

    def tls_names(self, root: Path, config: Any) -> dict[str, tuple[str, ...]]:
        return {}

    def trust_files(self, state_dir: Path) -> dict[str, str]:
        return {}

    def dependency_host(self, node: Any) -> str:
        return ""


def _batches(config: CircuitConfig, order: tuple[str, ...]) -> list[list[str]]:
    """``order`` (dependencies first) cut into levels whose nodes depend only on earlier levels; a cycle's
    members go one by one, in order."""
    needs = {n: {e.target for e in config.edges if e.source == n} for n in order}
    done: set[str] = set()
    batches = []
    remaining = list(order)
    while remaining:
        batch = [n for n in remaining if needs[n] <= done] or remaining[:1]
        batches.append(batch)
        done |= set(batch)
        remaining = [n for n in remaining if n not in done]
    return batches


def _adapter_base() -> str:
    from providers.docker import ADAPTER_IMAGE

    return ADAPTER_IMAGE
