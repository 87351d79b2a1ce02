"""Live-status endpoint speed, measured against a bare FastAPI endpoint of the same size in the same run.

    .venv/bin/python simulations/bench/bench_api.py [--duration 5] [--paced-duration 12] [--repeats 3] [--json FILE]

Starts ``api_server.py`` (beside this file) twice, each uvicorn with uvloop + httptools, one worker, no access log,
on a free loopback port, and loads it with ``wrk`` (one thread, 10 connections) on the same machine:

1. GigaTwin's app as ``gigatwin demo`` builds it: the virtual plant in-process at ``--demo-speed`` x real time
   feeding the ingest pipeline (SQLite store in a temp dir), so ingest runs during the measurement (its rate is
   read from ``/metrics`` around every run). On the same app, same middleware, same process:
   - ``status``: ``GET /api/v1/lines/{line}/status``, the route measured (its body is cached until the next event);
   - ``bare``: an ``async def`` route returning the status body fetched once after warm-up, pre-serialised, as a
     ``Response``: the framework's floor for the same bytes;
   - ``bare-model``: the same JSON as a ``StatusOut`` instance through ``response_model`` (FastAPI's serialiser).
   Then the feed is paused (the plant blocks, ingest idles, the live state is frozen: the status cache always
   hits) and ``status`` and ``bare`` are measured again.
2. A plain ``FastAPI()`` with only the bare route (no middleware, no ingest): the reference without GigaTwin.

Two loads per endpoint: (a) as fast as it answers (``wrk -t1 -c10``), the median of ``--repeats`` runs taken in
turn; (b) a fixed ``--rate`` (500 req/s): a wrk Lua script gives every request a slot on a fixed schedule
(``delay()``), so the rate holds whatever the latency. wrk times a request from its send to its last byte and
does not correct for coordinated omission; the script counts the requests sent more than 1 ms after their slot
(all 10 connections busy: the server fell behind), which wrk's latency does not include.

Around every run the CPU used by the server, by wrk and by the rest of the machine is read from /proc; before every
run the bench waits (``--quiet-timeout``) until the rest of the machine is quiet, as other work on the 2 cores is
measured too, and it warns when a run was disturbed anyway. The server's CPU per request is shown beside the rates:
it depends less on such disturbance than the rate does.

Targets (the issue): status p99 under 10 ms at 500 req/s on 2 cores while ingest runs; status at least 70 % of the
bare endpoint's throughput. A benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# Shared by both scripts: done() runs in wrk's main Lua state and reads each thread's counters with thread:get.
_WRK_DONE = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local late, late_max = 0, 0
  for _, t in ipairs(threads) do
    late = late + (t:get("late") or 0)
    late_max = math.max(late_max, t:get("late_max") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, "p999_us": %.1f, "max_us": %.1f, ' ..
    '"errors": %d, "late": %d, "late_max_ms": %.3f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout, late, late_max))
end
"""

# A fixed schedule: the thread's k-th request is due at t0 + k/rate. wrk calls delay() when a connection has its
# response and is free; it waits until the next slot (wrk takes whole milliseconds, so a request may leave up to
# 1 ms early, never drifting: slots are on the grid). A slot already past counts as late and goes at once.
_WRK_PACED = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval, next_slot = 2, nil
late, late_max = 0, 0
function init(args) interval = 1000 / tonumber(args[1]) end
function delay()
  local now = now_ms()
  next_slot = (next_slot or now) + interval
  local wait = next_slot - now
  if wait < -1 then
    late = late + 1
    late_max = math.max(late_max, -wait)
  end
  return math.max(0, wait)
end
"""


@dataclass
class WrkRun:
    """One wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: int
    late: int = 0
    """Paced runs: requests sent more than 1 ms after their slot."""
    late_max_ms: float = 0.0
    ingest_per_s: float | None = None
    """Telemetry messages/s the app took during the run (app server only)."""
    builds: int | None = None
    """Times the status route rebuilt its body during the run (app server only)."""
    server_cores: float = 0.0
    """CPU the server process used during the run, in cores (all its threads)."""
    wrk_cores: float = 0.0
    other_cores: float = 0.0
    """CPU used by everything else on the machine during the run (and stolen by the hypervisor): other work
    disturbs the figures."""
    gc_full: int = 0
    """Full (generation 2) garbage collections in the server during the run."""
    gc_pause_ms: float = 0.0
    """The server's time in garbage collection during the run (all generations); it holds the GIL."""
    gc_max_pause_ms: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass
