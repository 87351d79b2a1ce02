"""The pipeline in a process of its own, and :class:`RemoteLine`, the API's side of it.

``serve`` and ``demo`` run the line's runtime (:func:`api.runtime.build_runtime`: the source, the ingest pipeline,
the store's writes, the live state, the demo feed and the window-query pool) in a child process, and the API reads
it through a :class:`RemoteLine` (an :class:`api.served.ServedLine`).

Why: CPython runs one thread of a process at a time. With the pipeline and the feed busy in the API's own process,
the event loop waited for the interpreter lock 10-50 ms at a time under load (``simulations/bench/
bench_loop_stall.py``), however little the loop itself had to do; an idle loop alone waits about 3 ms. Here the API's
interpreter holds the event loop and one thread that sleeps on a pipe and wakes about 20 times a second for a few
kilobytes: the latest :class:`~api.live.LiveSnapshot`, the counters and the state changes for the stream.

The wire, two one-way pipes of pickled tuples:

- child to parent: ``("ready", _Ready)`` or ``("error", exception)`` once started; then ``("report", _Report)``
  after each publication of the live state (at most every ``REPORT_MIN_S``, at least every ``REPORT_MAX_S``) and
  ``("reply", id, ok, value)`` for each call;
- parent to child: ``("call", id, op, args)``, with ``op`` one of ``window``, ``throughput``, ``set_plan``,
  ``forecast``, ``latest_forecast``, ``calibration``, ``whatif_basis`` or ``store.<reader method>``, each answered
  from a thread of the child; ``("stop",)``.

The child stops its runtime (the feed, then the pipeline, which drains and stores what it took) when told to, or
when the parent's end of the pipe closes (the API's process died): it never outlives the service. It ignores SIGINT
and SIGTERM, which a terminal or a service manager also sends to it: the parent decides when it stops, after the
HTTP server has drained. If it dies, :attr:`RemoteLine.failed` is set and the service exits non-zero, as when a task
fails for good in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import multiprocessing as mp
import pickle
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from api.errors import ApiError
from api.live import LiveSnapshot, SnapshotCache, start_window_pool, use_window_pool
from api.runtime import LineRuntime, build_runtime, ingest_counters
from api.settings import PipelineSettings
from api.stream import Changes, StreamHub
from api.supervisor import TaskStatus
from connectors.errors import ConnectorError
from connectors.ingest import IngestStats
from connectors.linefile import read_line
from connectors.stores.base import Bucket, DeadLetter, Health, StoredForecast, StoredPoint
from connectors.telemetry import Topics
from twin.calibration import MIN_FAILURES
from twin.errors import TwinError
from twin.knowledge import LineKnowledge
from twin.schema import Line
from twin.status import constraint_of

__all__ = ["REPORT_MAX_S", "REPORT_MIN_S", "PipelineGone", "RemoteLine", "RemoteStore"]

log = logging.getLogger("gigatwin.line_process")

T = TypeVar("T")

REPORT_MIN_S = 0.05
"""The shortest time between two reports: the API reads a state at most this much older than the pipeline's."""
REPORT_MAX_S = 0.25
"""The longest time between two reports (counters and tasks move without a publication too)."""

_STORE_READS = frozenset({"health", "range", "last", "first_ms", "aggregate", "dead_letters", "dead_letter_count", "forecasts"})


