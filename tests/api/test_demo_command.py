"""``gigatwin demo``: one command, no services; it starts, serves the dashboard and the API, and stops cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import REPO

START_S = 60.0  # warm-up of the reference line plus start-up, with room for a busy CI machine
STOP_S = 15.0


def test_the_demo_starts_serves_and_stops(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "api.cli", "demo", "--port", "0", "--speed", "600", "--warmup", "48"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "dashboard at" in line:
                banner.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        began = time.monotonic()
        assert banner.wait(START_S), f"no address within {START_S} s: {lines} / {proc.poll()}"
        print(f"demo up in {time.monotonic() - began:.1f} s")
        url = re.search(r"http://127\.0\.0\.1:\d+/", "".join(lines))
        assert url is not None
        with httpx.Client(base_url=url.group(0), timeout=10) as http:
            page = http.get("/")
            assert page.status_code == 200
            assert "<html" in page.text.lower()
            status = http.get("/api/v1/lines/reference_cell_line/status")  # no key: the demo runs without auth
            assert status.status_code == 200
            assert [s["id"] for s in status.json()["stations"]][:2] == ["MIX", "COAT"]
            assert http.get("/api/v1/health/ready").json()["ready"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"the demo did not stop within {STOP_S} s of SIGINT") from None
    err = proc.stderr.read() if proc.stderr is not None else ""
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    assert code == 0, err
    assert "WARNING authentication is off" in err
    store = re.search(r"into sqlite:(\S+)", err)
    assert store is not None
    assert not Path(store.group(1)).exists()  # the throw-away store went with the demo


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGATWIN_")}
    env["PYTHONPATH"] = str(REPO)
    return env
