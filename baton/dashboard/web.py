"""The dashboard's web face (aiohttp): the page, its assets and one JSON route, all behind a token.

The token arrives the way Jupyter's does: in the URL the CLI prints (``/?token=...``). The page answers with a
cookie carrying it (HttpOnly, SameSite=Strict) and a redirect to ``/``, so the token leaves the address bar;
every later request (assets, ``/api/dashboard``) carries the cookie, or an ``Authorization: Bearer`` header for
scripts. Without it: 401 on every route, the page included; tokens are compared in constant time. Assets are
read once from the package (nothing is fetched from elsewhere: the Content-Security-Policy allows 'self' only).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from baton.errors import BatonError

__all__ = ["build_app", "cookie_name", "ASSETS", "API_PATH"]

log = logging.getLogger(__name__)
API_PATH = "/api/dashboard"
ASSETS = {"dashboard.js": "application/javascript", "dashboard.css": "text/css", "favicon.svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
REFUSED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Baton dashboard: token \
needed</title></head><body><h1>401: this dashboard needs its token</h1><p>Open the URL that <code>baton dashboard \
--serve</code> printed (it ends in <code>?token=...</code>); running it again prints the same URL.</p></body></html>
"""
Source = Callable[[], Awaitable[dict[str, Any]]]


def cookie_name(port: int) -> str:
    """One cookie per port: a browser sends 127.0.0.1's cookies to every port, so two projects' dashboards would
    otherwise overwrite each other's token."""
    return f"baton-dashboard-{port}"


def _read_assets() -> dict[str, bytes]:
    folder = resources.files("baton.dashboard").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in (*ASSETS, "index.html")}


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def build_app(source: Source, token: str, port: int) -> web.Application:
    """The dashboard app for ``token``; ``source`` returns the dashboard as JSON (see :class:`Collector`)."""
    assets = _read_assets()
    cookie = cookie_name(port)

    def presented(request: web.Request) -> str:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
        return request.cookies.get(cookie, "")

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) \
            -> web.StreamResponse:
        offered = request.query.get("token")
        if request.path == "/" and offered is not None:
            if not _same(offered, token):
                return _refused(request)
            response = web.Response(status=303, headers={"Location": "/"})  # the token leaves the address bar
            response.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
            response.headers.update(SECURITY_HEADERS)
            return response
        if not _same(presented(request), token):
            return _refused(request)
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def page(_: web.Request) -> web.Response:
        return web.Response(body=assets["index.html"], content_type="text/html", charset="utf-8")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=assets[name], content_type=ASSETS[name],
                            charset="utf-8" if ASSETS[name].startswith(("text/", "application/")) else None)

    async def api(_: web.Request) -> web.Response:
        try:
            return web.json_response(await source())
        except BatonError as exc:  # baton.yaml became invalid, say: the page shows why and keeps polling
            return web.json_response({"error": exc.message}, status=503)

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get(API_PATH, api)
    return app


def _refused(request: web.Request) -> web.Response:
    if request.path.startswith("/api/"):
        response = web.json_response({"error": "this dashboard needs its token: open the URL `baton dashboard "
                                               "--serve` printed, or send `Authorization: Bearer <token>`."},
                                     status=401)
    else:
        response = web.Response(text=REFUSED_PAGE, status=401, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    response.headers["WWW-Authenticate"] = 'Bearer realm="baton-dashboard"'
    return response
