"""``gigatwin demo``: one command, no services; it starts, serves the dashboard and the API, and stops cleanly."""

from __future__ import annotations

import os
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
    began = time.monotonic()
    proc, url = _start_demo(tmp_path, warmup_h=48)
    print(f"demo up in {time.monotonic() - began:.1f} s")
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            page = http.get("/")
            assert page.status_code == 200
            assert "<html" in page.text.lower()
            status = http.get("/api/v1/lines/reference_cell_line/status")  # no key: the demo runs without auth
            assert status.status_code == 200
            assert [s["id"] for s in status.json()["stations"]][:2] == ["MIX_A", "COAT_A"]
            assert http.get("/api/v1/health/ready").json()["ready"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"the demo did not stop within {STOP_S} s of SIGINT") from None
    err = _finish(proc)
    assert code == 0, err
    assert "WARNING authentication is off" in err
    store = re.search(r"into sqlite:(\S+)", err)
    assert store is not None
    assert not Path(store.group(1)).exists()  # the throw-away store went with the demo


def _start_demo(tmp_path: Path, warmup_h: float = 24) -> tuple[subprocess.Popen[str], str]:
    """``gigatwin demo`` in a session of its own (a terminal's Ctrl-C reaches its whole process group); its URL."""
    cmd = [sys.executable, "-m", "api.cli", "demo", "--port", "0", "--speed", "600", "--warmup", f"{warmup_h:g}"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True
    )
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "dashboard at" in line:
                banner.set()

    threading.Thread(target=read, daemon=True).start()
    if not banner.wait(START_S):
        proc.kill()
        raise AssertionError(f"no address within {START_S} s: {lines} / {proc.poll()}")
    url = re.search(r"http://127\.0\.0\.1:\d+/", "".join(lines))
    assert url is not None
    return proc, url.group(0)


def _descendants(pid: int) -> set[int]:
    """The processes under ``pid`` now (its pipeline process, that one's window-query workers and fork server)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue  # gone meanwhile
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def _gone(pids: set[int], timeout_s: float) -> set[int]:
    """Those of ``pids`` still running after ``timeout_s`` (zombies count as gone)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = set()
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                left.add(pid)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def test_ctrl_c_in_a_terminal_stops_the_demo_and_its_pipeline_process_cleanly(tmp_path: Path) -> None:
    proc, url = _start_demo(tmp_path)
    try:
        helpers = _descendants(proc.pid)
        assert helpers, "the pipeline runs in a process of its own"
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.get("/api/v1/health/ready").json()["ready"] is True
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        code = proc.wait(STOP_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = _finish(proc)
    assert code == 0, err
    assert "Traceback" not in err, err
    assert not _gone(helpers, 10.0), "processes of the demo outlived it"


def test_the_demo_exits_1_when_its_pipeline_process_dies(tmp_path: Path) -> None:
    proc, _ = _start_demo(tmp_path)
    try:
        helpers = _descendants(proc.pid)
        (pipeline,) = [p for p in helpers if _parent(p) == proc.pid and "spawn_main" in _cmdline(p)]
        os.kill(pipeline, signal.SIGKILL)
        code = proc.wait(STOP_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = _finish(proc)
    assert code == 1, err
    assert "the pipeline task stopped for good: the pipeline process exited with code -9" in err
    assert not _gone(helpers, 10.0), "processes of the demo outlived it"


def test_no_process_of_the_demo_outlives_it_when_it_is_killed(tmp_path: Path) -> None:
    proc, _ = _start_demo(tmp_path)
    try:
        helpers = _descendants(proc.pid)
        assert helpers
        proc.kill()  # SIGKILL: no shutdown runs; the pipeline's process must notice and end itself, and its helpers
        proc.wait(STOP_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    _finish(proc)
    assert not _gone(helpers, STOP_S), "processes of the demo outlived it"


def _finish(proc: subprocess.Popen[str]) -> str:
    """What the stopped demo wrote to stderr; its pipes closed."""
    err = proc.stderr.read() if proc.stderr is not None else ""
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return err


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGATWIN_")}
    env["PYTHONPATH"] = str(REPO)
    return env
