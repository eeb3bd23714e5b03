"""The stand-in's HTTP face: Cloud Run Admin API v2 REST paths, proto3 JSON in and out, Google API errors."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2
from google.protobuf import json_format

from .faults import STATUS_NAMES, Fault, Faults
from .runner import LABEL, Runner
from .store import ApiError, Store

__all__ = ["STANDIN_LABEL", "build_app"]

log = logging.getLogger(__name__)
STANDIN_LABEL = LABEL
STORE = web.AppKey("store", Store)
FAULTS = web.AppKey("faults", Faults)
LOC = "/v2/projects/{project}/locations/{location}"
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _json(message) -> web.Response:
    text = message if isinstance(message, str) else json_format.MessageToJson(message)
    return web.Response(text=text, content_type="application/json")


def _error(code: int, message: str) -> web.Response:
    body = {"error": {"code": code, "message": message, "status": STATUS_NAMES.get(code, "UNKNOWN")}}
    return web.json_response(body, status=code)


def _location(request: web.Request) -> str:
    return f"projects/{request.match_info['project']}/locations/{request.match_info['location']}"


def _api(method: str) -> Callable[[Handler], Handler]:
    """Counts the call, applies an injected fault, maps ApiError to a Google error body."""
    def wrap(handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.Response:
            fault = request.app[FAULTS].take(method)
            if fault is not None:
                return _error(fault.code, fault.message)
            try:
                return await handler(request)
            except ApiError as exc:
                return _error(exc.code, exc.message)
            except (json_format.ParseError, ValueError) as exc:
                return _error(400, f"Invalid JSON payload received. {exc}")
        return run
    return wrap


async def _service_body(request: web.Request) -> run_v2.Service:
    return run_v2.Service.from_json(await request.text(), ignore_unknown_fields=False)


@_api("createService")
async def create_service(request: web.Request) -> web.Response:
    service_id = request.query.get("serviceId", "")
    if not service_id:
        raise ApiError(400, "serviceId is required.")
    op = await request.app[STORE].create(_location(request), service_id, await _service_body(request))
    return _json(op)


@_api("listServices")
async def list_services(request: web.Request) -> web.Response:
    prefix = _location(request) + "/services/"
    found = [r.proto for n, r in request.app[STORE].services.items() if n.startswith(prefix)]
    return _json(run_v2.ListServicesResponse.to_json(run_v2.ListServicesResponse(services=found)))


def _split(request: web.Request) -> tuple[str, str]:
    service, _, verb = request.match_info["service"].partition(":")
    return f"{_location(request)}/services/{service}", verb


async def service_get(request: web.Request) -> web.Response:
    name, verb = _split(request)
    return await (get_iam_policy if verb == "getIamPolicy" else get_service)(request)


@_api("getService")
async def get_service(request: web.Request) -> web.Response:
    return _json(run_v2.Service.to_json(request.app[STORE].get(_split(request)[0]).proto))


@_api("getIamPolicy")
async def get_iam_policy(request: web.Request) -> web.Response:
    return _json(request.app[STORE].get(_split(request)[0]).policy)


async def service_post(request: web.Request) -> web.Response:
    if _split(request)[1] != "setIamPolicy":
        return _error(404, f"Method not found: {request.path}")
    return await set_iam_policy(request)


@_api("setIamPolicy")
async def set_iam_policy(request: web.Request) -> web.Response:
    record = request.app[STORE].get(_split(request)[0])
    body = iam_policy_pb2.SetIamPolicyRequest()
    json_format.Parse(await request.text(), body, ignore_unknown_fields=False)
    if body.policy.etag and record.policy.etag and body.policy.etag != record.policy.etag:
        raise ApiError(409, "There were concurrent policy changes; read the policy again and retry.")
    record.policy.CopyFrom(body.policy)
    record.policy.etag = uuid.uuid4().bytes[:8]
    record.policy.version = 1
    return _json(record.policy)


@_api("updateService")
async def update_service(request: web.Request) -> web.Response:
    service = await _service_body(request)
    service.name = _split(request)[0]
    return _json(await request.app[STORE].update(_location(request), service))


@_api("deleteService")
async def delete_service(request: web.Request) -> web.Response:
    return _json(await request.app[STORE].delete(_location(request), _split(request)[0]))


@_api("listRevisions")
async def list_revisions(request: web.Request) -> web.Response:
    record = request.app[STORE].get(_split(request)[0])
    revisions = [r.proto for r in record.revisions.values()]
    return _json(run_v2.ListRevisionsResponse.to_json(run_v2.ListRevisionsResponse(revisions=revisions)))


@_api("getRevision")
async def get_revision(request: web.Request) -> web.Response:
    record = request.app[STORE].get(_split(request)[0])
    revision = record.revisions.get(request.match_info["revision"])
    if revision is None:
        raise ApiError(404, f"Revision '{request.match_info['revision']}' was not found")
    return _json(run_v2.Revision.to_json(revision.proto))


@_api("getOperation")
async def get_operation(request: web.Request) -> web.Response:
    name = f"{_location(request)}/operations/{request.match_info['operation']}"
    op = request.app[STORE].operations.get(name)
    if op is None:
        raise ApiError(404, f"Operation '{name}' was not found")
    return _json(op)


async def add_fault(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[FAULTS].add(Fault(code=int(body["code"]), message=str(body["message"]),
                                  method=str(body.get("method", "*")), times=int(body.get("times", 1))))
    return web.json_response({"pending": len(request.app[FAULTS].pending)})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    return web.json_response({"pending": 0})


async def calls(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS].calls)


def build_app(instance: str) -> web.Application:
    app = web.Application()
    app[FAULTS] = Faults()

    async def lifecycle(app: web.Application):
        import asyncio

        runner = await asyncio.to_thread(Runner, instance)
        app[STORE] = Store(runner)
        yield
        await app[STORE].close()

    app.cleanup_ctx.append(lifecycle)
    r = app.router
    r.add_post(f"{LOC}/services", create_service)
    r.add_get(f"{LOC}/services", list_services)
    r.add_get(f"{LOC}/services/{{service}}", service_get)
    r.add_post(f"{LOC}/services/{{service}}", service_post)
    r.add_patch(f"{LOC}/services/{{service}}", update_service)
    r.add_delete(f"{LOC}/services/{{service}}", delete_service)
    r.add_get(f"{LOC}/services/{{service}}/revisions", list_revisions)
    r.add_get(f"{LOC}/services/{{service}}/revisions/{{revision}}", get_revision)
    r.add_get(f"{LOC}/operations/{{operation}}", get_operation)
    r.add_post("/standin/faults", add_fault)
    r.add_delete("/standin/faults", clear_faults)
    r.add_get("/standin/calls", calls)
    return app
