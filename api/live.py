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

__all__ = ["WINDOW_QUERIES_MODULE", "LiveSnapshot", "LiveStatePublisher", "start_window_pool"]

log = logging.getLogger("gigatwin.api")

T = TypeVar("T")

WINDOW_QUERIES_MODULE = "api.window_queries"
"""The module of the functions sent to the window-query processes: imported by each before its first query."""


_QUERY_NICENESS = 10
"""How much lower than the service's the window-query processes' CPU priority is (``os.nice``)."""


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
    loop, the pipeline) must win the core when both want it. Blocks for the start-up (about a second the first time
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
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=os.nice, initargs=(_QUERY_NICENESS,))
    try:
        # one task per worker, submitted together: each finds no idle worker, so the pool starts all of them now
        pids = {f.result(timeout=120) for f in [pool.submit(_warm, WINDOW_QUERIES_MODULE) for _ in range(workers)]}
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    log.info("window queries run in %d process(es): %s", workers, ", ".join(str(p) for p in sorted(pids)))
    return pool


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
        self._cache: dict[str, tuple[int, object]] = {}
        self.window_queries = window_queries
        self._limiter: CapacityLimiter | None = None  # made on the event loop, at the first window query
        self.window_pool: Executor | None = None
        """Where :meth:`query` runs window queries (set by the app's lifespan: :func:`start_window_pool`); None: in
        worker threads."""
        self.restart_window_pool: Callable[[], Executor] | None = None
        """Makes a new pool when :attr:`window_pool` broke (a process killed, e.g. out of memory)."""
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
                if self.window_pool is pool:  # the first query to find it broken replaces it
                    log.warning("the window-query pool broke (a process died); starting a new one")
                    self.window_pool = await asyncio.to_thread(self.restart_window_pool)
                    await asyncio.to_thread(pool.shutdown, wait=False, cancel_futures=True)
                assert self.window_pool is not None
                return await loop.run_in_executor(self.window_pool, fn, *args)

    async def query_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, at most ``window_queries`` at once with :meth:`query`'s: for queries that
        read the pipeline's objects rather than a view (each is CPU-bound Python taking turns with the event loop for
        the interpreter; more of them at once would make the loop wait longer, not the answers come sooner)."""
        return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=self._window_limiter())

    def cached(self, key: str, build: Callable[[LiveSnapshot], T]) -> T:
        """``build(snapshot)`` of the latest snapshot, reused while it is the latest (no lock: at worst two readers
        build the same response once each)."""
        snapshot = self.snapshot
        hit = self._cache.get(key)
        if hit is not None and hit[0] == snapshot.version:
            return hit[1]  # type: ignore[return-value]  # stored by this method under this key, so a T
        value = build(snapshot)
        self._cache[key] = (snapshot.version, value)
        return value

    def read(self, fn: Callable[[LiveLine], T]) -> T:
        """``fn(live)`` with the writers' lock held: for tests and tools that need the live line itself between events.

        Routes never call it: they read :attr:`snapshot` or :meth:`history`."""
        with self._write:
            return fn(self.live)