class Row:
    """An endpoint on a server in a state, and its runs."""

    name: str
    setup: str
    path: str
    runs: list[WrkRun] = field(default_factory=list)
    paced: WrkRun | None = None

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in self.runs))

    def cpu_per_request(self) -> float:
        """The server's CPU seconds per request at maximum rate (median of runs): less sensitive to other work on
        the machine than the rate."""
        return float(statistics.median(x.server_cores / x.rate for x in self.runs))


class ApiServer:
    """``api_server.py`` in its own process; stopped with SIGINT (the app's lifespan stores and closes)."""

    def __init__(self, mode: str, work: Path, demo_speed: float) -> None:
        self.mode = mode
        self.log = work / f"server-{mode}.log"
        self.cmd = [sys.executable, str(HERE / "api_server.py"), "--mode", mode]
        if mode == "app":
            self.cmd += ["--demo-speed", str(demo_speed), "--workdir", str(work)]
        self.port = 0
        self.line = ""
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ApiServer:
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("LISTENING "):
                    _, port, self.line = line.split()
                    self.port = int(port)
                    return self
                if not line:
                    break
        self.__exit__()
        raise SystemExit(f"the {self.mode} server did not start; its log:\n{self.log.read_text()}")

    def __exit__(self, *_: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            print(f"the {self.mode} server did not stop in 60 s: killed", file=sys.stderr)
            self.proc.kill()
            self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url(path), timeout=30) as resp:
            body: bytes = resp.read()
            return body

    def post(self, path: str, data: bytes = b"") -> bytes:
        req = urllib.request.Request(self.url(path), data=data, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            body: bytes = resp.read()
            return body

    def metric(self, name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", self.get("/metrics").decode(), re.MULTILINE)
        assert found is not None, f"no {name} in /metrics"
        return float(found.group(1))

    def counters(self) -> dict[str, Any]:
        """The server's counters (api_server.py): status rebuilds, garbage collections and their pauses."""
        counters: dict[str, Any] = json.loads(self.get("/bench/counters"))
        return counters


def wrk(url: str, seconds: float, connections: int, script: Path, rate: float | None = None) -> WrkRun:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "-s", str(script), url]
    if rate is not None:
        cmd += ["--", f"{rate:g}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    found = re.search(r"^WRK_RESULT (\{.*\})$", out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no result from {' '.join(cmd)}:\n{out}")
    r = json.loads(found.group(1))
    return WrkRun(
        requests=r["requests"],
        seconds=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        p999_ms=r["p999_us"] / 1000,
        max_ms=r["max_us"] / 1000,
        errors=r["errors"],
        late=r["late"],
        late_max_ms=r["late_max_ms"],
    )


class CpuClock:
    """CPU seconds so far: the whole machine (from /proc/stat), the server process and the waited-for children
    (wrk; the server is a child too but is only counted once it has been waited for, after the runs)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.wall = time.perf_counter()
        with open("/proc/stat") as f:
            # user, nice and system: what processes use (interrupt time is mostly our own loopback traffic); steal:
            # what the hypervisor gave other machines while this one had work
            user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in f.readline().split()[1:9])
        self.busy = (user + nice + system + steal) / self.TICK
        with open(f"/proc/{server_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        self.server = (int(fields[11]) + int(fields[12])) / self.TICK
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.children = usage.ru_utime + usage.ru_stime

    def cores_since(self, before: CpuClock) -> tuple[float, float, float]:
        """Cores used since ``before`` by the server, wrk, and everything else on the machine."""
        wall = self.wall - before.wall
        server, children = self.server - before.server, self.children - before.children
        return server / wall, children / wall, max(0.0, self.busy - before.busy - server - children) / wall


def wait_quiet(server: ApiServer, args: argparse.Namespace) -> None:
    """Wait (at most ``--quiet-timeout`` s) until the rest of the machine has used less than ``--quiet-cores`` for
    1 s: on a shared machine, other work on the 2 cores would be measured too."""
    t0, calm = time.perf_counter(), 0
    while calm < 2 and time.perf_counter() - t0 < args.quiet_timeout:
        before = CpuClock(server.pid)
        time.sleep(0.5)
        other = CpuClock(server.pid).cores_since(before)[2]
        calm = calm + 1 if other < args.quiet_cores else 0
    waited = time.perf_counter() - t0
    if waited > 5:
        print(f"  (waited {waited:.0f} s for the machine to calm down{'' if calm >= 2 else ': it did not'})", flush=True)


def measured(server: ApiServer, args: argparse.Namespace, run: Callable[[], WrkRun]) -> WrkRun:
    """``run()`` once the machine is quiet, with the CPU it took, the garbage collector's pauses, and on the app the
    ingest rate and the status route's rebuilds over it."""
    if args.quiet_timeout > 0:
        wait_quiet(server, args)
    app = server.mode == "app"
    received = server.metric("gigatwin_messages_received_total") if app else 0.0
    start = server.counters()
    before = CpuClock(server.pid)
    result = run()
    after = CpuClock(server.pid)
    end = server.counters()
    result.server_cores, result.wrk_cores, result.other_cores = after.cores_since(before)
    result.gc_full = end["gc_collections"][2] - start["gc_collections"][2]
    result.gc_pause_ms = (end["gc_pause_s"] - start["gc_pause_s"]) * 1000
    result.gc_max_pause_ms = end["gc_max_pause_s"] * 1000
    if app:
        result.ingest_per_s = (server.metric("gigatwin_messages_received_total") - received) / (after.wall - before.wall)
        result.builds = end["status_builds"] - start["status_builds"]
    return result


def measure(server: ApiServer, rows: list[Row], args: argparse.Namespace, scripts: dict[str, Path]) -> None:
    """Warm every endpoint, then ``repeats`` rounds of maximum-rate runs in turn, then one paced run each."""
    for row in rows:
        wrk(server.url(row.path), 1, args.connections, scripts["max"])
    for i in range(args.repeats):
        for row in rows:
            url = server.url(row.path)
            row.runs.append(measured(server, args, partial(wrk, url, args.duration, args.connections, scripts["max"])))
            last = row.runs[-1]
            print(
                f"  {row.name:<11}{row.setup:<16} round {i + 1}: {last.rate:>7.0f} req/s, p99 {last.p99_ms:6.2f} ms, "
                f"GC max {last.gc_max_pause_ms:5.1f} ms, other CPU {last.other_cores:.2f}",
                flush=True,
            )
    for row in rows:
        url = server.url(row.path)
        paced = partial(wrk, url, args.paced_duration, args.connections, scripts["paced"], args.rate)
        p = row.paced = measured(server, args, paced)
        print(
            f"  {row.name:<11}{row.setup:<16} at {args.rate:g} req/s: {p.rate:>5.0f} req/s, p99 {p.p99_ms:6.2f} ms, "
            f"GC max {p.gc_max_pause_ms:5.1f} ms, other CPU {p.other_cores:.2f}",
            flush=True,
        )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(rows: list[Row], args: argparse.Namespace, sizes: dict[str, int]) -> dict[str, object]:
    by = {(r.name, r.setup): r for r in rows}
    status, bare = by[("status", "ingest running")], by[("bare", "ingest running")]
    print()
    print(f"{'':<27}{'--- maximum rate (median of runs) ---':^61}{'--- at ' + format(args.rate, 'g') + ' req/s ---':^44}")
    print(
        f"{'endpoint':<11}{'server':<16}{'req/s':>8}{'(min-max)':>14}{'p50 ms':>8}{'p99 ms':>8}{'srv CPU':>8}"
        f"{'us/req':>7}{'wrk CPU':>8}{'req/s':>8}{'p50 ms':>7}{'p99 ms':>7}{'p99.9':>7}{'max ms':>8}{'late':>6}"
        f"{'ingest msg/s':>14}{'rebuilds/req':>14}{'GC max ms':>10}{'other CPU':>10}"
    )
    for r in rows:
        p = r.paced
        assert p is not None
        lo, hi = min(x.rate for x in r.runs), max(x.rate for x in r.runs)
        ingest = [x.ingest_per_s for x in [*r.runs, p] if x.ingest_per_s is not None]
        builds = "-"
        if r.name == "status":
            at_max = sum(x.builds or 0 for x in r.runs) / sum(x.requests for x in r.runs)
            builds = f"{at_max:.3f}|{(p.builds or 0) / p.requests:.3f}"
        print(
            f"{r.name:<11}{r.setup:<16}{r.median('rate'):>8.0f}{f'({lo:.0f}-{hi:.0f})':>14}"
            f"{r.median('p50_ms'):>8.2f}{r.median('p99_ms'):>8.2f}{r.median('server_cores'):>8.2f}"
            f"{r.cpu_per_request() * 1e6:>7.0f}{r.median('wrk_cores'):>8.2f}"
            f"{p.rate:>8.0f}{p.p50_ms:>7.2f}{p.p99_ms:>7.2f}{p.p999_ms:>7.1f}{p.max_ms:>8.1f}{p.late:>6}"
            f"{_fmt(statistics.mean(ingest) if ingest else None, '.0f'):>14}{builds:>14}"
            f"{max(x.gc_max_pause_ms for x in [*r.runs, p]):>10.1f}"
            f"{max(x.other_cores for x in [*r.runs, p]):>10.2f}"
        )
    print(
        "srv/wrk CPU: cores the server process (all threads) and wrk used; us/req: server CPU per request; "
        "late: requests sent > 1 ms after their slot;\n"
        f"rebuilds/req: status bodies built per request, at maximum rate|at {args.rate:g} req/s; "
        "GC max ms: the server's longest garbage collection (it stops the event loop);\n"
        "other CPU: the most any run saw used by the rest of the machine or stolen by the hypervisor "
        f"(> {args.quiet_cores:g} disturbs the figures)"
    )
    errors = sum(x.errors for r in rows for x in [*r.runs, *([r.paced] if r.paced else [])])
    ratio = status.median("rate") / bare.median("rate")
    assert status.paced is not None
    p99 = status.paced.p99_ms
    print()
    print(
        f"body: status {sizes['status']} bytes when snapshotted ({sizes['status_end']} at the end), bare {sizes['bare']}, "
        f"bare-model {sizes['bare-model']}; wrk errors (socket, non-2xx, timeouts): {errors}"
    )
    print(f"ratio status/bare, ingest running: {ratio:.2f} (target >= 0.70: {'met' if ratio >= 0.70 else 'NOT met'})")
    print(
        f"status p99 at {args.rate:g} req/s, ingest running: {p99:.2f} ms (target < 10 ms: {'met' if p99 < 10 else 'NOT met'}); "
        f"sent late: {status.paced.late} of {status.paced.requests}; {status.paced.gc_full} full garbage collection(s) in the "
        f"{args.paced_duration:g} s, the longest {status.paced.gc_max_pause_ms:.0f} ms"
    )
    others = [
        ("status/bare-model, ingest running", "status", "ingest running", "bare-model", "ingest running"),
        ("status/bare, ingest paused", "status", "ingest paused", "bare", "ingest paused"),
        ("bare (app, ingest running)/bare (plain FastAPI)", "bare", "ingest running", "bare", "plain FastAPI"),
        ("bare (app, ingest paused)/bare (plain FastAPI)", "bare", "ingest paused", "bare", "plain FastAPI"),
    ]
    print(f"{'ratio (throughput; in brackets: the inverse ratio of server CPU per request)':<60}")
    for label, a, sa, b, sb in [("status/bare, ingest running", "status", "ingest running", "bare", "ingest running"), *others]:
        ra, rb = by[(a, sa)], by[(b, sb)]
        print(f"  {label:<50}{ra.median('rate') / rb.median('rate'):>6.2f}  ({rb.cpu_per_request() / ra.cpu_per_request():.2f})")
    full = [x for r in rows if r.setup != "plain FastAPI" for x in [*r.runs, *([r.paced] if r.paced else [])]]
    print(
        f"garbage collection in the app during the runs: {sum(x.gc_full for x in full)} full collections, "
        f"{sum(x.gc_pause_ms for x in full) / 1000:.2f} s in all (every generation), "
        f"the longest {max(x.gc_max_pause_ms for x in full):.0f} ms"
    )
    disturbed = max(x.other_cores for r in rows for x in [*r.runs, *([r.paced] if r.paced else [])])
    if disturbed > args.quiet_cores:
        print(f"WARNING: other work used up to {disturbed:.2f} cores during a run: the figures are disturbed")
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
        "args": vars(args) | {"json": str(args.json) if args.json else None},
        "sizes": sizes,
        "ratio_status_bare": ratio,
        "status_p99_at_rate_ms": p99,
        "rows": [
            {
                "name": r.name,
                "setup": r.setup,
                "path": r.path,
                "runs": [asdict(x) for x in r.runs],
                "paced": asdict(r.paced) if r.paced else None,
            }
            for r in rows
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each maximum-rate run")
    parser.add_argument("--paced-duration", type=float, default=12.0, help="seconds of each fixed-rate run")
    parser.add_argument("--repeats", type=int, default=3, help="maximum-rate runs per endpoint (the median is shown)")
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s of the fixed-rate runs")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--demo-speed", type=float, default=600.0, help="the virtual plant's speed (x real time)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of ingest before the status body is snapshotted")
    parser.add_argument(
        "--quiet-cores", type=float, default=0.1, help="before each run, wait until the rest of the machine uses less"
    )
    parser.add_argument("--quiet-timeout", type=float, default=60.0, help="the longest wait for that, s (0: do not wait)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args()
    versions = ", ".join(
        f"{p} {importlib.metadata.version(p)}" for p in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic")
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
    print(f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, {versions}, {wrk_version}")
    print(
        f"wrk -t1 -c{args.connections}; {args.repeats} x {args.duration:g} s at maximum rate, "
        f"{args.paced_duration:g} s at {args.rate:g} req/s; demo at x{args.demo_speed:g}"
    )
    with tempfile.TemporaryDirectory(prefix="gigatwin-bench-api-", ignore_cleanup_errors=True) as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, work: Path) -> None:
    scripts = {"max": work / "max.lua", "paced": work / "paced.lua"}
    scripts["max"].write_text(_WRK_DONE)
    scripts["paced"].write_text(_WRK_PACED + _WRK_DONE)
    sizes: dict[str, int] = {}

    with ApiServer("app", work, args.demo_speed) as app:
        status_path = f"/api/v1/lines/{app.line}/status"
        time.sleep(args.warmup)
        body = app.get(status_path)
        app.post("/bench/payload", body)
        sizes |= {"status": len(body), "bare": len(app.get("/bench/bare")), "bare-model": len(app.get("/bench/bare-model"))}
        running = [
            Row("status", "ingest running", status_path),
            Row("bare", "ingest running", "/bench/bare"),
            Row("bare-model", "ingest running", "/bench/bare-model"),
        ]
        print(f"app on port {app.port}, line {app.line}, ingest running")
        measure(app, running, args, scripts)
        app.post("/bench/ingest?on=false")
        while app.metric("gigatwin_ingest_queue_depth") > 0:
            time.sleep(0.1)
        time.sleep(1.0)
        paused = [Row("status", "ingest paused", status_path), Row("bare", "ingest paused", "/bench/bare")]
        print("ingest paused")
        measure(app, paused, args, scripts)
        sizes["status_end"] = len(app.get(status_path))
    with ApiServer("bare", work, args.demo_speed) as plain:
        plain.post("/bench/payload", body)
        print(f"plain FastAPI on port {plain.port}")
        alone = [Row("bare", "plain FastAPI", "/bench/bare")]
        measure(plain, alone, args, scripts)

    results = report([*running, *paused, *alone], args, sizes)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"results in {args.json}")


if __name__ == "__main__":
    main()
