"""The app factory and its lifespan: the composition root of the service.

``create_app(settings)`` builds the FastAPI app; its lifespan builds the line's runtime (source, pipeline,
store, live state, stream), starts the background tasks and, at shutdown, stops them in order so that what
was taken is stored and the store is flushed and closed. Routes are versioned under ``/api/v1``, one router
per resource; the dashboard is served at ``/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.resources
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.errors import install_error_handlers
from api.line_process import RemoteLine
from api.live import start_window_pool, use_window_pool
from api.metrics import LatencyMiddleware, make_registry
from api.routes import (
    calibration,
    dead_letters,
    forecast,
    health,
    history,
    lines,
    metrics,
    oee,
    status,
    stops,
    stream,
    whatif,
)
from api.runtime import LineRuntime, build_runtime
from api.schemas import ERROR_RESPONSES
from api.security import document_schemes
from api.served import ServedLine
from api.settings import Settings
from api.warmup import warm_up
from api.whatif_jobs import WhatIfJobs
from connectors.redact import redact_url
from twin.schema import Line

__all__ = ["API_PREFIX", "STATIC_DIR", "create_app"]

log = logging.getLogger("gigatwin.api")

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The dashboard: plain HTML, CSS and JavaScript with a vendored charting library; no build step."""
DOCS_ASSETS = Path(str(importlib.resources.files("fastapi_offline") / "static"))
"""Swagger UI's script and style sheet, as the ``fastapi-offline`` package ships them."""


def create_app(settings: Settings, *, line: Line | None = None) -> FastAPI:
    """The service for ``settings`` (``line``: an already validated line instead of ``settings.line_file``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        local: LineRuntime | RemoteLine
        if settings.pipeline_process:
            # The pipeline, the live state, the feed and the window queries in a process of their own: this one's
            # interpreter is left to the event loop (api.line_process says why).
            local = await asyncio.to_thread(RemoteLine, settings, line)
            await asyncio.to_thread(local.start)
        else:
            local = await asyncio.to_thread(_local_runtime, settings, line)
        runtime: ServedLine = local
        app.state.runtime = runtime
        name = runtime.line.name
        # The service asks itself once for its read-only pages: the first client's request no longer pays for what
        # is built once per process (api.warmup), and what that builds is frozen below with the rest.
        app.state.warmed = await warm_up(
            app,
            ["/", f"{API_PREFIX}/lines/{name}/status", f"{API_PREFIX}/health/ready", "/metrics", f"{API_PREFIX}/-"],
            key=next(iter(settings.roles()), None),
        )
        # What exists now lives as long as the service (modules, the line, the runtime's tables): move it out of the
        # collector's sight, so full collections walk only what is made while serving (they paused requests 100-230 ms).
        gc.collect()
        gc.freeze()
        streamer = asyncio.create_task(runtime.hub.run(settings.stream_period_s, settings.kpi_period_s), name="gigatwin-stream")
        whatifs = WhatIfJobs(
            queue_size=settings.whatif_queue,
            keep_s=settings.whatif_keep_s,
            workers=settings.whatif_workers,
            scheduler=settings.dask_scheduler,
        )
        app.state.whatifs = whatifs
        log.info("serving line %s from %s into %s", runtime.line.name, settings.source, redact_url(settings.store_url))
        try:
            yield
        finally:
            runtime.hub.close()  # open streams end now rather than hold the shutdown for its grace period
            app.state.whatifs = None
            await asyncio.to_thread(whatifs.close)  # queued and running what-ifs are cancelled, their processes ended
            streamer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streamer
            await asyncio.to_thread(local.stop)
            app.state.runtime = None
            if isinstance(local, LineRuntime):
                current_pool = local.live.window_pool  # the one started here, or its replacement if it broke
                if current_pool is not None:
                    await asyncio.to_thread(current_pool.shutdown, wait=True, cancel_futures=True)
            gc.unfreeze()  # cycles among the frozen objects are collectable again once the service is gone

    app = FastAPI(
        title="GigaTwin",
        summary="A digital twin and monitoring backend for battery-cell production lines",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served below from files shipped with the package, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.runtime = None
    app.state.whatifs = None

    def current() -> ServedLine | None:
        rt: ServedLine | None = app.state.runtime
        return rt

    registry, latency = make_registry(current)
    app.state.registry = registry
    app.add_middleware(LatencyMiddleware, latency=latency)
    install_error_handlers(app)
    document_schemes(app)

    for module in (lines, status, stream, history, oee, stops, forecast, calibration, whatif, dead_letters, health):
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(whatif.events_router, prefix=API_PREFIX)  # its errors documented as JSON (whatif.JSON_ERRORS)
    app.include_router(metrics.router, responses=ERROR_RESPONSES)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/whatif", include_in_schema=False)
    async def whatif_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "whatif.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _serve_docs(app)
    return app


def _serve_docs(app: FastAPI) -> None:
    """Swagger UI at ``/api/v1/docs`` from its files in the installed ``fastapi-offline`` package: on a plant network
    without internet the page would stay blank with FastAPI's default (the files from a CDN)."""
    assets = f"{API_PREFIX}/docs-assets"
    app.mount(assets, StaticFiles(directory=str(DOCS_ASSETS)), name="docs-assets")

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{API_PREFIX}/openapi.json",
            title="GigaTwin API",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}/static/favicon.svg",
        )


def _local_runtime(settings: Settings, line: Line | None) -> LineRuntime:
    """The runtime in this process, started, with its window-query pool (started first, before the runtime's threads:
    warm, for the service's life)."""
    pool = start_window_pool(settings.window_workers)
    try:
        runtime = build_runtime(settings, line)
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    if pool is not None:
        use_window_pool(runtime.live, pool, settings.window_workers)
    runtime.start()
    return runtime