class PipelineGone(ApiError):
    """The pipeline's process is not running (it died, or the service is stopping): a 503."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, f"the pipeline is not running: {detail}")


@dataclass(frozen=True)
class _Report:
    snapshot: LiveSnapshot | None
    """None: unchanged since the previous report."""
    stats: IngestStats
    tasks: list[TaskStatus]
    source_ok: bool
    failures: list[TaskStatus]
    changes: Changes


@dataclass(frozen=True)
class _Ready:
    describe: str
    dead_letters_before: int
    report: _Report


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else the nearest kind the service tells apart (a connector's error, the
    twin's, a bad value; else a RuntimeError) with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        for kind in (ConnectorError, TwinError, ValueError):
            if isinstance(exc, kind):
                return kind(str(exc))
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# -- the child --------------------------------------------------------------------------------------------------
class _Host:
    """The runtime in the child: reports its state to the parent and answers the parent's calls."""

    def __init__(self, runtime: LineRuntime, out: Connection) -> None:
        self.runtime = runtime
        self._out = out
        self._send_lock = threading.Lock()
        self._published = threading.Event()
        self._stop = threading.Event()
        self._sent_version = -1
        # Window queries wait on the pool's processes, up to seconds each: they get threads of their own, so that a
        # crowd of them queues here without holding up the plan, the store's reads and its health probe.
        self._windows = ThreadPoolExecutor(max_workers=runtime.live.window_queries, thread_name_prefix="gigatwin-window")
        self._calls = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gigatwin-call")
        # forecasts on demand take seconds: one at a time, never in the way of the quick calls
        self._forecasts = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gigatwin-forecast")
        # requests for the default forecast wait for the first one: apart, so that they hold up nothing else
        self._waits = ThreadPoolExecutor(max_workers=8, thread_name_prefix="gigatwin-forecast-wait")
        runtime.live.on_publish = self._published.set

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self._out.send(message)

    def report(self) -> _Report:
        rt = self.runtime
        snapshot = rt.live.snapshot
        fresh = snapshot if snapshot.version != self._sent_version else None
        self._sent_version = snapshot.version
        return _Report(fresh, rt.ingest_stats(), rt.tasks(), rt.source_ok, rt.failures(), rt.hub.drain())

    def _report_loop(self) -> None:
        while not self._stop.is_set():
            self._published.wait(REPORT_MAX_S)
            self._published.clear()
            try:
                self.send(("report", self.report()))
            except OSError:
                return  # the parent is gone: the main thread sees it too and stops
            self._stop.wait(REPORT_MIN_S)

    def _answer(self, call_id: int, op: str, args: tuple[Any, ...]) -> None:
        try:
            message: tuple[Any, ...] = ("reply", call_id, True, self._do(op, args))
        except BaseException as exc:
            message = ("reply", call_id, False, _portable(exc))
        try:
            self.send(message)
        except OSError:
            return  # the parent is gone
        except Exception as exc:  # the answer could not be pickled: the caller must not wait for it forever
            self.send(("reply", call_id, False, RuntimeError(f"the answer could not be sent: {exc}")))

    def _do(self, op: str, args: tuple[Any, ...]) -> Any:
        live = self.runtime.live
        if op == "window":
            fn, start_h, end_h, clamp, *rest = args
            view, w0 = live.window_view(start_h, clamp)
            return live.run_window(fn, self.runtime.line, view, w0, end_h, *rest)
        if op == "throughput":
            return live.throughput(*args)
        if op == "set_plan":
            return live.set_plan(*args)
        if op == "forecast":
            return self.runtime.forecast_now(*args)
        if op == "latest_forecast":
            return self.runtime.latest_forecast_now()
        if op == "calibration":
            return self.runtime.calibration_now(*args)
        if op == "whatif_basis":
            return self.runtime.whatif_basis_now(*args)
        if op.startswith("store.") and op[6:] in _STORE_READS:
            positional, keywords = args
            return getattr(self.runtime.store, op[6:])(*positional, **keywords)
        raise ValueError(f"no call {op!r}")

    def serve(self, inbox: Connection) -> None:
        """Report and answer until told to stop or until the parent is gone."""
        reporter = threading.Thread(target=self._report_loop, name="gigatwin-report", daemon=True)
        reporter.start()
        try:
            while True:
                try:
                    message = inbox.recv()
                except (EOFError, OSError):
                    log.warning("the service's process is gone: stopping the pipeline")
                    return
                if message[0] == "stop":
                    return
                _, call_id, op, args = message
                pool = {
                    "window": self._windows,
                    "forecast": self._forecasts,
                    "calibration": self._forecasts,  # seconds of replay and fits: not in the pool of quick calls
                    "latest_forecast": self._waits,
                }.get(op, self._calls)
                pool.submit(self._answer, call_id, op, args)
        finally:
            self._stop.set()
            self._published.set()
            reporter.join(5)
            self._windows.shutdown(wait=False, cancel_futures=True)
            self._calls.shutdown(wait=False, cancel_futures=True)
            self._forecasts.shutdown(wait=False, cancel_futures=True)
            self._waits.shutdown(wait=False, cancel_futures=True)


