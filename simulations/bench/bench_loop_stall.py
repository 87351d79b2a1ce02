"""The event loop's longest stall while heavy queries, late events and a store outage happen together.

    .venv/bin/python simulations/bench/bench_loop_stall.py --plant [--quiet-s 8] [--stress-s 15] [--history-h 12]
    .venv/bin/python simulations/bench/bench_loop_stall.py [--quiet-s 8] [--stress-s 15] [--history-h 12]

``--plant``: the service as it runs at a plant, with real parts: a mosquitto and an influxd started here, the virtual
plant publishing the reference line from another process at ``--demo-speed``, and ``create_app`` with the mqtt source
into InfluxDB, run twice in the same bench: as it ships (its pipeline in a process of its own) and with
``pipeline_process`` off (everything in the server's process: the same run's baseline). The stress's late events are
MQTT messages 30 minutes behind the line's clock (2,000 every 0.1 s, from another process), and its store outage is
the influxd stopped (SIGSTOP: a database that does not answer) for the whole phase. ``--modes`` picks the services
measured; ``--remote-nice N`` lowers the priority of the clients, the plant and the flood (other machines, in a plant).
"own max ms" is the longest stall less the time the loop's thread waited, runnable, for a core meanwhile (Linux
schedstat): the part of the stall that is the server's own work rather than a machine with too few cores.

Without ``--plant``, the older form below (in-process pipeline only):

Runs the real app (``create_app`` with the demo source on the reference line, SQLite store) under uvicorn in this
process, with two probes inside it: a loop-lag probe (a task on the server's event loop that sleeps 1 ms and records
how late it wakes: the longest time the loop could not run anything) and ``gc.callbacks`` (each garbage collection's
pause; a collection stops every thread, the loop too). Once the live state holds ``--history-h`` hours:

- quiet: the demo's ingest runs and a client asks ``/status`` 50 times a second (the same run's baseline);
- stress: the same, plus, together: two clients asking ``/oee``, ``/downtime`` and ``/stops`` over the whole
  retained history back to back, floods of state reports 30 minutes late (2,000 every 0.1 s, as messages through
  the pipeline: decoded, stored, taken by the live state; ``--late-direct``: fed to the live state from a thread of
  the bench instead, a third busy thread beside the pipeline and the demo feed), a store outage (the store's
  health probe takes 10 s and fails, as an InfluxDB that does not answer), and a client asking ``/metrics`` and
  ``/health/ready`` 10 times a second.

The HTTP clients run in another process, so only the server's own threads share its interpreter. Reports per
phase: the loop's longest stall and its 99.9th percentile, the longest GC pause (from ``gc.callbacks``: it includes
the time other threads hold the interpreter between the callbacks, so it is an upper bound), the status requests' longest
and 99th-percentile latency, the window queries answered, and the late events taken. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing as mp
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.runtime import LineRuntime
from api.settings import load_settings
from connectors.mqtt import Delivery
from connectors.stores.base import Health
from connectors.telemetry import MS_PER_HOUR, Channel, StateReading, encode, to_packml
from twin.events import MachineState, StateChanged

REFERENCE = Path(__file__).resolve().parents[1] / "lines" / "reference_cell_line.yaml"


def _run_queue_wait_s() -> float:
    """How long the calling thread has waited, runnable, for a CPU since it began (Linux schedstat; 0 elsewhere)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class Probe:
    """What the probes inside the server saw since the last :meth:`reset`."""

    lags: list[float] = field(default_factory=list)
    cpu_waits: list[float] = field(default_factory=list)
    """For each lag: the part of it the loop's thread spent runnable, waiting for a CPU the machine did not have."""
    gc_pauses: list[float] = field(default_factory=list)
    _gc_began: float = 0.0

    def reset(self) -> None:
        self.lags, self.cpu_waits, self.gc_pauses = [], [], []

    def on_gc(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_began)

    def own_stall(self) -> float:
        """The longest lag less the time the loop's thread waited for a CPU meanwhile: what the server's own work
        (its threads, the interpreter lock, collections) held the loop up, apart from an oversubscribed machine."""
        return max((lag - wait for lag, wait in zip(self.lags, self.cpu_waits, strict=True)), default=0.0)

    async def run(self) -> None:
        waited = _run_queue_wait_s()
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            lag = time.perf_counter() - t0 - 0.001
            now_waited = _run_queue_wait_s()
            self.lags.append(lag)
            self.cpu_waits.append(min(lag, max(0.0, now_waited - waited)))
            waited = now_waited


