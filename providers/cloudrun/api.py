"""The Cloud Run Admin API v2 as Baton uses it: the real ``google-cloud-run`` client on its REST transport,
every call (operation polls included) admitted by the provider's :class:`~providers.cloudrun.gate.ApiGate`,
Google's exceptions translated here once into one-sentence :class:`BatonError`\\ s.

The client's own default retries are switched off (``retry=None``) so that retries happen in one place."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from baton.errors import BatonError
from providers.cloudrun.gate import ApiGate

__all__ = ["CloudRunApi", "CloudRunError"]

T = TypeVar("T")
RETRYABLE_CODES = (429, 503)


class CloudRunError(BatonError):
    """Cloud Run refused or failed a call; the message carries Google's."""


def _retryable(exc: BaseException) -> bool:
    from google.api_core import exceptions

    return isinstance(exc, (exceptions.TooManyRequests, exceptions.ServiceUnavailable))


class CloudRunApi:
    def __init__(self, project: str, region: str, *, endpoint: str = "", credentials: Any = None,
                 gate: ApiGate | None = None, poll_s: float = 1.0, timeout_s: float = 600.0) -> None:
        from google.api_core.client_options import ClientOptions
        from google.cloud import run_v2

        if not project or not region:
            raise BatonError(f"Cloud Run needs a project and a region, got project={project!r} region={region!r}; "
                             "pass --project and --region or set deploy.project and deploy.region.")
        options = ClientOptions(api_endpoint=endpoint) if endpoint else None
        self.project, self.region = project, region
        self.parent = f"projects/{project}/locations/{region}"
        self.gate = gate or ApiGate()
        self.poll_s, self.timeout_s = poll_s, timeout_s
        self.services = run_v2.ServicesClient(transport="rest", client_options=options, credentials=credentials)
        self.revisions = run_v2.RevisionsClient(transport="rest", client_options=options, credentials=credentials)

    def name(self, service_id: str) -> str:
        return f"{self.parent}/services/{service_id}"

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from google.api_core import exceptions

        try:
            return self.gate.call(what, fn, retryable=_retryable)
        except exceptions.GoogleAPICallError as exc:
            status = f" ({exc.code} {exc.reason})" if exc.reason else f" ({exc.code})"
            raise CloudRunError(f"Cloud Run refused to {what}: {exc.message.rstrip('.')}{status}.") from exc

    def _wait(self, what: str, op: Any) -> Any:
        """The operation's result once done; each poll passes the gate."""
        from google.api_core import exceptions

        deadline = time.monotonic() + self.timeout_s
        while not self._call(f"poll the operation to {what}", op.done):
            if time.monotonic() > deadline:
                raise CloudRunError(f"Cloud Run did not finish to {what} within {self.timeout_s:g} s; see the "
                                    f"operation {op.operation.name}.")
            threading.Event().wait(self.poll_s)  # operation poll interval
        try:
            return op.result(timeout=0)
        except exceptions.GoogleAPICallError as exc:
            raise CloudRunError(f"Cloud Run failed to {what}: {exc.message.rstrip('.')}.") from exc

    # -- services -----------------------------------------------------------------------------------------

    def create(self, service_id: str, service: Any) -> Any:
        what = f"create service {service_id}"
        op = self._call(what, lambda: self.services.create_service(parent=self.parent, service=service,
                                                                   service_id=service_id, retry=None))
        return self._wait(what, op)

    def update(self, service: Any) -> Any:
        what = f"update service {service.name.rsplit('/', 1)[-1]}"
        op = self._call(what, lambda: self.services.update_service(service=service, retry=None))
        return self._wait(what, op)

    def get(self, service_id: str) -> Any | None:
        from google.api_core import exceptions

        try:
            return self._call(f"get service {service_id}",
                              lambda: self.services.get_service(name=self.name(service_id), retry=None))
        except CloudRunError as exc:
            if isinstance(exc.__cause__, exceptions.NotFound):
                return None
            raise

    def list(self, labels: Mapping[str, str]) -> list[Any]:
        """The region's services carrying every one of ``labels``."""
        found = self._call("list services", lambda: list(self.services.list_services(parent=self.parent,
                                                                                      retry=None)))
        return [s for s in found if all(s.labels.get(k) == v for k, v in labels.items())]

    def delete(self, service_id: str) -> None:
        what = f"delete service {service_id}"
        op = self._call(what, lambda: self.services.delete_service(name=self.name(service_id), retry=None))
        self._wait(what, op)

    def revisions_of(self, service_id: str) -> list[Any]:
        return self._call(f"list the revisions of {service_id}", lambda: list(
            self.revisions.list_revisions(parent=self.name(service_id), retry=None)))

    # -- IAM ----------------------------------------------------------------------------------------------

    def policy(self, service_id: str) -> Any:
        return self._call(f"read the IAM policy of {service_id}", lambda: self.services.get_iam_policy(
            request={"resource": self.name(service_id)}, retry=None))

    def grant_invokers(self, service_id: str, members: list[str]) -> Any:
        """Make ``members`` exactly the invokers of the service (other roles' bindings kept)."""
        from google.iam.v1 import iam_policy_pb2, policy_pb2

        current = self.policy(service_id)
        bindings = [b for b in current.bindings if b.role != "roles/run.invoker"]
        bindings.append(policy_pb2.Binding(role="roles/run.invoker", members=sorted(members)))
        policy = policy_pb2.Policy(bindings=bindings, etag=current.etag)
        request = iam_policy_pb2.SetIamPolicyRequest(resource=self.name(service_id), policy=policy)
        return self._call(f"set the IAM policy of {service_id}",
                          lambda: self.services.set_iam_policy(request=request, retry=None))
