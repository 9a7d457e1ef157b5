"""The FastAPI application: REST for cameras and events, a WebSocket for live alerts, a dashboard.

:func:`create_app` builds the services (store, broadcaster, metrics, sink, camera service) and wires
them with the camera controller — by default the compute pipeline
(``StreamPipeline(build_stages(config, sink=..., metrics=...))``), or with ``pipeline.processes`` > 1 a
:class:`~actwatch.service.shards.ShardedController` over compute processes (then this process loads no
model: cameras and uploads run in those). Start-up has the camera service start
the configured enabled cameras, then starts the controller; shutdown stops it.

Security: every route needs the bearer token except ``/healthz``, ``/readyz``, the dashboard page
(``/`` and ``/static/*``: no data in them; the page asks for the token) and the API docs (``/docs``,
``/openapi.json``: the schema is not secret; Swagger UI is served from the package, no CDN:
:mod:`actwatch.service.api_docs`). CORS is off unless ``server.cors_origins`` is set; bodies over
``server.max_request_body_bytes`` get 413, except video uploads (``POST /predictions``), which may be
up to ``predictions.max_upload_mb``.

Example:
    >>> import tempfile, pathlib
    >>> from actwatch.config import AppConfig
    >>> from actwatch.service.controller import IdleController
    >>> cfg = AppConfig(data_dir=pathlib.Path(tempfile.mkdtemp()), server={"token": "x" * 32})
    >>> app = create_app(cfg, IdleController())
    >>> app.state.services.store.count()
    0
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import actwatch
from actwatch.config import AppConfig, mask_url
from actwatch.service.api_docs import router as api_docs_router
from actwatch.service.auth import bearer_from_header, resolve_token, token_matches
from actwatch.service.broadcast import Broadcaster
from actwatch.service.cameras import CameraService
from actwatch.service.clips import ClipRecorder, ClipStore
from actwatch.service.controller import CameraController
from actwatch.service.data_dir import prepare_data_dir
from actwatch.service.deps import SIGNED_MEDIA_SCOPE_KEY, ServiceState
from actwatch.service.live_frames import LiveFrames
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.prediction_schemas import ModelInfo
from actwatch.service.predictions import JobRunner, PredictionService, upload_too_large_message
from actwatch.service.routers import cameras, events, health, live, predictions, system, ws
from actwatch.service.signed_urls import MediaSigner
from actwatch.service.sink import EventSink
from actwatch.service.store import EventStore
from actwatch.service.throttle import AuthThrottle, ConnectionSlots, client_address

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# The dashboard loads only its own files; 'self' covers same-origin ws:// in current browsers.
_DASHBOARD_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


# Served without the token. Everything else needs it, also routes added later without the dependency.
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
PUBLIC_PREFIXES = ("/static/",)


async def _send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole JSON response sent from a middleware (before any route runs)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _too_many_attempts(send: Send, retry_after: float) -> None:
    seconds = max(1, math.ceil(retry_after))
    body = json.dumps({"detail": f"too many failed authentication attempts; retry in {seconds} s"}).encode()
    await _send_json(send, 429, body, [(b"retry-after", str(seconds).encode())])


class BearerAuthMiddleware:
    """401 for HTTP requests without the token, *before* any body is read or validated; 429 for a client
    that has used up its failed attempts (:class:`~actwatch.service.throttle.AuthThrottle`). A GET of a
    media path with a valid signature (:class:`~actwatch.service.signed_urls.MediaSigner`: ``<img>`` and
    ``<video>`` tags cannot send the token) passes without it.

    The routers also depend on :func:`~actwatch.service.deps.require_token` (it documents the scheme in
    OpenAPI); this middleware makes the rule hold for every route, present and future. WebSockets
    authenticate in their handler, which must close with code 1008 rather than answer 401.
    """

    def __init__(self, app: ASGIApp, token: SecretStr, throttle: AuthThrottle, signer: MediaSigner) -> None:
        self.app = app
        self.token = token
        self.throttle = throttle
        self.signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        if (wait := self.throttle.retry_after(client)) is not None:
            await _too_many_attempts(send, wait)
            return
        header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"), None)
        given = bearer_from_header(header)
        if token_matches(self.token.get_secret_value(), given):
            await self.app(scope, receive, send)
            return
        if self._signed(scope):
            await self.app({**scope, SIGNED_MEDIA_SCOPE_KEY: True}, receive, send)
            return
        self.throttle.failed(client)
        body = b'{"detail":"missing or invalid bearer token"}' if given else b'{"detail":"bearer token required"}'
        await _send_json(send, 401, body, [(b"www-authenticate", b"Bearer")])

    def _signed(self, scope: Scope) -> bool:
        """Whether this is a GET (or HEAD) of a media path carrying a valid, unexpired signature."""
        if scope.get("method") not in ("GET", "HEAD") or b"signature=" not in scope.get("query_string", b""):
            return False
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        return self.signer.verify(scope.get("path", ""), query)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so FastAPI's body parsing lets it through as 413."""

    def __init__(self) -> None:
        super().__init__(413, detail="request body too large")


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """A larger body limit for one method and path (video uploads), and the 413 text that says it."""

    method: str
    path: str
    max_body: int
    detail: str


