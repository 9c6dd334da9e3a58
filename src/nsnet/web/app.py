"""The web app: the page, its assets, and a JSON API over nsnet's own functions.

Every request carries the launch's token: in the URL the command prints
(``?token=``; the page then keeps it in a cookie for its assets and event
streams), and in the ``X-Nsnet-Token`` header for every ``POST`` (a cookie
alone never changes anything, whatever page sends it). The API reads the
kernel through :mod:`nsnet.graph`, :mod:`nsnet.inspect`, :mod:`nsnet.watch`,
:mod:`nsnet.capture`, :mod:`nsnet.explain` and :mod:`nsnet.reach`, in worker
threads; changes (``up``, ``down``, applying a fix) answer only when the
server was started with ``--allow-changes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from nsnet import __version__
from nsnet.engine import directory, lifecycle
from nsnet.errors import NsnetError
from nsnet.web import captures, reports
from nsnet.web.events import Hubs

COOKIE = "nsnet_token"
HEARTBEAT = 15.0


class Settings:
    """What one launch of ``nsnet web`` serves."""

    def __init__(self, token: str, lab: str | None = None, allow_changes: bool = False) -> None:
        self.token = token
        self.lab = lab
        self.allow_changes = allow_changes
        self.hubs = Hubs()
        self.captures: dict[int, captures.CaptureSession] = {}

    def close(self) -> None:
        for session in self.captures.values():
            session.remove()
        self.captures.clear()
        self.hubs.close()


def static_dir() -> Path:
    """The page's assets, shipped in the package."""
    return Path(str(resources.files("nsnet.web") / "static"))


class TokenMiddleware:
    """Refuse any request without the launch's token (pure ASGI: streams are not buffered)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = self.settings.token
        given = request.query_params.get("token")
        header = request.headers.get("x-nsnet-token")
        cookie = request.cookies.get(COOKIE)
        if request.method == "GET":
            ok = any(v is not None and hmac.compare_digest(v, token) for v in (given, header, cookie))
        else:
            ok = header is not None and hmac.compare_digest(header, token)
        if not ok:
            message = (
                "this nsnet web server needs its token: open the URL `nsnet web` printed (with ?token=...)"
                if request.method == "GET"
                else "a change needs the X-Nsnet-Token header"
            )
            response: Response = JSONResponse({"error": message}, status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


Handler = Callable[[Request], Awaitable[Response]]


def guarded(func: Handler) -> Handler:
    """nsnet's errors (a lab that is not up, an unknown node, a bad filter) become a 400 with their message."""

    async def wrapper(request: Request) -> Response:
        try:
            return await func(request)
        except (NsnetError, ValueError) as exc:
            return _error(str(exc))

    return wrapper


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise ValueError(f"the request's body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the request's body must be a JSON object")
    return data


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string")
    return value


