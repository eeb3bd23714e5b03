"""The stand-in's state: services, revisions and operations as the real client's message types, and what
turns a service's spec into running revisions and a traffic split (reconcile)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
from aiohttp import ClientSession, ClientTimeout
from google.cloud import run_v2
from google.iam.v1 import policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, timestamp_pb2

from .router import Router
from .runner import RevisionContainers, Runner, RunnerError

__all__ = ["ApiError", "ServiceRecord", "Store"]

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 90.0
Condition = run_v2.Condition
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _template(service: run_v2.Service) -> dict:
    """A revision template as data (map fields compare regardless of their order)."""
    return json.loads(run_v2.RevisionTemplate.to_json(service.template))


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


@dataclass
class RevisionRecord:
    proto: run_v2.Revision
    containers: RevisionContainers | None = None
    ready: bool = False


@dataclass
class ServiceRecord:
    proto: run_v2.Service
    router: Router
    policy: policy_pb2.Policy = field(default_factory=policy_pb2.Policy)
    revisions: dict[str, RevisionRecord] = field(default_factory=dict)  # by short name, in creation order
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def may_invoke(self, member: str) -> bool:
        return any(b.role == "roles/run.invoker" and member in b.members for b in self.policy.bindings)


class Store:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.services: dict[str, ServiceRecord] = {}  # by full name
        self.operations: dict[str, operations_pb2.Operation] = {}
        self.tasks: set[asyncio.Task] = set()

    # -- operations ---------------------------------------------------------------------------------------

    def operation(self, location: str, service: run_v2.Service) -> operations_pb2.Operation:
        op = operations_pb2.Operation(name=f"{location}/operations/{uuid.uuid4()}")
        self._pack(op, service, done=False)
        self.operations[op.name] = op
        return op

    @staticmethod
    def _pack(op: operations_pb2.Operation, service: run_v2.Service, *, done: bool, error: str = "") -> None:
        packed = any_pb2.Any()
        packed.Pack(run_v2.Service.pb(service))
        op.metadata.CopyFrom(packed)
        op.done = done
        if done and error:
            op.error.code = 9  # FAILED_PRECONDITION, as a revision that never became ready
            op.error.message = error
        elif done:
            op.response.CopyFrom(packed)

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- services -----------------------------------------------------------------------------------------

    def get(self, name: str) -> ServiceRecord:
        record = self.services.get(name)
        if record is None:
            raise ApiError(404, f"Resource '{name}' was not found")
        return record

    async def create(self, parent: str, service_id: str, service: run_v2.Service) -> operations_pb2.Operation:
        name = f"{parent}/services/{service_id}"
        if name in self.services:
            raise ApiError(409, f"Resource '{service_id}' already exists.")
        self._validate(set(), service, template_changed=True)
        router = Router(self.runner.gateway, lambda member: False)
        await router.start()
        service.name = name
        service.uid = str(uuid.uuid4())
        service.generation = 0
        service.create_time = _now()
        service.uri = f"http://127.0.0.1:{router.port}"
        service.urls = [service.uri]
        record = ServiceRecord(proto=service, router=router)
        router.allowed = record.may_invoke
        self.services[name] = record
        return self._apply(parent, record, service, template_changed=True)

    async def update(self, parent: str, service: run_v2.Service) -> operations_pb2.Operation:
        record = self.get(service.name)
        current = record.proto
        changed = _template(service) != _template(current)
        self._validate(set(record.revisions), service, changed)
        for field_name in ("labels", "annotations", "description", "ingress", "template", "traffic", "scaling",
                           "invoker_iam_disabled"):
            setattr(current, field_name, getattr(service, field_name))
        return self._apply(parent, record, current, template_changed=changed)

    @staticmethod
    def _validate(known: set[str], service: run_v2.Service, template_changed: bool) -> None:
        """Refuse a spec before anything changes (an invalid request leaves the service as it was)."""
        total = sum(t.percent for t in service.traffic)
        if service.traffic and total != 100:
            raise ApiError(400, f"Traffic percentages must add up to 100, got {total}.")
        for target in service.traffic:
            if target.revision and target.revision not in known and not (template_changed and target.revision ==
                                                                          service.template.revision):
                raise ApiError(400, f"Revision '{target.revision}' named in traffic does not exist.")
        if template_changed and service.template.revision in known:
            raise ApiError(409, f"Revision named '{service.template.revision}' with different configuration "
                                "already exists.")

    def _apply(self, parent: str, record: ServiceRecord, service: run_v2.Service, *,
               template_changed: bool) -> operations_pb2.Operation:
        service.generation += 1
        service.update_time = _now()
        service.etag = secrets.token_hex(8)
        service.reconciling = True
        self._conditions(service, Condition.State.CONDITION_RECONCILING, "Deploying revision.")
        revision = None
        if template_changed:
            short = service.template.revision or f"{service.name.rsplit('/', 1)[1]}-{service.generation:05d}-" \
                                                 f"{secrets.token_hex(2)[:3]}"
            revision = run_v2.Revision(name=f"{service.name}/revisions/{short}", service=service.name,
                                       generation=1, create_time=_now(), labels=service.template.labels,
                                       containers=service.template.containers,
                                       scaling=service.template.scaling,
                                       service_account=service.template.service_account)
            record.revisions[short] = RevisionRecord(proto=revision)
            service.latest_created_revision = revision.name
        op = self.operation(parent, service)
        self.spawn(self._reconcile(record, op, revision))
        return op

    @staticmethod
    def _conditions(service: run_v2.Service, state: Condition.State, message: str) -> None:
        ready = Condition(type_="Ready", state=state, message=message, last_transition_time=_now())
        service.terminal_condition = ready
        service.conditions = [Condition(type_="RoutesReady", state=state, message=message),
                              Condition(type_="ConfigurationsReady", state=state, message=message)]

    async def _reconcile(self, record: ServiceRecord, op: operations_pb2.Operation,
                         revision: run_v2.Revision | None) -> None:
        service = record.proto
        async with record.lock:
            error = ""
            if revision is not None:
                error = await self._start_revision(record, revision)
            if not error:
                if revision is not None:
                    service.latest_ready_revision = revision.name
                error = await self._route(record)
            if not error:
                self._conditions(service, Condition.State.CONDITION_SUCCEEDED, "")
            else:
                self._conditions(service, Condition.State.CONDITION_FAILED, error)
            service.reconciling = False
            service.observed_generation = service.generation
            self._pack(op, service, done=True, error=error)

    async def _start_revision(self, record: ServiceRecord, revision: run_v2.Revision) -> str:
        short = revision.name.rsplit("/", 1)[1]
        specs = [json.loads(run_v2.Container.to_json(c)) for c in revision.containers]
        rewrite = {f"http://127.0.0.1:{r.router.port}": f"http://{self.runner.gateway}:{r.router.port}"
                   for r in self.services.values()}
        try:
            made = await asyncio.to_thread(self.runner.start, short, specs, rewrite)
        except RunnerError as exc:
            return str(exc)
        record.revisions[short].containers = made
        error = await self._probe(made)
        if error:
            await asyncio.to_thread(self.runner.remove, made.ids)
            revision.conditions = [Condition(type_="Ready", state=Condition.State.CONDITION_FAILED, message=error)]
            record.revisions[short].containers = None
            return f"Revision '{short}' is not ready and cannot serve traffic. {error}"
        record.revisions[short].ready = True
        revision.conditions = [Condition(type_="Ready", state=Condition.State.CONDITION_SUCCEEDED)]
        return ""

    async def _probe(self, made: RevisionContainers) -> str:
        """'' once the sidecars' startup probes pass inside the namespace and the ingress port answers HTTP
        (an answer, not a connection: docker-proxy accepts before the container listens), else why not."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        checks = [(cid, port, path) for cid, port, path in made.probes] + [("", made.ingress_port, "")]
        async with ClientSession(timeout=ClientTimeout(total=2)) as session:
            for cid, port, path in checks:
                while True:
                    exited = await asyncio.to_thread(self.runner.exited, made.ids)
                    if exited:
                        return exited
                    if cid:
                        if await asyncio.to_thread(self.runner.answers_inside, cid, port, path):
                            break
                    else:
                        try:
                            async with session.get(f"http://127.0.0.1:{port}/"):
                                break
                        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                            pass
                    if time.monotonic() > deadline:
                        return f"The container did not listen on port {port} within {READY_TIMEOUT_S:g} s."
                    await asyncio.sleep(0.2)  # probe interval
        return ""

    def _resolve(self, record: ServiceRecord) -> dict[str, int]:
        """Percent by revision short name; records the traffic statuses."""
        service = record.proto
        targets = list(service.traffic) or [run_v2.TrafficTarget(type_=LATEST, percent=100)]
        split: dict[str, int] = {}
        for target in targets:
            name = (service.latest_ready_revision.rsplit("/", 1)[1] if target.type_ == LATEST
                    else target.revision)
            if name:
                split[name] = split.get(name, 0) + target.percent
        service.traffic_statuses = [run_v2.TrafficTargetStatus(type_=t.type_, revision=t.revision, percent=t.percent,
                                                               tag=t.tag) for t in targets]
        return split

    async def _route(self, record: ServiceRecord) -> str:
        split = self._resolve(record)
        for short in split:  # a revision scaled to zero starts again before it takes traffic
            rev = record.revisions[short]
            if not rev.ready:
                error = await self._start_revision(record, rev.proto)
                if error:
                    return error
        record.router.set_split([(name, record.revisions[name].containers.ingress_port, percent)
                                 for name, percent in split.items()])
        keep = set(split) | {record.proto.latest_created_revision.rsplit("/", 1)[1]}
        for short, rev in record.revisions.items():  # the rest scale to zero once drained
            if short not in keep and rev.containers is not None and rev.containers.ids:
                await record.router.drained(short)
                await asyncio.to_thread(self.runner.remove, rev.containers.ids)
                rev.containers = None
                rev.ready = False
        return ""

    async def delete(self, parent: str, name: str) -> operations_pb2.Operation:
        record = self.get(name)
        service = record.proto
        service.delete_time = _now()
        op = self.operation(parent, service)
        del self.services[name]

        async def remove() -> None:
            async with record.lock:
                await record.router.stop()
                for rev in record.revisions.values():
                    if rev.containers is not None:
                        await asyncio.to_thread(self.runner.remove, rev.containers.ids)
                self._pack(op, service, done=True)

        self.spawn(remove())
        return op

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for record in self.services.values():
            await record.router.stop()
        await asyncio.to_thread(self.runner.close)
