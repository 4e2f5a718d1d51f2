"""The HTTP face of a :class:`~streamdeq.serve.service.Service`: a JSON API, server-sent events,
Prometheus metrics and the operator's page, as one starlette app.

The app holds no state of its own beyond open event streams and metrics histograms: every answer
comes from the service, so the page, the API and ``/metrics`` never disagree. Service calls run in
a worker thread (a call may wait for the engine's lock while a batch is stepped), never on the
event loop. Errors are one line of JSON (``{"error": ...}``) with a 4xx status, never a
traceback page. Every mistake in a request itself (not JSON, not an object, an unknown field, a
wrong type, a bad value, a refused source) is a 400, whether it comes in a new stream or in a
settings change: a client handles one status for "fix your request".
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles

from ..data.sinks import json_safe
from ..errors import SettingsError, StreamDEQError
from .errors import ServiceError, SubscriptionClosed, json_words, quoted
from .metrics import ServeMetrics, health_status
from .security import SecurityMiddleware, SourcePolicy

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Largest request body accepted: settings and a source URL fit many times over.
MAX_BODY_BYTES = 64 * 1024
#: Open ``/api/events`` streams at most; each holds a subscription and, while it waits, a thread.
MAX_EVENT_CLIENTS = 32
#: Longest error line an API response carries (a message quoting a client's value stays short).
MAX_ERROR_CHARS = 300
#: Seconds between ``summary`` events.
SUMMARY_INTERVAL = 1.0
_ADD_FIELDS = {"source": str, "id": (str, type(None)), "settings": (dict, type(None)), "loop": bool}

T = TypeVar("T")


class _Subscription(Protocol):
    def get(self, timeout: float | None) -> list[dict]: ...

    def close(self) -> None: ...


class JSON(JSONResponse):
    """JSON that survives what a model produces: NaN/inf become null (a diverged residual must not
    turn into a 500), numpy scalars become numbers."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def dumps(content: Any) -> str:
    """Compact JSON of ``content`` with non-finite floats as null."""
    return json.dumps(json_safe(content), separators=(",", ":"), default=_fallback)


