"""``gigatwin serve`` and ``gigatwin demo``: the API and dashboard under uvicorn, until SIGINT or SIGTERM.

``serve`` takes its settings from the environment, ``.env`` or a config file (:mod:`api.settings`); ``demo`` is
the embedded default: the virtual plant in-process on the reference line, a throw-away SQLite store, no
broker, no database server, on 127.0.0.1 with authentication off (with a warning).
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.settings import Settings, SettingsError, load_settings
from connectors.errors import ConnectorError
from connectors.redact import redact_text
from twin.errors import TwinError

__all__ = ["run_demo", "run_serve"]

log = logging.getLogger("gigatwin")


class _Server(uvicorn.Server):
    """uvicorn, printing the address once the app has started (the lifespan has run), so it works when printed, and
    ending the live streams when shutdown begins: uvicorn waits for open connections before the lifespan's shutdown,
    and a dashboard's stream would otherwise hold it for the whole grace period."""

    def __init__(self, config: uvicorn.Config, banner: str, app: FastAPI) -> None:
        super().__init__(config)
        self.banner = banner
        self.app = app
        self.failures: list[str] = []
        """Background tasks that failed for good, with their errors: the server then stops and exits 1."""

    async def on_tick(self, counter: int) -> bool:
        should_exit = await super().on_tick(counter)
        runtime = self.app.state.runtime
        if runtime is not None and runtime.failed.is_set() and not self.failures:
            # Restarting in process did not help: stop, so that the service manager restarts the whole process.
            self.failures = [f"the {t.name} task stopped for good: {redact_text(t.last_error)}" for t in runtime.failures()]
            return True
        return should_exit

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        runtime = self.app.state.runtime
        if runtime is not None:
            runtime.hub.close()
        await super().shutdown(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            print(self.banner, flush=True)


def _interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _serve(settings: Settings, title: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"gigatwin: cannot listen on {settings.host}:{settings.port} (GIGATWIN_HOST/GIGATWIN_PORT): {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    banner = f"{title}: dashboard at {url}  API at {url}api/v1/docs  (Ctrl-C to stop)"
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = _Server(config, banner, app)
    # uvicorn shuts down gracefully on SIGTERM, then raises it again with the handler found at start: make that one
    # end like Ctrl-C, so that a stop asked for exits 0 rather than "killed by SIGTERM" after a clean shutdown
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully (the lifespan stops the tasks and flushes the store), then raises the
        # captured SIGINT again; by then there is nothing left to do
        pass
    except (TwinError, ConnectorError, ValueError) as exc:
        print(f"gigatwin: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    for failure in server.failures:
        print(f"gigatwin: {failure}", file=sys.stderr)
    if server.failures:
        return 1
    # uvicorn reports a failed startup (the lifespan raised) by stopping without serving
    return 0 if server.started else 3


def run_serve(overrides: dict[str, Any]) -> int:
    """Serve with the settings from the environment, ``.env`` or the config file (``overrides`` first)."""
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"gigatwin serve: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    return _serve(settings, f"gigatwin serve ({settings.source})")


def run_demo(overrides: dict[str, Any]) -> int:
    """The demo: the virtual plant on the reference line (or ``line_file``), in-process, into a temporary SQLite store."""
    with tempfile.TemporaryDirectory(prefix="gigatwin-demo-") as tmp:
        values: dict[str, Any] = {"source": "demo", "host": "127.0.0.1", "auth_disabled": True}
        values["store_url"] = f"sqlite:{Path(tmp) / 'demo.db'}"
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            settings = load_settings(**values)
        except SettingsError as exc:
            print(f"gigatwin demo: {redact_text(str(exc))}", file=sys.stderr)
            return 2
        if settings.auth_disabled:
            log.warning("authentication is off: anyone who can reach %s can use the API (demo on loopback only)", settings.host)
            print(f"gigatwin demo: WARNING authentication is off (loopback {settings.host} only)", file=sys.stderr)
        print(
            f"gigatwin demo: warming up {settings.line_file.name} ({settings.demo_warmup_hours:g} simulated hours), "
            f"then running it at x{settings.demo_speed:g}",
            flush=True,
        )
        return _serve(settings, "gigatwin demo")
