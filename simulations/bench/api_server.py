"""The server that ``bench_api.py`` measures: uvicorn (uvloop + httptools, one worker) on a free loopback port.

    .venv/bin/python simulations/bench/api_server.py --mode app --demo-speed 600 --workdir DIR
    .venv/bin/python simulations/bench/api_server.py --mode bare

``--mode app``: GigaTwin's app as ``gigatwin demo`` builds it (``create_app``: the virtual plant in-process feeding the
ingest pipeline, a SQLite store in ``--workdir``, authentication off on loopback), plus the bench's routes below on
the same app, so they pass through the same middleware, the same server and the same process as the status route.
``--mode bare``: a plain ``FastAPI()`` with only the bench's routes (no middleware, no ingest, nothing else).

Bench routes (outside ``/api/v1``, no dependencies):

- ``POST /bench/payload``: the body becomes the bare routes' answer (the bench posts a status body it fetched);
- ``GET /bench/bare``: that body, pre-serialised, as a ``Response`` (what the status route returns on a cache hit);
- ``GET /bench/bare-model``: the same JSON as a ``StatusOut`` instance through ``response_model`` (FastAPI's
  serialiser: the idiomatic endpoint);
- ``POST /bench/ingest?on=false|true`` (app): pauses or resumes the feed: the plant's thread blocks in the ingest's
  ``submit`` while paused, so the plant and the pipeline go idle with the live state frozen;
- ``GET /bench/counters``: the garbage collector's collections per generation, its total pause and its longest
  pause since the previous call (a collection holds the GIL: the event loop stops for as long), and (app) how often
  the status route has rebuilt its body.

Prints ``LISTENING <port> <line>`` on stdout once the app has started; stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import socket
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI, Request, Response

from api.app import create_app
from api.live import LiveSnapshot
from api.runtime import LineRuntime
from api.schemas import StatusOut
from api.settings import load_settings
from connectors.mqtt import Delivery

T = TypeVar("T")


class _Bench:
    """The bench routes' state: the payload, the feed's gate, the status route's rebuild counter and the collector's
    pauses."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.model: StatusOut | None = None
        self.flowing = threading.Event()
        self.flowing.set()
        self.closing = threading.Event()
        self.builds = 0
        self.collections = [0, 0, 0]
        self.gc_pause_s = 0.0
        self.gc_max_pause_s = 0.0
        self._gc_began = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_began
        self.collections[info["generation"]] += 1
        self.gc_pause_s += pause
        self.gc_max_pause_s = max(self.gc_max_pause_s, pause)

    def counters(self) -> dict[str, object]:
        """The counters now; the longest pause is the longest since the previous call."""
        out = {
            "status_builds": self.builds,
            "gc_collections": list(self.collections),
            "gc_pause_s": self.gc_pause_s,
            "gc_max_pause_s": self.gc_max_pause_s,
        }
        self.gc_max_pause_s = 0.0
        return out


def _add_bench_routes(app: FastAPI, bench: _Bench) -> None:
    @app.post("/bench/payload", include_in_schema=False)
    async def set_payload(request: Request) -> dict[str, int]:
        body = await request.body()
        bench.model = StatusOut.model_validate_json(body)
        # The bare routes answer the same bytes: re-serialised once, so both bare routes send identical JSON.
        bench.body = bench.model.model_dump_json().encode()
        return {"bytes": len(bench.body)}

    @app.get("/bench/bare", include_in_schema=False)
    async def bare() -> Response:
        return Response(bench.body, media_type="application/json")

    @app.get("/bench/bare-model", response_model=StatusOut, include_in_schema=False)
    async def bare_model() -> StatusOut | None:
        return bench.model

    @app.get("/bench/counters", include_in_schema=False)
    async def counters() -> dict[str, object]:
        return bench.counters()


def _instrument(runtime: LineRuntime, bench: _Bench) -> None:
    """Gate the feed and count the status route's rebuilds (instance attributes only: the app's code is unchanged)."""
    ingest, live = runtime.ingest, runtime.live
    submit, cached = ingest.submit, live.cached

    def gated_submit(delivery: Delivery) -> None:
        while not bench.flowing.wait(0.1):
            if bench.closing.is_set():
                return  # shutting down: the feed must reach its stop check
        submit(delivery)

    def counted_cached(key: str, build: Callable[[LiveSnapshot], T]) -> T:
        def counting(snap: LiveSnapshot) -> T:
            bench.builds += 1
            return build(snap)

        return cached(key, counting)

    ingest.submit = gated_submit  # type: ignore[method-assign]
    live.cached = counted_cached  # type: ignore[method-assign]


def app_mode(demo_speed: float, workdir: Path, bench: _Bench) -> FastAPI:
    settings = load_settings(
        source="demo",
        host="127.0.0.1",
        auth_disabled=True,
        store_url=f"sqlite:{workdir / 'bench.db'}",
        demo_speed=demo_speed,
    )
    app = create_app(settings)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            _instrument(a.state.runtime, bench)
            try:
                yield state
            finally:
                bench.closing.set()
                bench.flowing.set()

    app.router.lifespan_context = lifespan

    @app.post("/bench/ingest", include_in_schema=False)
    async def ingest_switch(on: bool) -> dict[str, bool]:
        if on:
            bench.flowing.set()
        else:
            bench.flowing.clear()
        return {"on": on}

    _add_bench_routes(app, bench)
    return app


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit and sockets:
            rt: LineRuntime | None = getattr(self.app.state, "runtime", None)
            line = "-" if rt is None else rt.line.name
            print(f"LISTENING {sockets[0].getsockname()[1]} {line}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["app", "bare"], default="app")
    parser.add_argument("--demo-speed", type=float, default=600.0, help="app: simulated seconds per wall second")
    parser.add_argument("--workdir", type=Path, default=None, help="app: where the SQLite store goes (default: a temp dir)")
    args = parser.parse_args()
    bench = _Bench()
    if args.mode == "app":
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gigatwin-bench-api-"))
        app = app_mode(args.demo_speed, workdir, bench)
    else:
        app = FastAPI()
        _add_bench_routes(app, bench)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        workers=1,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config, app)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