def _cpu() -> tuple[float, float, float]:
    """(wall s, CPU s of the whole machine incl. steal, CPU s of this process and its waited-for children)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in f.readline().split()[1:9])
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + _live_descendants_cpu() / tick
    return time.perf_counter(), (user + nice + system + steal) / tick, ours


def _live_descendants_cpu() -> int:
    """CPU ticks of this process's running descendants (the window-query workers, children of the forkserver, and
    clients not yet waited for): ``RUSAGE_CHILDREN`` counts a child only once it is waited for."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    me, total = os.getpid(), 0
    for pid in parent:
        p = parent[pid]
        while p > 1 and p != me:
            p = parent.get(p, 0)
        if p == me:
            total += ticks[pid]
    return total


def _quantile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- the clients (another process) ------------------------------------------------------------------------------
def _elsewhere() -> None:
    """Lower this process's CPU priority by ``--remote-nice``: it stands in for another machine (a browser, a gateway,
    the plant), which would not take the service's cores."""
    os.nice(int(os.environ.get(_REMOTE_NICE, "0")))


_REMOTE_NICE = "GIGATWIN_BENCH_REMOTE_NICE"


def _status_client(url: str, line: str, seconds: float, go: Any, out: Any) -> None:
    _elsewhere()
    out.put(("ready", None))
    go.wait()
    stop_at = time.time() + seconds
    lat = []
    with httpx.Client(base_url=url, timeout=30) as http:
        while time.time() < stop_at:
            t0 = time.perf_counter()
            r = http.get(f"/api/v1/lines/{line}/status")
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
            time.sleep(max(0.0, 0.02 - (time.perf_counter() - t0)))
    out.put(("status", lat))


def _window_client(url: str, line: str, start_h: Any, seconds: float, go: Any, out: Any) -> None:
    _elsewhere()
    out.put(("ready", None))
    go.wait()
    stop_at = time.time() + seconds
    done = 0
    with httpx.Client(base_url=url, timeout=120) as http:
        while time.time() < stop_at:
            for path in ("oee", "downtime", "stops"):
                # the whole retained history: its start moves on as the history is cut, so read it each time (and round
                # it up: an ISO time holds microseconds, and a start rounded down would be before the history)
                start = datetime.fromtimestamp(start_h.value * 3600 + 1e-3, UTC).isoformat()
                r = http.get(f"/api/v1/lines/{line}/{path}", params={"start": start})
                assert r.status_code == 200, r.text
                done += 1
    out.put(("window", done))


def _probe_client(url: str, seconds: float, go: Any, out: Any) -> None:
    _elsewhere()
    out.put(("ready", None))
    go.wait()
    stop_at = time.time() + seconds
    done = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        while time.time() < stop_at:
            http.get("/metrics")
            http.get("/api/v1/health/ready")
            done += 2
            time.sleep(0.1)
    out.put(("probe", done))


def _clients(
    url: str, line: str, start_h: Any, seconds: float, stress: bool, began: Callable[[], None], windows: bool = True
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=_status_client, args=(url, line, seconds, go, out))]
    if stress:
        procs += [ctx.Process(target=_window_client, args=(url, line, start_h, seconds, go, out)) for _ in range(2 * windows)]
        procs.append(ctx.Process(target=_probe_client, args=(url, seconds, go, out)))
    for p in procs:
        p.start()
    for _ in procs:
        assert out.get(timeout=120)[0] == "ready"
    began()  # the clients are up: the phase begins
    go.set()
    results: dict[str, Any] = {"status": [], "window": 0, "probe": 0}
    for _ in procs:
        kind, value = out.get(timeout=seconds + 300)
        if kind == "status":
            results["status"] += value
        else:
            results[kind] += value
    for p in procs:
        p.join()
    return results


