"""The service under test: the real app with its lifespan running, on the real SQLite store."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.runtime import LineRuntime
from api.served import ServedLine
from api.settings import Settings, load_settings
from tests.conftest import MIXED_LINE
from twin.schema import Line

VIEWER = "viewer-key-0123456789"
OPERATOR = "operator-key-0123456789"
LINE_ID = MIXED_LINE.name


def demo_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Demo settings on a throw-away SQLite store: the small mixed line at four simulated hours per wall second, the
    pipeline in the test's process (so that a test can compare the answers with the live state itself; the service's
    default, a process of its own, has its tests in ``test_line_process.py``)."""
    values: dict[str, Any] = {
        "pipeline_process": False,
        "source": "demo",
        "store_url": f"sqlite:{tmp_path / 'api.db'}",
        "viewer_keys": [VIEWER],
        "operator_keys": [OPERATOR],
        "demo_speed": 14_400.0,
        "demo_warmup_hours": 20.0,
        "stream_period_s": 0.1,
        "kpi_period_s": 0.2,
        "history_hours": 24.0,
        "forecast_replications": 16,
        "forecast_max_replication_hours": 40.0,  # generated requests must not hold the test for minutes
        **overrides,
    }
    return load_settings(**values)


def served_of(client: TestClient) -> ServedLine:
    """The running app's line, as the routes see it (in either mode)."""
    app: FastAPI = client.app  # type: ignore[assignment]
    rt: ServedLine = app.state.runtime
    return rt


def runtime_of(client: TestClient) -> LineRuntime:
    """The running app's runtime, of an app whose pipeline runs in the test's process (``pipeline_process=False``,
    :func:`demo_settings`' default), to compare its answers with the live state itself."""
    rt = served_of(client)
    assert isinstance(rt, LineRuntime), "the pipeline runs in a process of its own: made with pipeline_process=True?"
    return rt


def wait_for(check: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``check()`` until it is true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The demo service on the mixed line (keys required), lifespan running; the first events have arrived."""
    app = create_app(demo_settings(tmp_path), line=MIXED_LINE)
    with TestClient(app, headers={"X-API-Key": VIEWER}) as c:
        rt = runtime_of(c)
        wait_for(lambda: rt.ingest_stats().events > 50, what="the demo's first events")
        yield c


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """The app under uvicorn in a thread, on a free loopback port (for streams and schema tests over real HTTP)."""

    def __init__(self, settings: Settings, line: Line | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, line=line)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout_s=30, what="uvicorn to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "uvicorn did not stop within 15 s"

    @property
    def runtime(self) -> ServedLine:
        """The running app's line, as its routes see it."""
        rt: ServedLine = self.app.state.runtime
        return rt