def _child(settings: PipelineSettings, line: Line, out: Connection, inbox: Connection, log_level: int, log_format: str) -> None:
    """The pipeline process's main: build and start the runtime, say so, serve the parent, stop."""
    # The parent decides when the pipeline stops (after the HTTP server drained): a Ctrl-C in the terminal or a
    # service manager's SIGTERM reaches this process too, and must not stop it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format=log_format)
    pool = None
    try:
        pool = start_window_pool(settings.window_workers)
        runtime = build_runtime(settings, line)
    except BaseException as exc:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        out.send(("error", _portable(exc)))
        return
    if pool is not None:
        use_window_pool(runtime.live, pool, settings.window_workers)
    try:
        runtime.start()
    except BaseException as exc:
        runtime.stop()
        out.send(("error", _portable(exc)))
        return
    # What exists now lives as long as the process: out of the collector's sight (see api.app).
    gc.collect()
    gc.freeze()
    host = _Host(runtime, out)
    try:
        host.send(("ready", _Ready(runtime.describe(), runtime.dead_letters_before, host.report())))
        host.serve(inbox)
    finally:
        runtime.stop()
        current = runtime.live.window_pool
        if current is not None:
            current.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(OSError):  # the parent is gone
            out.send(("stopped", runtime.ingest.stats))