# -- the server (this process) ----------------------------------------------------------------------------------
def _flood(rt: LineRuntime, stop: threading.Event, taken: list[int], direct: bool) -> None:
    """Every 0.1 s, 2,000 state reports 30 minutes late: as messages through the pipeline (decoded, stored, handed
    to the live state on the pipeline's thread, as late telemetry comes), or ``direct``: fed to the live state from
    this thread (a third busy thread in the server, beside the pipeline and the demo feed)."""
    first = rt.line.stations[0].id
    topic = rt.ingest.topics.topic(first, Channel.STATE)
    source = rt.ingest.topics.parse(topic)[0]
    n = 0
    while not stop.wait(0.1):
        clock = rt.live.snapshot.clock_h
        if clock is None:
            continue
        if direct:
            for i in range(2000):
                state = MachineState.DOWN if i % 2 else MachineState.WORKING
                rt.live(StateChanged(clock - 0.5 + i * 1e-6, first, 0, state, ""))
            rt.live.end_batch()
        else:
            late_ms = round((clock - 0.5) * MS_PER_HOUR)
            for i in range(2000):
                state = MachineState.DOWN if i % 2 else MachineState.WORKING
                ts = late_ms + n  # each report its own millisecond: none is a duplicate of another
                n += 1
                payload = encode(StateReading(source, 0, ts, state, to_packml(state), "", None))
                rt.ingest.submit(Delivery(topic, payload, ts + 1_800_000, (0, 0)))
        taken[0] += 2000


# -- the plant mode (--plant) -----------------------------------------------------------------------------------
def _load(name: str) -> Any:
    """tests/integration/<name>.py, imported by path (simulations never imports the tests package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "tests" / "integration" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _plant(mqtt_url: str, origin_ms: int, speed: float, stop: Any) -> None:
    """The virtual plant publishing the reference line from ``origin_ms`` at ``speed`` (another process)."""
    _elsewhere()
    from connectors.feed import VirtualPlant, warm_start
    from connectors.linefile import read_line
    from connectors.mqtt import MqttPublisher, parse_mqtt_url
    from connectors.telemetry import Topics

    line = read_line(REFERENCE)
    publisher = MqttPublisher(parse_mqtt_url(mqtt_url, client_id="bench-plant"))
    publisher.start()
    plant = VirtualPlant(
        line,
        topics=Topics("gigatwin", "plant1", line.name),
        publisher=publisher,
        speed=speed,
        seed=1,
        origin_ms=origin_ms,
        start=warm_start(line, 1, 168.0),
    )
    stopping = threading.Event()

    def relay() -> None:  # the bench's multiprocessing event to the plant's threading one
        stop.wait()
        stopping.set()

    threading.Thread(target=relay, daemon=True).start()
    plant.run(stop=stopping)
    publisher.stop()


def _late_flood(mqtt_url: str, clock_h: Any, go: Any, stop: Any, sent: Any) -> None:
    """Every 0.1 s, 2,000 state reports 30 minutes behind the line's clock, as MQTT messages (another process)."""
    _elsewhere()
    from connectors.linefile import read_line
    from connectors.mqtt import MqttPublisher, parse_mqtt_url
    from connectors.telemetry import Channel, StateReading, Topics, encode, to_packml

    line = read_line(REFERENCE)
    topics = Topics("gigatwin", "plant1", line.name)
    first = line.stations[0].id
    topic = topics.topic(first, Channel.STATE)
    source = topics.parse(topic)[0]
    publisher = MqttPublisher(parse_mqtt_url(mqtt_url, client_id="bench-late"))
    publisher.start()
    go.wait()
    n = 0
    while not stop.wait(0.1):
        late_ms = round((clock_h.value - 0.5) * MS_PER_HOUR)
        for i in range(2000):
            state = MachineState.DOWN if i % 2 else MachineState.WORKING
            publisher.publish(topic, encode(StateReading(source, 0, late_ms + n, state, to_packml(state), "", None)))
            n += 1
        sent.value = n
    publisher.flush()
    publisher.stop()