def create_app(settings: Settings) -> Starlette:
    """The ASGI application of one launch."""

    async def index(request: Request) -> Response:
        response = FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-store"})
        response.set_cookie(COOKIE, settings.token, httponly=True, samesite="strict")
        return response

    async def config(request: Request) -> Response:
        return JSONResponse({"version": __version__, "lab": settings.lab, "allow_changes": settings.allow_changes})

    @guarded
    async def labs(request: Request) -> Response:
        found = await run_in_threadpool(directory.labs)
        return JSONResponse(
            [
                {"name": i.name, "status": i.status, "source": i.source, "nodes": sorted(i.nodes), "host": i.host}
                for i in found
                if not i.missing or len(i.missing) < len(i.nodes) + 1
            ]
        )

    @guarded
    async def topology(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(reports.topology, request.path_params["lab"]))

    async def events(request: Request) -> Response:
        hub = settings.hubs.get(request.path_params["lab"])
        queue = hub.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), HEARTBEAT)
                    except TimeoutError:
                        yield ": heartbeat\n\n"
                        continue
                    yield f"data: {json.dumps(message)}\n\n"
                    if message["type"] in ("gone", "error"):
                        return
            finally:
                hub.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @guarded
    async def inspect_node(request: Request) -> Response:
        lab, node = request.path_params["lab"], request.path_params["node"]
        return JSONResponse(await run_in_threadpool(reports.inspect_node, lab, node))

    @guarded
    async def explain(request: Request) -> Response:
        data = await _body(request)
        lab = request.path_params["lab"]
        size = data.get("size")
        if size is not None and (not isinstance(size, int) or not 28 <= size <= 65535):
            raise ValueError("'size' must be a whole number of bytes from 28 to 65535")
        result = await run_in_threadpool(
            reports.explain,
            lab,
            _text(data, "src"),
            _text(data, "dst"),
            _text(data, "proto", "icmp"),
            size,
            bool(data.get("probe")),
        )
        return JSONResponse(result)

    @guarded
    async def reach(request: Request) -> Response:
        data = await _body(request)
        result = await run_in_threadpool(reports.reach, request.path_params["lab"], _text(data, "proto", "icmp"))
        return JSONResponse(result)

    @guarded
    async def capture_start(request: Request) -> Response:
        data = await _body(request)
        points = data.get("points") or []
        if not isinstance(points, list) or not all(isinstance(p, str) for p in points):
            raise ValueError("'points' must be a list of NODE:IFACE strings")
        expression = data.get("filter") or ""
        if not isinstance(expression, str):
            raise ValueError("'filter' must be a tcpdump filter, as a string")
        session = await run_in_threadpool(captures.start, request.path_params["lab"], points, expression.strip())
        settings.captures[session.ident] = session
        return JSONResponse(session.describe())

    def _session(request: Request) -> captures.CaptureSession:
        session = settings.captures.get(int(request.path_params["ident"]))
        if session is None:
            raise NsnetError(f"no capture {request.path_params['ident']} (the server was restarted?)")
        return session

    @guarded
    async def capture_poll(request: Request) -> Response:
        session = _session(request)
        try:
            line = int(request.query_params.get("line", "0"))
            step = int(request.query_params.get("step", "0"))
            limit = int(request.query_params.get("limit", "1000"))
        except ValueError:
            raise ValueError("'line', 'step' and 'limit' are numbers") from None
        return JSONResponse(session.since(line, step, min(max(limit, 1), captures.KEEP)))

    @guarded
    async def capture_stop(request: Request) -> Response:
        session = _session(request)
        session.stop()
        while session.running:
            await asyncio.sleep(0.05)
        return JSONResponse(session.since(session.total, session.total_steps))

    @guarded
    async def capture_file(request: Request) -> Response:
        session = _session(request)
        if session.running:
            raise NsnetError("stop the capture first: its file is complete once it stops")
        name = f"{session.lab}-{session.ident}.pcapng"
        return FileResponse(session.path, media_type="application/x-pcapng", filename=name)

    def _changes() -> None:
        if not settings.allow_changes:
            raise NsnetError("this server is read-only: start it with `nsnet web --allow-changes` to change labs")

    @guarded
    async def down(request: Request) -> Response:
        _changes()
        lab = request.path_params["lab"]
        plan = await run_in_threadpool(lifecycle.down, lab)
        return JSONResponse({"lab": lab, "done": plan.lines()})

    @guarded
    async def up(request: Request) -> Response:
        _changes()
        data = await _body(request)
        path = _text(data, "file")
        name = data.get("name") or None
        if name is not None and not isinstance(name, str):
            raise ValueError("'name' must be a lab name")
        plan = await run_in_threadpool(reports.up, path, name)
        return JSONResponse(plan)

    @guarded
    async def fix(request: Request) -> Response:
        _changes()
        data = await _body(request)
        lab = request.path_params["lab"]
        result = await run_in_threadpool(
            reports.apply_fix, lab, _text(data, "src"), _text(data, "dst"), _text(data, "proto", "icmp")
        )
        return JSONResponse(result)

    routes = [
        Route("/", index),
        Route("/api/config", config),
        Route("/api/labs", labs),
        Route("/api/up", up, methods=["POST"]),
        Route("/api/labs/{lab}/topology", topology),
        Route("/api/labs/{lab}/events", events),
        Route("/api/labs/{lab}/inspect/{node}", inspect_node),
        Route("/api/labs/{lab}/explain", explain, methods=["POST"]),
        Route("/api/labs/{lab}/reach", reach, methods=["POST"]),
        Route("/api/labs/{lab}/captures", capture_start, methods=["POST"]),
        Route("/api/labs/{lab}/down", down, methods=["POST"]),
        Route("/api/labs/{lab}/fix", fix, methods=["POST"]),
        Route("/api/captures/{ident:int}", capture_poll),
        Route("/api/captures/{ident:int}/stop", capture_stop, methods=["POST"]),
        Route("/api/captures/{ident:int}/pcapng", capture_file),
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.lab:
            settings.hubs.get(settings.lab)  # the first page finds the lab watched already
        try:
            yield
        finally:
            settings.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(TokenMiddleware, settings=settings)
    return app
