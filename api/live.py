"""The live state as the API reads it: the pipeline publishes immutable snapshots, readers never wait for it.

The ingest pipeline's thread feeds a :class:`LiveStatePublisher` (an observer: it is called with each event, and
``end_batch()`` after each batch). At the end of a batch, and every ``publish_every`` events within a huge one, it
builds a :class:`LiveSnapshot` (the line's status, the shift's KPIs so far, the plan, the clock and a version)
and replaces :attr:`LiveStatePublisher.snapshot` with it: one attribute write. Async routes and the stream read
that attribute and nothing else, with no lock. Window queries take an O(1) view of the retained history
(:meth:`LiveStatePublisher.history`) and replay it in the window-query process pool (:func:`start_window_pool`),
else in a worker thread, while the pipeline goes on.

Why processes: a replay is CPU-bound Python (a 48-h ``/oee`` of the reference line, 93,000 events, takes about
270 ms), and in a thread it holds the interpreter lock against the event loop and the pipeline: the loop stalled up
to 370 ms under heavy queries (``simulations/bench/bench_loop_stall.py``). Sending the work costs the pickling of
the view since the window's start (:meth:`~twin.history.HistoryView.since`): 3.3 MB, about 2.4 ms to pickle (in
the pool's feeder thread, not on the loop) and 1.6 ms to load for the whole 48-h history of the reference line.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from twin.events import Event
from twin.history import HistoryView
from twin.kpis import RunKpis
from twin.series import OutputSeries
from twin.state import LineStatus, LiveLine

__all__ = [
    "WINDOW_QUERIES_MODULE",
    "LiveSnapshot",
    "LiveStatePublisher",
    "SnapshotCache",
    "start_window_pool",
    "use_window_pool",
]

log = logging.getLogger("gigatwin.api")

T = TypeVar("T")

WINDOW_QUERIES_MODULE = "api.window_queries"
"""The module of the functions sent to the window-query processes: imported by each before its first query."""


_QUERY_NICENESS = 10
"""How much lower than the service's the window-query processes' CPU priority is (``os.nice``)."""
_OWNER_CHECK_S = 1.0
"""How often a window-query process checks that the process that made its pool still runs."""


def _serve_for(owner: int, niceness: int) -> None:
    """A window-query process's start: a lower CPU priority, and an end when ``owner`` (the process that made the pool)
    is gone. A pool's processes do not notice that themselves (each holds both ends of its own queues), and they would
    outlive a service killed by a signal, holding its fork server and its output pipes open."""
    os.nice(niceness)

    def watch() -> None:
        while True:
            time.sleep(_OWNER_CHECK_S)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(0)  # nothing to clean up: the work and its answer belonged to the dead owner

    threading.Thread(target=watch, name="gigatwin-owner-watch", daemon=True).start()


def _warm(module: str) -> int:
    """Import ``module`` (what the queries will need) in a pool process; returns its process id."""
    importlib.import_module(module)
    return os.getpid()


def start_window_pool(workers: int) -> ProcessPoolExecutor | None:
    """A pool of ``workers`` processes for window queries, each started and warmed (the query modules imported), so
    the first query does not pay for it; None for ``workers`` 0 (window queries then run in worker threads).

    Its processes come from a fork server (else are spawned), never forked from the service: forking a process that
    runs paho's or uvicorn's threads copies their locks in whatever state they are. They run at a lower CPU priority
    (nice 10): a replay is background work, and on a machine with few cores the service's own threads (the event
    loop, the pipeline) must win the core when both want it. They end within a second of this process's end, however
    it ends. Blocks for the start-up (about a second the first time
    in a process, a fork of the already warm server after): call it from a thread."""
    if workers < 0:
        raise ValueError(f"window_workers must be 0 or more, got {workers}")
    if workers == 0:
        return None
    ctx: BaseContext
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # the server imports the queries' modules once; each worker forks from it warm (the list applies when this
        # process starts its fork server: the first pool)
        ctx.set_forkserver_preload([WINDOW_QUERIES_MODULE])
    else:
        ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_serve_for, initargs=(os.getpid(), _QUERY_NICENESS))
    try:
        # one task per worker, submitted together: each finds no idle worker, so the pool starts all of them now
        pids = {f.result(timeout=120) for f in [pool.submit(_warm, WINDOW_QUERIES_MODULE) for _ in range(workers)]}
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    log.info("window queries run in %d process(es): %s", workers, ", ".join(str(p) for p in sorted(pids)))
    return pool


def use_window_pool(live: LiveStatePublisher, pool: Executor, workers: int) -> None:
    """Run ``live``'s window queries in ``pool`` (of ``workers`` processes, from :func:`start_window_pool`), replaced by a
    new one of the same size if it breaks."""
    live.window_pool = pool
    # each process has one query running and one waiting to start (in a process, more never slow the loop)
    live.window_queries = max(live.window_queries, 2 * workers)

    def restart() -> Executor:
        fresh = start_window_pool(workers)
        assert fresh is not None  # workers >= 1: a pool was asked for
        return fresh

    live.restart_window_pool = restart


@dataclass(frozen=True)
class LiveSnapshot:
    """What readers of the live state need, as it was after a batch: never changed once published."""

    version: int
    """Moves on with every publication that follows a change (events taken, a new plan)."""
    status: LineStatus
    shift_kpis: RunKpis | None
    """The KPIs of the current shift so far (None before the first event or at a shift's very start)."""
    plan_per_hour: float

    @property
    def clock_h(self) -> float | None:
        """The latest event time (None before the first event)."""
        return self.status.clock_h

    @property
    def history_start_h(self) -> float | None:
        """The earliest time a KPI window may start (None before the live state has begun)."""
        return self.status.history_start_h


class SnapshotCache:
    """Responses built from one snapshot, reused until a newer one is the latest (no lock: at worst two readers build
    the same response once each)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, object]] = {}

    def get(self, snapshot: LiveSnapshot, key: str, build: Callable[[LiveSnapshot], T]) -> T:
        """``build(snapshot)``, built once per snapshot version and key."""
        hit = self._cache.get(key)
        if hit is not None and hit[0] == snapshot.version:
            return hit[1]  # type: ignore[return-value]  # stored by this method under this key, so a T
        value = build(snapshot)
        self._cache[key] = (snapshot.version, value)
        return value


class LiveStatePublisher:
    """A :class:`~twin.state.LiveLine` (and the line's output series) fed by the pipeline, published as snapshots.

    Writers (the pipeline thread, and :meth:`set_plan` from a worker thread) take a lock among themselves; readers
    take none: :attr:`snapshot` is the latest published :class:`LiveSnapshot`, :meth:`history` an immutable view of
    the retained history, replayed by :meth:`query` in :attr:`window_pool`'s processes. Responses built from one
    snapshot can be reused until its version moves (:meth:`cached`).
    """

    def __init__(
        self, live: LiveLine, output: OutputSeries | None = None, *, publish_every: int = 5000, window_queries: int = 2
    ) -> None:
        if publish_every < 1:
            raise ValueError(f"publish_every must be at least 1, got {publish_every}")
        if window_queries < 1:
            raise ValueError(f"window_queries must be at least 1, got {window_queries}")
        self.live = live
        self.output = output if output is not None else OutputSeries(live.line, keep_h=live.history_h)
        """Good output per minute, for the throughput chart."""
        self.publish_every = publish_every
        self._write = threading.Lock()  # among writers only: no reader ever takes it
        self._taken = 0  # events since the last publication
        self._version = 0
        self._cache = SnapshotCache()
        self._replacing = threading.Lock()
        self.window_queries = window_queries
        self._limiter: CapacityLimiter | None = None  # made on the event loop, at the first window query
        self.window_pool: Executor | None = None
        """Where :meth:`query` runs window queries (set by the app's lifespan: :func:`start_window_pool`); None: in
        worker threads."""
        self.restart_window_pool: Callable[[], Executor] | None = None
        """Makes a new pool when :attr:`window_pool` broke (a process killed, e.g. out of memory)."""
        self.on_publish: Callable[[], None] | None = None
        """Called (on the writer's thread, with the writers' lock held: keep it short) after each publication."""
        self.snapshot: LiveSnapshot = self._build()
        """The latest published state (read it once per request: a later read may be a newer one)."""

    # -- writers -----------------------------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        """Take one event (the pipeline thread); publish every ``publish_every`` events even within one batch."""
        with self._write:
            self.live(event)
            self.output(event)
            self._taken += 1
            if self._taken >= self.publish_every:
                self._publish()

    def end_batch(self) -> None:
        """Publish what the batch changed (the pipeline thread, after handing a batch's events on)."""
        with self._write:
            if self._taken:
                self._publish()

    def set_plan(self, plan_per_hour: float) -> LiveSnapshot:
        """Measure the shift against a new plan from now on; returns the snapshot published with it."""
        with self._write:
            self.live.plan_per_hour = plan_per_hour
            return self._publish()

    def _publish(self) -> LiveSnapshot:
        # The pipeline's thread does the work a snapshot needs (checkpoints, the shift's KPIs), never the loop.
        self.live.build_checkpoints()
        self._taken = 0
        self._version += 1
        snapshot = self.snapshot = self._build()
        if self.on_publish is not None:
            self.on_publish()
        return snapshot

    def _build(self) -> LiveSnapshot:
        live = self.live
        return LiveSnapshot(
            version=self._version, status=live.status(), shift_kpis=live.shift_kpis(), plan_per_hour=live.plan_per_hour
        )

    # -- readers -----------------------------------------------------------------------------------------------
    def history(self) -> HistoryView:
        """The retained history now, to query off the loop (:meth:`query`). Raises ``ValueError`` before the live state
        has begun.

        Taking it costs O(1) and waits at most for a late event's insert; its queries hold no lock."""
        return self.live.view()

    def window_view(self, start_h: float, clamp: bool = True) -> tuple[HistoryView, float]:
        """The retained history from ``w0`` to send to a window query, and ``w0``: ``max(start_h, its start)`` if
        ``clamp``, else ``start_h`` (a window query then refuses a start before the history). Raises ``ValueError``
        before the live state has begun."""
        view = self.history()
        w0 = max(start_h, view.start_h) if clamp else start_h
        return view.since(w0), w0

    def throughput(self, start_h: float, end_h: float, every_s: float) -> tuple[float, list[tuple[float, int]]]:
        """Good output per interval of about ``every_s`` (whole minutes) over ``[start_h, end_h)`` of the retained
        history: (the interval in hours, [(interval start, good units)]). Up to 10,000 sums over a per-minute series
        (a few ms): call it off the event loop."""
        series = self.output
        step_h = series.interval_h(every_s / 3600.0)
        start_h = max(start_h, self.snapshot.history_start_h or start_h)
        return step_h, series.series(start_h, end_h, step_h) if end_h > start_h else []

    def _window_limiter(self) -> CapacityLimiter:
        if self._limiter is None:
            self._limiter = CapacityLimiter(self.window_queries)
        return self._limiter

    async def query(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, a window query (a module-level function of plain values and a view of :meth:`history`, e.g.
        of :mod:`api.window_queries`), in :attr:`window_pool`, else in a worker thread; at most ``window_queries``
        at once. Its exceptions are raised here (a ``ValueError`` for a bad window).

        ``fn`` and ``args`` are pickled to another process: no closures, and a view ``since()`` the window's start."""
        pool = self.window_pool
        if pool is None:
            return await self.query_in_thread(fn, *args)
        loop = asyncio.get_running_loop()
        async with self._window_limiter():
            try:
                return await loop.run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                if self.restart_window_pool is None:
                    raise
                fresh = await asyncio.to_thread(self._replace_broken, pool)
                return await loop.run_in_executor(fresh, fn, *args)

    def run_window(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` as :meth:`query` runs it, blocking: for a thread of the pipeline's own process
        (:mod:`api.line_process`); the caller bounds how many run at once."""
        pool = self.window_pool
        if pool is None:
            return fn(*args)
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool:
            if self.restart_window_pool is None:
                raise
            return self._replace_broken(pool).submit(fn, *args).result()

    def _replace_broken(self, pool: Executor) -> Executor:
        """The pool to use instead of ``pool``, which broke (a process died, e.g. out of memory): the first caller to
        find it broken starts a new one, the others use that."""
        assert self.restart_window_pool is not None
        with self._replacing:
            if self.window_pool is pool:
                log.warning("the window-query pool broke (a process died); starting a new one")
                self.window_pool = self.restart_window_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            assert self.window_pool is not None
            return self.window_pool

    async def query_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, at most ``window_queries`` at once with :meth:`query`'s: for queries that
        read the pipeline's objects rather than a view (each is CPU-bound Python taking turns with the event loop for
        the interpreter; more of them at once would make the loop wait longer, not the answers come sooner)."""
        return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=self._window_limiter())

    def cached(self, key: str, build: Callable[[LiveSnapshot], T]) -> T:
        """``build(snapshot)`` of the latest snapshot, reused while it is the latest (:class:`SnapshotCache`)."""
        return self._cache.get(self.snapshot, key, build)

    def read(self, fn: Callable[[LiveLine], T]) -> T:
        """``fn(live)`` with the writers' lock held: for tests and tools that need the live line itself between events.

        Routes never call it: they read :attr:`snapshot` or :meth:`history`."""
        with self._write:
            return fn(self.live)
