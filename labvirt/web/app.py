"""The dashboard's web app (Starlette): one server-rendered page, live updates over Server-Sent Events.

Routes
  GET  /             the page, rendered from the dashboard's model (no libvirt call while serving)
  GET  /state        the model as JSON (read-only)
  GET  /events       Server-Sent Events: `state` events carrying the re-rendered rows and host cards
  POST /api/token    204 when the token in X-Labvirt-Token is right (the page checks it once)
  POST /api/action   {"action", "students": [...] | null for the whole class, "snapshot"}
  POST /api/console  {"student", "node"}: the last lines of the node's serial console

Security (see `labvirt class serve --help` and the README):
  - every POST needs the token in the X-Labvirt-Token header (compared in constant time); without a
    token configured (--read-only) every POST is refused;
  - cross-site requests are refused: a POST must be JSON (a cross-site form cannot send that without a
    CORS preflight, which is never granted), its Origin (when the browser sends one) must be this
    server's own, and Sec-Fetch-Site (when sent) must say same-origin. The token lives in the page's
    sessionStorage and travels only in that header; no cookie is ever set, so there is nothing a
    cross-site request could ride on;
  - the Host header must name the address the server listens on (no DNS rebinding);
  - responses carry a Content-Security-Policy that allows only this server's own script and style;
  - the model holds states, addresses and snapshot names only; console lines that may show a secret
    are hidden.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import time

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from labvirt.core.errors import LabvirtError, LockedError, UnsupportedError
from labvirt.core.units import format_size

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN_HEADER = "x-labvirt-token"
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Pure ASGI middleware (streams pass through untouched): adds SECURITY_HEADERS to every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in SECURITY_HEADERS
                                                                          if h[0] not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(os.path.join(HERE, "templates")),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = lambda n: "?" if n is None else format_size(n)
    env.filters["pct"] = lambda a, b: 0 if not b else min(100, round(100 * a / b))
    return env


def summary(view: dict) -> dict:
    states: dict[str, int] = {}
    for s in view["students"]:
        for n in s["nodes"]:
            states[n["state"]] = states.get(n["state"], 0) + 1
    busy = sum(1 for s in view["students"] if s["job"] and s["job"]["state"] in ("queued", "running"))
    return {"students": len(view["students"]), "nodes": sum(states.values()), "states": sorted(states.items()),
            "busy": busy, "drift": sum(1 for s in view["students"] if s["drift"])}


def create_app(dashboard, token: str | None, allowed_hosts: list[str]) -> Starlette:
    """`token`: None makes the server read-only. `allowed_hosts`: Host header names accepted ("*": any)."""
    env = _environment()
    row_t = env.get_template("row.html")
    hosts_t = env.get_template("hosts.html")
    summary_t = env.get_template("summary.html")
    page_t = env.get_template("page.html")
    cache: dict = {"version": None, "payload": None}

    def render_parts(view: dict) -> dict:
        multi = len(view["hosts"]) > 1
        ctx = {"view": view, "multi_host": multi}
        return {"version": view["version"], "now": time.time(), "error": view["error"],
                "order": [s["student"] for s in view["students"]],
                "rows": {s["student"]: row_t.render(ctx, s=s) for s in view["students"]},
                "hosts": hosts_t.render(ctx), "summary": summary_t.render(ctx, sum=summary(view)),
                "snapshots": view["snapshots"]}

    def payload() -> str:
        version = dashboard.version
        if cache["version"] != version:
            cache["payload"] = json.dumps(render_parts(dashboard.view()))
            cache["version"] = version
        return cache["payload"]

    async def page(request: Request) -> Response:
        view = dashboard.view()
        parts = render_parts(view)
        html = page_t.render(view=view, parts=parts, multi_host=len(view["hosts"]) > 1,
                             actions_possible=token is not None, verify=view["verify"])
        return HTMLResponse(html)

    async def state(request: Request) -> Response:
        return JSONResponse(dashboard.view())

    async def events(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def listener():
            loop.call_soon_threadsafe(changed.set)

        dashboard.subscribe(listener)

        async def stream():
            try:
                sent = None
                yield "retry: 2000\n\n"
                while not dashboard.closed:
                    if dashboard.version != sent:
                        sent = dashboard.version
                        yield f"event: state\ndata: {payload()}\n\n"
                    try:
                        await asyncio.wait_for(changed.wait(), 15)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                    changed.clear()
            finally:
                dashboard.unsubscribe(listener)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})

    def guard(request: Request) -> Response | None:
        """None when a changing request may go on; else the refusal."""
        if token is None:
            return _refuse(403, "this dashboard is read-only (started with --read-only)")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            return _refuse(403, f"cross-site request refused (Origin {origin})")
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return _refuse(403, "cross-site request refused (Sec-Fetch-Site)")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _refuse(415, "changing requests must be JSON")
        given = request.headers.get(TOKEN_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return _refuse(403, "actions need the token printed by 'labvirt class serve'; the page is read-only without it")
        return None

    async def guarded_body(request: Request) -> dict | Response:
        """The JSON body of a changing request, or the response that refuses it."""
        return guard(request) or await _json(request)

    async def check_token(request: Request) -> Response:
        return guard(request) or Response(status_code=204)

    async def action(request: Request) -> Response:
        body = await guarded_body(request)
        if isinstance(body, Response):
            return body
        students = body.get("students")
        if students is not None and not (isinstance(students, list) and all(isinstance(s, str) for s in students)):
            return _refuse(400, "students: a list of names, or null for the whole class")
        try:
            result = await asyncio.to_thread(dashboard.act, str(body.get("action", "")), students,
                                             body.get("snapshot") or body.get("stage"))
        except LockedError as e:
            return _refuse(409, str(e))
        except LabvirtError as e:
            return _refuse(400, str(e))
        return JSONResponse(result, status_code=202 if result["accepted"] else 409)

    async def console(request: Request) -> Response:
        body = await guarded_body(request)
        if isinstance(body, Response):
            return body
        try:
            text = await asyncio.to_thread(dashboard.console, str(body.get("student", "")), str(body.get("node", "")))
        except UnsupportedError as e:
            return JSONResponse({"error": str(e), "unsupported": True}, status_code=200)
        except LabvirtError as e:
            return _refuse(400, str(e))
        return JSONResponse({"text": text})

    routes = [
        Route("/", page),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/state", state),
        Route("/events", events),
        Route("/api/token", check_token, methods=["POST"]),
        Route("/api/action", action, methods=["POST"]),
        Route("/api/console", console, methods=["POST"]),
        Mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders), Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)]
    return Starlette(routes=routes, middleware=middleware)


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request):
    try:
        body = await request.json()
    except ValueError:
        return _refuse(400, "the body is not JSON")
    if not isinstance(body, dict):
        return _refuse(400, "the body must be a JSON object")
    return body