# multipart framing around an uploaded file (boundaries, part headers); the file itself is checked exactly
_MULTIPART_OVERHEAD = 64 * 1024


class LimitsMiddleware:
    """Refuses request bodies over ``max_body`` bytes (or a route's own :class:`BodyLimit`) with 413 and
    adds security headers to responses."""

    def __init__(self, app: ASGIApp, max_body: int, larger: tuple[BodyLimit, ...] = ()) -> None:
        self.app = app
        self.max_body = max_body
        self.larger = larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_body, detail = self.max_body, "request body too large"
        for limit in self.larger:
            if scope.get("method") == limit.method and scope.get("path") == limit.path:
                max_body, detail = limit.max_body, limit.detail
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > max_body:
                await self._reject(send, detail)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:  # chunked bodies carry no Content-Length
                    raise _BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await self._reject(send, detail)

    async def _reject(self, send: Send, detail: str) -> None:
        await _send_json(send, 413, json.dumps({"detail": detail}).encode())


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 without echoing the input (FastAPI's default does: camera URLs carry passwords)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "type": e.get("type"),
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": _UPLOAD_FIELD if _no_upload_file(e) else mask_url(str(e.get("msg", ""))),
        }
        for e in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


_UPLOAD_FIELD = "send the video as a file part named 'file' of a multipart form, e.g. curl -F file=@clip.mp4"


def _no_upload_file(error: Any) -> bool:
    """An upload without its file part (missing, or a text field: "Expected UploadFile, received: <class
    'str'>" is all FastAPI says then)."""
    if tuple(error.get("loc", ())) != ("body", "file"):
        return False
    return error.get("type") == "missing" or "Expected UploadFile" in str(error.get("msg", ""))


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer, except that 405's ``Allow`` lists every method the schema documents for the path
    (Starlette names only those of the first route that matched it, e.g. just GET for ``/cameras``)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
        allowed = sorted(
            {
                method.upper()
                for template, operations in paths.items()
                if compile_path(template)[0].match(request.url.path)
                for method in operations
            }
        )
        exc = StarletteHTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": ", ".join(allowed)})
    return await http_exception_handler(request, exc)


def _default_controller(config: AppConfig, sink: EventSink, metrics: ServiceMetrics) -> CameraController:
    if config.pipeline.processes > 1:
        # The service's process loads no model: the compute processes run the cameras and the uploads.
        from actwatch.service.shards import ShardedController

        sharded = ShardedController(config, sink, metrics)
        metrics.watch_pipeline(sharded.stage_counters)
        metrics.add_source(sharded.metric_families)
        return sharded
    # heavy (torch, onnxruntime): imported only when serving
    from actwatch.service.pipeline import StreamPipeline
    from actwatch.service.stages import build_stages

    pipeline = StreamPipeline(build_stages(config, sink=sink, metrics=metrics))
    metrics.watch_pipeline(pipeline.stage_counters)
    return pipeline


def _upload_parts(
    config: AppConfig, controller: CameraController, metrics: ServiceMetrics
) -> tuple[JobRunner | None, ModelInfo | None]:
    """The upload jobs' runner and the model's description: a sharded controller runs the jobs in a compute
    process (``upload_parts``); a :class:`~actwatch.service.pipeline.StreamPipeline` through its own
    stages; ``(None, None)`` for any other controller (a test's fake): uploads then answer 503."""
    upload_parts = getattr(controller, "upload_parts", None)
    if upload_parts is not None:
        parts: tuple[JobRunner, ModelInfo] = upload_parts()
        return parts
    live = getattr(controller, "stages", None)
    if live is None:
        return None, None
    # heavy (onnxruntime): imported only when a pipeline runs
    from actwatch.service.prediction_run import model_info, stages_runner
    from actwatch.service.stages import Stages

    if not isinstance(live, Stages):
        return None, None
    return stages_runner(live, config.pipeline), model_info(live.runtime, metrics.model_provenance())


async def _purge_loop(store: EventStore, clips: ClipStore, interval_s: float) -> None:
    while True:
        try:
            await asyncio.to_thread(store.purge, time.time())
            await asyncio.to_thread(clips.purge, time.time())
        except Exception:
            log.exception("purging old events or clips failed")
        await asyncio.sleep(interval_s)