def _plant_run(args: argparse.Namespace, workdir: Path, pipeline_process: bool) -> list[tuple[Any, ...]]:
    """One service (the pipeline in its own process or not) on real parts: the quiet and the stress phase's rows."""
    mqtt_server, influx_server = _load("mqtt_server"), _load("influx_server")
    ctx = mp.get_context("spawn")
    rows: list[tuple[Any, ...]] = []
    mode = "process" if pipeline_process else "in-proc"
    with (
        mqtt_server.MosquittoServer(workdir / f"mqtt-{mode}") as broker,
        influx_server.InfluxServer(workdir / f"influx-{mode}") as influx,
    ):
        settings = load_settings(
            source="mqtt",
            mqtt_url=broker.url,
            mqtt_client_id=f"bench-{mode}",
            host="127.0.0.1",
            auth_disabled=True,
            line_file=REFERENCE,
            store_url=f"influxdb://{influx.url.removeprefix('http://')}/bench",
            spool_dir=workdir / f"spool-{mode}",
            history_hours=48.0,
            max_lead_s=7 * 86400.0,  # the plant's clock runs ahead of the wall clock at --demo-speed
            pipeline_process=pipeline_process,
            **({} if args.window_workers is None else {"window_workers": args.window_workers}),
        )
        server, thread, url, probe, app = _start_server(settings)
        rt = app.state.runtime
        plant_stop = ctx.Event()
        # the plant's clock passes the history asked for, then both phases, and stays in the past
        origin_ms = round(time.time() * 1000) - round(3 * args.history_h * MS_PER_HOUR)
        plant = ctx.Process(target=_plant, args=(broker.url, origin_ms, args.demo_speed, plant_stop))
        plant.start()
        try:
            t0 = time.monotonic()
            while (rt.snapshot.clock_h or 0) - (rt.snapshot.history_start_h or 1e18) < args.history_h:
                if time.monotonic() - t0 > 600:
                    raise SystemExit("the live state did not fill its history in 10 min")
                time.sleep(0.2)
            shared_start = ctx.Value("d", rt.snapshot.history_start_h or 0.0, lock=False)
            shared_clock = ctx.Value("d", rt.snapshot.clock_h or 0.0, lock=False)

            def follow() -> None:
                while not server.should_exit:
                    snapshot = rt.snapshot
                    shared_start.value = snapshot.history_start_h or shared_start.value
                    shared_clock.value = snapshot.clock_h or shared_clock.value
                    time.sleep(0.1)

            threading.Thread(target=follow, daemon=True).start()
            print(f"{mode}: server on {url}; live history {(rt.snapshot.clock_h or 0) - shared_start.value:.1f} h; measuring")
            for phase, seconds, stress in (("quiet", args.quiet_s, False), ("stress", args.stress_s, True)):
                flood_go, flood_stop, late = ctx.Event(), ctx.Event(), ctx.Value("q", 0, lock=False)
                flood = ctx.Process(target=_late_flood, args=(broker.url, shared_clock, flood_go, flood_stop, late))
                if stress and "flood" not in args.without:
                    flood.start()
                marks: list[int] = []
                cpu0: list[float] = []

                def began(
                    stress: bool = stress, flood_go: Any = flood_go, marks: list[int] = marks, cpu0: list[float] = cpu0
                ) -> None:
                    if stress and "outage" not in args.without:
                        os.kill(influx.proc.pid, signal.SIGSTOP)  # the database stops answering
                    flood_go.set()
                    marks[:] = [rt.snapshot.version, rt.ingest_stats().events]
                    cpu0[:] = _cpu()
                    probe.reset()

                results = _clients(url, rt.line.name, shared_start, seconds, stress, began, windows="windows" not in args.without)
                row = _row(f"{mode} {phase}", seconds, results, probe, marks, cpu0, rt)
                flood_stop.set()
                if stress and "flood" not in args.without:
                    flood.join(30)
                rows.append((*row[:9], late.value, *row[9:]))
                if stress and "outage" not in args.without:
                    os.kill(influx.proc.pid, signal.SIGCONT)
        finally:
            plant_stop.set()
            plant.join(30)
            server.should_exit = True
            thread.join(120)
    return rows