# -- the parent -------------------------------------------------------------------------------------------------
class RemoteStore:
    """The store's read side, read in the pipeline's process (which owns the store and its spool): each call blocks
    its (worker) thread until the answer comes."""

    def __init__(self, remote: RemoteLine) -> None:
        self._remote = remote

    def _read(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._remote.call(f"store.{method}", (args, kwargs)).result()

    def health(self) -> Health:
        """Whether a real write succeeds now, and the batches waiting in the spool."""
        result: Health = self._read("health", (), {})
        return result

    def range(self, *args: Any, **kwargs: Any) -> list[StoredPoint]:
        """Raw points of a channel (:meth:`connectors.stores.base.StoreReader.range`)."""
        result: list[StoredPoint] = self._read("range", args, kwargs)
        return result

    def last(self, *args: Any, **kwargs: Any) -> list[StoredPoint]:
        """The latest point of every series (:meth:`connectors.stores.base.StoreReader.last`)."""
        result: list[StoredPoint] = self._read("last", args, kwargs)
        return result

    def first_ms(self, *args: Any, **kwargs: Any) -> int | None:
        """The time of a channel's oldest point (:meth:`connectors.stores.base.StoreReader.first_ms`)."""
        result: int | None = self._read("first_ms", args, kwargs)
        return result

    def aggregate(self, *args: Any, **kwargs: Any) -> list[Bucket]:
        """Buckets of a numeric field (:meth:`connectors.stores.base.StoreReader.aggregate`)."""
        result: list[Bucket] = self._read("aggregate", args, kwargs)
        return result

    def dead_letters(self, *args: Any, **kwargs: Any) -> list[DeadLetter]:
        """The latest dead letters (:meth:`connectors.stores.base.StoreReader.dead_letters`)."""
        result: list[DeadLetter] = self._read("dead_letters", args, kwargs)
        return result

    def dead_letter_count(self, *args: Any, **kwargs: Any) -> int:
        """How many dead letters are stored (:meth:`connectors.stores.base.StoreReader.dead_letter_count`)."""
        result: int = self._read("dead_letter_count", args, kwargs)
        return result

    def forecasts(self, *args: Any, **kwargs: Any) -> list[StoredForecast]:
        """The stored forecasts of a span (:meth:`connectors.stores.base.StoreReader.forecasts`)."""
        result: list[StoredForecast] = self._read("forecasts", args, kwargs)
        return result


class RemoteLine:
    """The watched line with its pipeline in a child process (:mod:`api.line_process`): what the API reads.

    :meth:`start` starts the process and returns once the runtime runs there (its live state rebuilt from the
    store) or raises what stopped it; :meth:`stop` stops it (the pipeline drains and stores what it took)."""

    def __init__(self, settings: PipelineSettings, line: Line | None = None, *, start_timeout_s: float = 900.0) -> None:
        self.settings = settings
        self.line = line if line is not None else read_line(settings.line_file)
        self.topics = Topics(settings.topic_prefix, settings.site, self.line.name)
        self.hub = StreamHub(self.line, self)
        self.hub.extra = self.counters
        self.start_timeout_s = start_timeout_s
        self._constraint = constraint_of(self.line)[1].id
        self._store = RemoteStore(self)
        self._cache = SnapshotCache()
        self._report: _Report | None = None
        self._snapshot: LiveSnapshot | None = None
        self._describe = ""
        self._dead_letters_before = 0
        self._failed = threading.Event()
        self._failures: list[TaskStatus] = []
        self._calls: dict[int, Future[Any]] = {}
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._stopping = False
        self._gone = ""
        self._process: mp.process.BaseProcess | None = None
        self._inbox: Connection | None = None
        self._outbox: Connection | None = None
        self._receiver: threading.Thread | None = None

    # -- life ----------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the pipeline's process and wait until its runtime runs; raise what kept it from starting."""
        # spawn: a fork would copy the locks of this process's threads (uvicorn's, the loop's) in whatever state
        ctx = mp.get_context("spawn")
        inbox, child_out = ctx.Pipe(duplex=False)
        child_in, outbox = ctx.Pipe(duplex=False)
        root = logging.getLogger()
        fmt = root.handlers[0].formatter._fmt if root.handlers and root.handlers[0].formatter else None
        process = ctx.Process(
            target=_child,
            args=(self.settings, self.line, child_out, child_in, root.level, fmt or logging.BASIC_FORMAT),
            name=f"gigatwin-pipeline-{self.line.name}",
        )
        process.start()
        child_out.close()  # the child's ends: only the child holds them, so its death closes the pipes
        child_in.close()
        self._process, self._inbox, self._outbox = process, inbox, outbox
        deadline = time.monotonic() + self.start_timeout_s
        while not inbox.poll(0.2):
            if not process.is_alive():
                process.join()
                raise RuntimeError(f"the pipeline process exited with code {process.exitcode} before it was ready")
            if time.monotonic() > deadline:
                self._kill()
                raise RuntimeError(f"the pipeline process was not ready within {self.start_timeout_s:g} s")
        try:
            message = inbox.recv()
        except EOFError:
            process.join()
            raise RuntimeError(f"the pipeline process exited with code {process.exitcode} before it was ready") from None
        if message[0] == "error":
            process.join(30)
            raise message[1]
        ready: _Ready = message[1]
        self._describe, self._dead_letters_before = ready.describe, ready.dead_letters_before
        self._take(ready.report)
        self._receiver = threading.Thread(target=self._receive, name="gigatwin-pipeline-reports", daemon=True)
        self._receiver.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Tell the pipeline's process to stop (the feed, then the pipeline drains and stores, then the store closes)
        and wait for it; killed after ``timeout_s``."""
        self._stopping = True
        process = self._process
        if process is None:
            return
        try:
            with self._send_lock:
                if self._outbox is not None:
                    self._outbox.send(("stop",))
        except OSError:
            pass  # already gone
        process.join(timeout_s)
        if process.is_alive():
            log.error("the pipeline process did not stop within %g s; killing it", timeout_s)
            self._kill()
        if self._receiver is not None:
            self._receiver.join(5)
        for conn in (self._inbox, self._outbox):
            if conn is not None:
                conn.close()

    def _kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    @property
    def pid(self) -> int | None:
        """The pipeline process's id (None before :meth:`start`)."""
        return None if self._process is None else self._process.pid

    # -- the wire ------------------------------------------------------------------------------------------------
    def _take(self, report: _Report) -> None:
        self._newer(report.snapshot)
        self._report = report
        self.hub.take(report.changes)
        if report.failures and not self._failed.is_set():
            self._failures = report.failures
            self._failed.set()

    def _receive(self) -> None:
        assert self._inbox is not None
        while True:
            try:
                message = self._inbox.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "report":
                self._take(message[1])
            elif kind == "reply":
                _, call_id, ok, value = message
                future = self._calls.pop(call_id, None)
                if future is not None:
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
            elif kind == "stopped":
                self._report = _Report(None, message[1], [], False, [], ([], 0, frozenset()))
        self._lost()

    def _lost(self) -> None:
        process = self._process
        assert process is not None
        process.join(5)
        self._gone = f"its process exited with code {process.exitcode}"
        if not self._stopping:
            log.error("the pipeline process died (exit code %s)", process.exitcode)
            error = f"the pipeline process exited with code {process.exitcode}"
            self._failures = [TaskStatus("pipeline", "failed", 0, error, time.monotonic())]
            self._failed.set()
        for call_id in list(self._calls):
            future = self._calls.pop(call_id, None)
            if future is not None:
                future.set_exception(PipelineGone(self._gone))

    def call(self, op: str, args: tuple[Any, ...]) -> Future[Any]:
        """Ask the pipeline's process for ``op(*args)``; its answer (or its exception) in the future."""
        future: Future[Any] = Future()
        if self._gone or self._outbox is None:
            future.set_exception(PipelineGone(self._gone or "it has not started"))
            return future
        call_id = next(self._ids)
        self._calls[call_id] = future
        try:
            with self._send_lock:
                self._outbox.send(("call", call_id, op, args))
        except OSError:
            self._calls.pop(call_id, None)
            future.set_exception(PipelineGone("its pipe is closed"))
        return future

    async def _ask(self, op: str, *args: Any) -> Any:
        return await asyncio.wrap_future(self.call(op, args))

    # -- api.served.ServedLine -----------------------------------------------------------------------------------
    @property
    def store(self) -> RemoteStore:
        """The store's read side, in the pipeline's process."""
        return self._store

    @property
    def snapshot(self) -> LiveSnapshot:
        """The latest live state the pipeline's process reported."""
        if self._snapshot is None:
            raise RuntimeError("the pipeline process has not started")
        return self._snapshot

    @property
    def constraint(self) -> str:
        """The line's constraint station."""
        return self._constraint

    def cached(self, key: str, build: Callable[[LiveSnapshot], T]) -> T:
        """``build(snapshot)`` of the latest snapshot, reused while it is the latest."""
        return self._cache.get(self.snapshot, key, build)

    def _latest(self) -> _Report:
        if self._report is None:
            raise RuntimeError("the pipeline process has not started")
        return self._report

    def ingest_stats(self) -> IngestStats:
        """The pipeline's counters as last reported."""
        return self._latest().stats

    def tasks(self) -> list[TaskStatus]:
        """The pipeline's background tasks as last reported (the pipeline's process itself, once it died)."""
        if self._failures and self._gone:
            return self._failures
        return self._latest().tasks

    @property
    def source_ok(self) -> bool:
        """Whether telemetry could come in at the last report."""
        return not self._gone and self._latest().source_ok

    @property
    def failed(self) -> threading.Event:
        """Set when a task failed for good in the pipeline's process, or the process died."""
        return self._failed

    def failures(self) -> list[TaskStatus]:
        """What failed for good, with its last error."""
        return list(self._failures)

    def counters(self) -> dict[str, Any]:
        """The dead letters in the store and the pipeline's counters (for the stream)."""
        return ingest_counters(self._dead_letters_before, self.ingest_stats())

    def describe(self) -> str:
        """Where telemetry comes from and goes (as the pipeline's process said at its start)."""
        return self._describe

    async def window(self, fn: Callable[..., T], start_h: float, end_h: float, *args: Any, clamp: bool = True) -> T:
        """A window query, run in the pipeline's process's window-query pool."""
        result: T = await self._ask("window", fn, start_h, end_h, clamp, *args)
        return result

    async def throughput(self, start_h: float, end_h: float, every_s: float) -> tuple[float, list[tuple[float, int]]]:
        """Good output per interval, summed in the pipeline's process."""
        result: tuple[float, list[tuple[float, int]]] = await self._ask("throughput", start_h, end_h, every_s)
        return result

    async def set_plan(self, plan_per_hour: float) -> LiveSnapshot:
        """A new plan from now on, set in the pipeline's process; the snapshot published with it."""
        snapshot: LiveSnapshot = await self._ask("set_plan", plan_per_hour)
        self._newer(snapshot)
        return snapshot

    async def forecast(self, horizon_h: float | None, replications: int | None, seed: int) -> dict[str, Any]:
        """A forecast computed on demand in the pipeline's process (its replications in the forecast pool)."""
        result: dict[str, Any] = await self._ask("forecast", horizon_h, replications, seed)
        return result

    async def calibration(
        self, action: str, since_ms: int | None = None, until_ms: int | None = None, min_failures: int = MIN_FAILURES
    ) -> dict[str, Any]:
        """A calibration shown, applied or reset in the pipeline's process (:meth:`api.runtime.LineRuntime.calibration_now`)."""
        result: dict[str, Any] = await self._ask("calibration", action, since_ms, until_ms, min_failures)
        return result

    async def latest_forecast(self) -> tuple[dict[str, Any] | None, str]:
        """The latest default forecast and the last refresh's error, from the pipeline's process."""
        result: tuple[dict[str, Any] | None, str] = await self._ask("latest_forecast")
        return result

    async def whatif_basis(self, now: bool) -> tuple[Line, str, LineKnowledge | None]:
        """The line and parameters forecasts use and, with ``now``, the plant's knowledge, from the pipeline's process
        (:meth:`api.runtime.LineRuntime.whatif_basis_now`)."""
        result: tuple[Line, str, LineKnowledge | None] = await self._ask("whatif_basis", now)
        return result

    def _newer(self, snapshot: LiveSnapshot | None) -> None:
        """Keep ``snapshot`` if it is newer than the one held: a report built before a call's answer can arrive after
        it (the receiving thread and the loop both bring snapshots)."""
        current = self._snapshot
        if snapshot is not None and (current is None or snapshot.version > current.version):
            self._snapshot = snapshot
