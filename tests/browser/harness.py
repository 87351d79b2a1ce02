"""Helpers of the dashboard's browser tests: GigaTwin services started as subprocesses, the system Chromium under
Playwright, and what went wrong in a page.

Chromium is Debian's (``/usr/bin/chromium``); Playwright's own browser downloads are not used. A missing Chromium
fails the tests (it does not skip them): install the Debian packages ``chromium`` and ``chromium-driver``
(``tests/run.sh`` installs them).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Response, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 60.0
"""How long a service may take to print its banner (the demo warms the line up first)."""
STOP_TIMEOUT_S = 15.0
"""How long a service may take to stop after SIGINT (uvicorn allows 5 s for open connections, then the lifespan stops)."""
STOPPED_BY_SIGINT = {0, -signal.SIGINT, 128 + signal.SIGINT}
"""Exit statuses of a clean stop on SIGINT (uvicorn re-raises the signal once it has shut down)."""

_BANNER = re.compile(r"dashboard at (http://\S+/)")


@dataclass
class Service:
    """A ``gigatwin`` process serving the API and the dashboard."""

    proc: subprocess.Popen[str]
    url: str
    log: Path
    lines: list[str]
    reader: threading.Thread

    def get_json(self, path: str, key: str | None = None) -> Any:
        """GET ``path`` (relative to the service's root) as JSON."""
        request = urllib.request.Request(self.url + path.lstrip("/"), headers={"X-API-Key": key} if key else {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stderr(self) -> str:
        """The service's log so far (for failure messages)."""
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> tuple[int | None, float]:
        """SIGINT, then wait up to ``timeout`` s; the exit status (None: still running) and the seconds it took."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None, time.monotonic() - t0
        return self.proc.returncode, time.monotonic() - t0

    def close(self) -> None:
        """Make sure the process is gone and its pipe closed."""
        if self.proc.poll() is None:
            code, _ = self.stop()
            if code is None:
                self.proc.kill()
                self.proc.wait(10)
        self.reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class Services:
    """Starts services for one test and stops whatever the test left running."""

    workdir: Path
    started: list[Service] = field(default_factory=list)

    def start(self, args: list[str], env: Mapping[str, str] | None = None) -> Service:
        """Run ``python -m api.cli ARGS`` in a scratch directory and wait for its banner."""
        n = len(self.started)
        cwd = self.workdir / f"service{n}"
        cwd.mkdir()
        log = self.workdir / f"service{n}.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("GIGATWIN_")}
        environ.update(env or {})
        environ["PYTHONUNBUFFERED"] = "1"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", *args],
                cwd=cwd,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        lines: list[str] = []
        found: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:  # drained to the end, so the pipe never fills up
                lines.append(line)
                match = _BANNER.search(line)
                if match:
                    found.put(match.group(1))
            found.put(None)

        reader = threading.Thread(target=read, name=f"service{n}-stdout", daemon=True)
        reader.start()
        try:
            url = found.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            url = None
        service = Service(proc, url or "", log, lines, reader)
        self.started.append(service)
        if url is None:
            service.close()
            pytest.fail(f"{' '.join(args)} printed no banner within {START_TIMEOUT_S:g} s:\n{''.join(lines)}\n{service.stderr()}")
        return service

    def close(self) -> None:
        for service in self.started:
            service.close()


@dataclass
class Chromium:
    """Launches the system Chromium once per module, when a test first asks (a missing Chromium fails that test)."""

    playwright: Playwright | None = None
    browser: Browser | None = None

    def launch(self) -> Browser:
        if self.browser is None:
            if not CHROMIUM.exists():
                pytest.fail(
                    f"{CHROMIUM} is missing: the browser tests need the system Chromium. "
                    "Install the Debian packages chromium and chromium-driver (tests/run.sh installs them): "
                    "apt-get install chromium chromium-driver"
                )
            self.playwright = sync_playwright().start()
            self.browser = self.playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        return self.browser

    def close(self) -> None:
        if self.browser is not None:
            self.browser.close()
        if self.playwright is not None:
            self.playwright.stop()


@dataclass
class PageProblems:
    """What went wrong in a page: console errors, uncaught exceptions, failed requests and HTTP error responses."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    error_responses: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

        def on_failed(request: Request) -> None:
            self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

        def on_response(response: Response) -> None:
            if response.status >= 400:
                self.error_responses.append(f"{response.status} {response.request.method} {response.url}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.page_errors.append(f"{error.name}: {error.message}\n{error.stack}"))
        page.on("requestfailed", on_failed)
        page.on("response", on_response)