def _row(
    phase: str, seconds: float, results: dict[str, Any], probe: Probe, marks: list[int], cpu0: list[float], rt: Any
) -> tuple[Any, ...]:
    """The phase's figures (all but the late events sent, which the caller adds after the 9th)."""
    wall1, busy1, ours1 = _cpu()
    wall0, busy0, ours0 = cpu0
    other = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / (wall1 - wall0)
    v0, events0 = marks
    lags, pauses, status = probe.lags, probe.gc_pauses, results["status"]
    return (
        phase,
        max(lags) * 1000,
        _quantile(lags, 0.999) * 1000,
        max(pauses, default=0.0) * 1000,
        max(status) * 1000,
        _quantile(status, 0.99) * 1000,
        len(lags),
        len(status),
        results["window"],
        (rt.ingest_stats().events - events0) / seconds,
        rt.snapshot.version - v0,
        other,
        probe.own_stall() * 1000,
    )


def _start_server(settings: Any) -> tuple[uvicorn.Server, threading.Thread, str, Probe, FastAPI]:
    """The app under uvicorn in a thread of this process, with the loop-lag probe on its event loop and the GC probe."""
    app = create_app(settings)
    probe = Probe()
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            task = asyncio.create_task(probe.run())
            try:
                yield state
            finally:
                task.cancel()

    app.router.lifespan_context = lifespan
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", loop="asyncio", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    if probe.on_gc not in gc.callbacks:
        gc.callbacks.append(probe.on_gc)
    return server, thread, f"http://127.0.0.1:{port}", probe, app