def _lifespan(services: ServiceState) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        services.broadcaster.bind(asyncio.get_running_loop())
        controller = services.controller
        if services.delivery is not None:  # first: a backlog from before a restart starts going out now
            await asyncio.to_thread(services.delivery.start)
        await asyncio.to_thread(services.cameras.start_configured)
        await asyncio.to_thread(controller.start)
        await asyncio.to_thread(services.predictions.start)
        services.started = True
        purge = asyncio.create_task(
            _purge_loop(services.store, services.clips.store, services.config.storage.purge_interval_s)
        )
        log.info("actwatch service ready: %d cameras", len(services.cameras))
        try:
            yield
        finally:
            services.started = False
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            services.broadcaster.close()
            try:
                await asyncio.to_thread(services.predictions.stop)
                await asyncio.to_thread(controller.stop)
            finally:
                if services.delivery is not None:
                    await asyncio.to_thread(services.delivery.stop)
                await asyncio.to_thread(services.clips.close)  # the clips still collecting are written
                services.store.close()

    return lifespan


def create_app(
    config: AppConfig,
    controller: CameraController | None = None,
    *,
    announce_token: Callable[[str], None] | None = None,
) -> FastAPI:
    """The service's ASGI app. ``controller=None`` builds the compute pipeline; tests pass a fake.

    ``announce_token`` receives the message with a newly generated token (default: stderr).
    """
    prepare_data_dir(config.data_dir)
    token = resolve_token(config, announce_token) if announce_token else resolve_token(config)
    metrics = ServiceMetrics()
    store = EventStore(
        config.database_url,
        config.media_dir,
        config.storage.retention_days,
        keep_crops=config.storage.keep_crops,
    )
    broadcaster = Broadcaster(config.server.ws_queue_size, metrics=metrics)
    delivery = None
    if config.mqtt is not None or config.webhooks.targets:
        from actwatch.delivery.service import DeliveryService  # paho: imported only when configured

        delivery = DeliveryService.from_config(config, store, metrics)
    media = config.media
    live_frames = LiveFrames(media.live_share_ms / 1000)
    clips = ClipRecorder(ClipStore(config.media_dir / "clips", media.clips.retention_days), media.clips)
    # With compute processes, frames and clip rings stay in them: this sink stores and broadcasts only.
    local_frames = controller is not None or config.pipeline.processes == 1
    sink = EventSink(
        store,
        broadcaster,
        metrics,
        outbox=delivery,
        live_frames=live_frames if local_frames else None,
        clips=clips if local_frames else None,
    )
    controller = controller if controller is not None else _default_controller(config, sink, metrics)
    upload_runner, model = _upload_parts(config, controller, metrics)
    services = ServiceState(
        config=config,
        token=SecretStr(token),
        store=store,
        broadcaster=broadcaster,
        metrics=metrics,
        sink=sink,
        cameras=CameraService.from_config(config, controller, metrics),
        controller=controller,
        auth_throttle=AuthThrottle(config.server.auth_failures_per_minute),
        pending_websockets=ConnectionSlots(config.server.max_pending_websockets),
        delivery=delivery,
        predictions=PredictionService(config.predictions, config.data_dir / "predictions", upload_runner),
        model=model,
        live_frames=getattr(controller, "live_frames", live_frames),
        clips=clips,
        signer=MediaSigner(ttl_s=media.signed_url_ttl_s),
        mjpeg_streams=ConnectionSlots(media.max_streams),
    )

    app = FastAPI(
        title="actwatch",
        version=actwatch.__version__,
        description="Real-time behaviour recognition for CCTV: cameras, alerts (REST) and live events "
        "(WebSocket /ws/events). Send `Authorization: Bearer <token>` on every route except health checks.",
        lifespan=_lifespan(services),
        docs_url=None,  # served from the package by api_docs (FastAPI's own pages load from a CDN)
        redoc_url=None,
    )
    app.state.services = services
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    max_page = config.server.max_page_size
    for api in (
        health.router(),
        cameras.router(),
        live.router(),
        events.router(max_page),
        ws.router(),
        predictions.router(),
        system.router(),
        api_docs_router(),
    ):
        app.include_router(api)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html",
            media_type="text/html",
            headers={"Content-Security-Policy": _DASHBOARD_CSP, "Cache-Control": "no-cache"},
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Outermost last: limits and headers -> CORS (answers preflights) -> auth -> routes.
    app.add_middleware(
        BearerAuthMiddleware, token=services.token, throttle=services.auth_throttle, signer=services.signer
    )
    if config.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.server.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    upload = BodyLimit(
        "POST",
        "/predictions",
        max(config.server.max_request_body_bytes, config.predictions.max_upload_bytes + _MULTIPART_OVERHEAD),
        upload_too_large_message(config.predictions),
    )
    app.add_middleware(LimitsMiddleware, max_body=config.server.max_request_body_bytes, larger=(upload,))
    return app