def _fallback(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        return json_safe(item())
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return json_safe(tolist())
    return str(value)


async def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(function, *args, **kwargs)


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; 413 / 400 with one line otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"request body over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "request body must be a JSON object")
    return data


def _check_add_request(data: Mapping[str, Any]) -> None:
    unknown = sorted(set(data) - set(_ADD_FIELDS))
    if unknown:
        allowed = ", ".join(sorted(_ADD_FIELDS))
        raise HTTPException(400, f"unknown field {quoted(unknown[0])} (allowed: {allowed})")
    if "source" not in data:
        raise HTTPException(400, "field 'source' is required")
    for name, kinds in _ADD_FIELDS.items():
        if name in data and not isinstance(data[name], kinds):
            raise HTTPException(400, f"field {name!r} has the wrong type")


def create_app(
    service: Any,
    *,
    token: str | None,
    allowed_hosts: list[str] | None,
    policy: SourcePolicy,
    loopback: bool,
    max_event_clients: int = MAX_EVENT_CLIENTS,
) -> Starlette:
    """The app serving ``service``.

    Args:
        service: a started or not yet started :class:`~streamdeq.serve.service.Service` (the app
            neither starts nor stops it: the command line owns its life).
        token: when set, writes, results, overlays and events need it
            (``Authorization: Bearer`` or ``?token=``).
        allowed_hosts: host names besides loopback ones the Host header may name (loopback bind).
        policy: what sources an ``add stream`` request may name.
        loopback: whether the server is bound to a loopback address (turns on the Host and
            Origin checks that stop DNS rebinding and cross-site requests).
        max_event_clients: open ``/api/events`` streams at most (503 beyond).
    """
    metrics = ServeMetrics(service)
    events = _EventStreams(service, max_event_clients)
    schemas = SchemaGenerator(
        {"openapi": "3.0.0", "info": {"title": "streamdeq serve", "version": "1"}}
    )

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})

    async def openapi(request: Request) -> Response:
        """The API described from the endpoints' docstrings.
        ---
        summary: OpenAPI description of this API
        responses:
          200: {description: the OpenAPI document}
        """
        return JSON(schemas.get_schema(routes=request.app.routes))

    async def healthz(request: Request) -> Response:
        """Liveness and readiness in one: 200 while serving with the model loaded.
        ---
        summary: Health
        responses:
          200: {description: "ok: {status, model_loaded, streams, live}"}
          503: {description: starting, stopping, or no model}
        """
        health = await _call(service.health)
        return JSON(health, status_code=health_status(health))

    async def prometheus(request: Request) -> Response:
        """Prometheus text exposition.
        ---
        summary: Prometheus metrics
        responses:
          200: {description: text format 0.0.4}
        """
        body = await _call(metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def list_streams(request: Request) -> Response:
        """Every stream with its state, settings and counters.
        ---
        summary: List streams
        responses:
          200: {description: a list of stream infos}
        """
        return JSON(await _call(service.streams))

    async def add_stream(request: Request) -> Response:
        """Start watching a source. Opening happens in the background: a source that cannot be
        opened shows state "failed" with its error.
        ---
        summary: Add a stream
        requestBody:
          content:
            application/json:
              schema:
                type: object
                required: [source]
                properties:
                  source: {type: string, description: "a file or folder under the media root, or a URL"}
                  id: {type: string}
                  settings: {type: object}
                  loop: {type: boolean}
        responses:
          201: {description: the new stream's info}
          400: {description: "not JSON, an unknown field, a wrong type, a bad setting or a refused source"}
          409: {description: id taken or too many streams}
        """
        data = await _json_object(request)
        _check_add_request(data)
        source = policy.check(data["source"])
        info = await _call(
            service.add_stream,
            source,
            stream_id=data.get("id"),
            settings=data.get("settings"),
            loop=data.get("loop", False),
        )
        return JSON(info, status_code=201, headers={"location": f"/api/streams/{info['id']}"})

    async def get_stream(request: Request) -> Response:
        """One stream's info.
        ---
        summary: Get a stream
        responses:
          200: {description: the stream's info}
          404: {description: unknown stream}
        """
        return JSON(await _call(service.stream, request.path_params["stream_id"]))

    async def remove_stream(request: Request) -> Response:
        """Stop watching a stream and forget it.
        ---
        summary: Remove a stream
        responses:
          204: {description: removed}
          404: {description: unknown stream}
        """
        await _call(service.remove_stream, request.path_params["stream_id"])
        return Response(status_code=204)

    async def get_settings(request: Request) -> Response:
        """A stream's settings.
        ---
        summary: Get settings
        responses:
          200: {description: "{mode, iters, tol, budget_ms, shot_policy, compare}"}
          404: {description: unknown stream}
        """
        return JSON(await _call(service.settings, request.path_params["stream_id"]))

    async def patch_settings(request: Request) -> Response:
        """Change some of a stream's settings; they apply from its next frame.
        ---
        summary: Change settings
        requestBody:
          content:
            application/json:
              schema: {type: object, description: "any subset of the settings"}
        responses:
          200: {description: the stream's settings after the change}
          400: {description: "not JSON, an unknown setting, a wrong type or a bad value"}
          404: {description: unknown stream}
        """
        changes = await _json_object(request)
        stream_id = request.path_params["stream_id"]
        return JSON(await _call(service.update_settings, stream_id, changes))

    async def get_result(request: Request) -> Response:
        """A stream's latest result.
        ---
        summary: Latest result
        responses:
          200: {description: "the result: iterations, residual, latency, task summary"}
          404: {description: unknown stream or no result yet}
        """
        stream_id = request.path_params["stream_id"]
        result = await _call(service.latest_result, stream_id)
        if result is None:
            raise HTTPException(404, f"stream {stream_id!r} has no result yet")
        return JSON(result)

    async def get_overlay(request: Request) -> Response:
        """A stream's latest frame with the model's output drawn on it.
        ---
        summary: Latest overlay
        parameters:
          - {name: lane, in: query, schema: {type: string, enum: [main, compare]}}
        responses:
          200: {description: a JPEG}
          400: {description: unknown lane}
          404: {description: unknown stream or no frame yet}
        """
        stream_id = request.path_params["stream_id"]
        lane = request.query_params.get("lane", "main")
        if lane not in ("main", "compare"):
            raise HTTPException(400, f"lane must be 'main' or 'compare', not {lane!r}")
        jpeg = await _call(service.latest_overlay, stream_id, lane)
        if jpeg is None:
            raise HTTPException(404, f"stream {stream_id!r} has no {lane} overlay yet")
        return Response(jpeg, media_type="image/jpeg", headers={"cache-control": "no-store"})

    async def summary(request: Request) -> Response:
        """Totals over all streams.
        ---
        summary: Summary
        responses:
          200: {description: "{streams, live, total_fps, latency_ms, tick_ms, batch_size}"}
        """
        return JSON(await _call(service.summary))

    async def event_stream(request: Request) -> Response:
        """Server-sent events: "result" with each new result (only the latest per stream when the
        client is slow), "summary" every second.
        ---
        summary: Live results
        responses:
          200: {description: text/event-stream}
          503: {description: too many event clients}
        """
        return await events.response()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await _call(metrics.start)
        try:
            yield
        finally:
            events.close_all()
            await _call(metrics.stop)

    routes = [
        Route("/", index, include_in_schema=False),
        Route("/openapi.json", openapi),
        Route("/healthz", healthz),
        Route("/metrics", prometheus),
        Route("/api/streams", _resource("Streams", get=list_streams, post=add_stream)),
        Route(
            "/api/streams/{stream_id}", _resource("Stream", get=get_stream, delete=remove_stream)
        ),
        Route(
            "/api/streams/{stream_id}/settings",
            _resource("Settings", get=get_settings, patch=patch_settings),
        ),
        Route("/api/streams/{stream_id}/result", get_result),
        Route("/api/streams/{stream_id}/overlay.jpg", get_overlay),
        Route("/api/summary", summary),
        Route("/api/events", event_stream),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = [
        Middleware(SecurityMiddleware, token=token, allowed_hosts=allowed_hosts, loopback=loopback)
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=_exception_handlers(),
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.metrics = metrics
    app.state.events = events
    return app


def _resource(name: str, **handlers: Callable[[Request], Any]) -> type[HTTPEndpoint]:
    """One endpoint class per path, its methods the handlers: a wrong method then gets a 405
    listing every allowed one, and OpenAPI documents each method from its own docstring."""
    return type(name, (HTTPEndpoint,), {m: staticmethod(h) for m, h in handlers.items()})


def close_event_streams(app: Starlette) -> None:
    """End every open ``/api/events`` stream now (a server shutting down waits for open
    responses; event streams would otherwise hold it up until their clients leave)."""
    app.state.events.close_all()


class _EventStreams:
    """The open ``/api/events`` responses of one app."""

    def __init__(self, service: Any, max_clients: int) -> None:
        self.service = service
        self.max_clients = max_clients
        self.open: set[_Subscription] = set()
        self.closed = False
        self._limiter: anyio.CapacityLimiter | None = None

    async def response(self) -> Response:
        if self.closed:
            raise HTTPException(503, "the server is shutting down")
        if len(self.open) >= self.max_clients:
            raise HTTPException(503, f"at most {self.max_clients} event clients; try again later")
        if self._limiter is None:  # its own threads: waiting clients never starve API calls
            self._limiter = anyio.CapacityLimiter(self.max_clients)
        subscription = await _call(self.service.subscribe)
        self.open.add(subscription)
        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(
            self._stream(subscription), media_type="text/event-stream", headers=headers
        )

    async def _stream(self, subscription: _Subscription) -> AsyncIterator[str]:
        assert self._limiter is not None
        try:
            yield "retry: 2000\n\n"
            next_summary = time.monotonic()
            while not self.closed:
                if time.monotonic() >= next_summary:
                    summary = await _call(self.service.summary)
                    yield f"event: summary\ndata: {dumps(summary)}\n\n"
                    next_summary = time.monotonic() + SUMMARY_INTERVAL
                wait = min(max(next_summary - time.monotonic(), 0.0), SUMMARY_INTERVAL)
                results = await anyio.to_thread.run_sync(
                    subscription.get, wait, limiter=self._limiter
                )
                for result in results:
                    yield f"event: result\ndata: {dumps(result)}\n\n"
        except SubscriptionClosed:
            return
        finally:
            self.open.discard(subscription)
            subscription.close()

    def close_all(self) -> None:
        self.closed = True
        for subscription in list(self.open):
            subscription.close()


def _exception_handlers() -> dict[Any, Callable[..., Any]]:
    async def service_error(request: Request, exc: Exception) -> Response:
        status = exc.status if isinstance(exc, ServiceError) else 400
        return JSON({"error": json_words(_one_line(exc))}, status_code=status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code < 400:
            return Response(status_code=exc.status_code, headers=exc.headers)
        return JSON(
            {"error": _one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s: %s", request.method, request.url.path, _one_line(exc))
        return JSON({"error": "internal error; see the server log"}, status_code=500)

    return {
        ServiceError: service_error,
        SettingsError: service_error,
        StreamDEQError: service_error,
        HTTPException: http_error,
        Exception: internal_error,
    }


def _one_line(message: object) -> str:
    text = str(message).strip() or type(message).__name__
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