def _print(rows: list[tuple[Any, ...]]) -> None:
    heads = ["phase", "loop max ms", "p99.9 ms", "GC max ms", "status max", "p99 ms", "loop wakes", "status n"]
    heads += ["windows", "late ev", "ingest ev/s", "published", "other CPU", "own max ms"]
    print(" ".join(f"{h:>15}" if i == 0 else f"{h:>11}" for i, h in enumerate(heads)))
    for r in rows:
        cells = [f"{r[0]:>15}", *(f"{x:11.1f}" for x in r[1:6]), *(f"{x:11d}" for x in r[6:10])]
        cells += [f"{r[10]:11.0f}", f"{r[11]:11d}", f"{r[12]:11.2f}", f"{r[13]:11.1f}"]
        print(" ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet-s", type=float, default=8.0)
    parser.add_argument("--stress-s", type=float, default=15.0)
    parser.add_argument("--history-h", type=float, default=12.0, help="hours of live history before measuring")
    parser.add_argument("--demo-speed", type=float, default=3600.0)
    parser.add_argument(
        "--switch-interval-ms", type=float, default=None, help="sys.setswitchinterval for the server (default: Python's 5 ms)"
    )
    parser.add_argument(
        "--window-workers",
        type=int,
        default=None,
        help="processes for window queries, 0: worker threads (default: the service's default setting)",
    )
    parser.add_argument(
        "--without", choices=["flood", "windows", "outage"], action="append", default=[], help="leave one out of the stress"
    )
    parser.add_argument(
        "--late-direct",
        action="store_true",
        help="feed the late events to the live state from a thread of the bench, not as messages through the pipeline",
    )
    parser.add_argument(
        "--plant",
        action="store_true",
        help="real parts (mosquitto, influxd, a plant process); the service as it ships, then with the pipeline in-process",
    )
    parser.add_argument(
        "--modes",
        default="process,in-proc",
        help="with --plant: which services to measure, in order (process: as it ships; in-proc: the pipeline in-process)",
    )
    parser.add_argument(
        "--remote-nice",
        type=int,
        default=0,
        help="with --plant: lower the CPU priority of the clients, the plant and the late flood by this much (os.nice),"
        " as if they ran on other machines; the broker and the database keep theirs (they often share the service's host)",
    )
    args = parser.parse_args()
    os.environ[_REMOTE_NICE] = str(args.remote_nice)
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    if args.plant:
        workdir = Path(tempfile.mkdtemp(prefix="gigatwin-bench-stall-"))
        rows = []
        for mode in args.modes.split(","):
            if mode not in ("process", "in-proc"):
                parser.error(f"--modes: {mode!r} is neither process nor in-proc")
            rows += _plant_run(args, workdir, pipeline_process=mode == "process")
        _print(rows)
        print(
            "loop: how late a 1-ms sleep on the server's event loop woke (its longest stall); GC: the longest collection\n"
            "in the server's process; status: client-side latency; windows: /oee, /downtime and /stops over the whole\n"
            "history answered; ingest ev/s: events the live state took; other CPU: cores used by the rest of the machine\n"
            "(the plant, broker, database, clients and, for 'process', the pipeline's process) or stolen meanwhile"
        )
        return

    workdir = Path(tempfile.mkdtemp(prefix="gigatwin-bench-stall-"))
    settings = load_settings(
        source="demo",
        pipeline_process=False,  # this form reaches into the pipeline (rt.ingest, rt.live): --plant measures both
        host="127.0.0.1",
        auth_disabled=True,
        line_file=REFERENCE,
        store_url=f"sqlite:{workdir / 'bench.db'}",
        demo_speed=args.demo_speed,
        demo_warmup_hours=168.0,
        history_hours=48.0,
        **({} if args.window_workers is None else {"window_workers": args.window_workers}),
    )
    server, thread, url, probe, app = _start_server(settings)
    rt: LineRuntime = app.state.runtime
    line = rt.line.name
    t0 = time.monotonic()
    while (rt.live.snapshot.clock_h or 0) - (rt.live.snapshot.history_start_h or 0) < args.history_h:
        if time.monotonic() - t0 > 600:
            raise SystemExit("the live state did not fill its history in 10 min")
        time.sleep(0.2)
    start_h = rt.live.snapshot.history_start_h or 0.0
    shared_start = mp.get_context("spawn").Value("d", start_h, lock=False)

    def follow_start() -> None:
        while not server.should_exit:
            shared_start.value = rt.live.snapshot.history_start_h or shared_start.value
            time.sleep(0.1)

    threading.Thread(target=follow_start, daemon=True).start()
    pool = getattr(rt.live, "window_pool", None)  # like the service: the lifespan made it (None: threads)
    where = f"{getattr(settings, 'window_workers', 0)} process(es)" if pool is not None else "worker threads"
    print(
        f"server on {url}; live history {(rt.live.snapshot.clock_h or 0) - start_h:.1f} h; window queries in {where}; measuring"
    )

    rows = []
    stressed = "stress" + "".join(f"-{w}" for w in args.without)
    for phase, seconds, stress in (("quiet", args.quiet_s, False), (stressed, args.stress_s, True)):
        stop, taken = threading.Event(), [0]
        flood = threading.Thread(target=_flood, args=(rt, stop, taken, args.late_direct), daemon=True)
        health = rt.store.health
        marks: list[int] = []
        cpu0: list[float] = []

        def began(
            stress: bool = stress, flood: threading.Thread = flood, marks: list[int] = marks, cpu0: list[float] = cpu0
        ) -> None:
            if stress and "outage" not in args.without:

                def outage() -> Health:
                    time.sleep(10.0)
                    return Health(False, "the store does not answer (simulated outage)", 0)

                rt.store.health = outage  # type: ignore[method-assign]
            if stress and "flood" not in args.without:
                flood.start()
            marks[:] = [rt.live.snapshot.version, rt.ingest.stats.events]
            cpu0[:] = _cpu()
            probe.reset()

        results = _clients(url, line, shared_start, seconds, stress, began, windows="windows" not in args.without)
        row = _row(phase, seconds, results, probe, marks, cpu0, rt)
        stop.set()
        if flood.is_alive():
            flood.join()
        if stress:
            rt.store.health = health  # type: ignore[method-assign]
        rows.append((*row[:9], taken[0], *row[9:]))
    _print(rows)
    print(
        "loop: how late a 1-ms sleep on the server's event loop woke (its longest stall); GC: the longest collection;\n"
        "loop wakes: the probe's 1-ms sleeps that ran; status: client-side latency; windows: /oee, /downtime and /stops\n"
        "over the whole history answered; other CPU: cores used by the rest of the machine or stolen by the hypervisor\n"
        "meanwhile (> 0.1 disturbs the figures)"
    )
    server.should_exit = True
    thread.join(30)


if __name__ == "__main__":
    main()
