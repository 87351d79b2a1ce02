"""The service's forecasts: what the line's telemetry tells, kept current, and forecasts from it in a process pool.

:class:`Forecaster` is an observer of the pipeline (and of the start-up replay from the store): a
``twin.knowledge.KnowledgeBuilder`` fed every event under a lock (late events are skipped: a state is what the
latest report says). Its :meth:`Forecaster.run` task refreshes the **default forecast** every ``forecast_period_s``:
to the end of the current shift (at least an hour ahead), against the shift's plan (the plan's units of the whole
shift less the good units made so far in it), with ``forecast_replications`` replications. :meth:`Forecaster.compute`
makes one for other parameters on demand. Replications run in a process pool of ``forecast_workers`` processes
started with forkserver (never forked from the service's threads), made once when the task starts; with 0 workers,
in the calling thread.

**Forecasts are kept and scored.** Every default forecast is written to the store (``write_forecasts``; the on-demand
ones are not: they answer one request). The forecaster follows what the line does (``twin.scoring.Outcome``, fed the
same events) and, at each refresh, scores the kept forecasts whose horizon the line's clock has passed and writes
the scores next to them. After a restart, :meth:`Forecaster.resume` takes back the kept forecasts not yet scored
whose horizon lies ahead; those made before the replayed history begins cannot be scored (their output is not in
the replay) and are left unscored, which the log says. A failed store write is logged and does not stop the
refresh: its records are tried again with the next write (InfluxDB also spools to disk; SQLite does not).

A forecast that fails is logged, its error kept (:attr:`Forecaster.error`), and the next refresh tries again: it
never stops the pipeline or the service. Before the first event there is nothing to forecast from: ``NotReady``.

The knowledge starts with the live state's replay of the store (``history_hours``); units in stores that entered
before then are spread evenly over their possible dwell, which the forecast's ``assumptions`` say (``gigatwin
forecast`` reads the store back as far as the longest dwell instead). In the demo it starts at the feed's start,
its stores' entries taken from the warm-up (:func:`store_entries`): the virtual plant's past, as a plant's would be
in its store.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from api.schemas import hours_to_iso
from connectors.stores.base import Store, StoredForecast, WriteRefused
from connectors.telemetry import MS_PER_HOUR
from twin.events import Event
from twin.forecast import MAX_HORIZON_H, forecast
from twin.knowledge import KnowledgeBuilder, LineKnowledge
from twin.schema import Line
from twin.scoring import Outcome, score
from twin.shifts import ShiftPlan
from twin.snapshot import LineSnapshot

__all__ = ["Forecaster", "NotReady", "store_entries"]

log = logging.getLogger("gigatwin.forecast")

MAX_UNWRITTEN = 1000
"""Forecast records kept for another try when the store cannot take them (the newest; older ones are dropped)."""
MIN_DEFAULT_HORIZON_H = 1.0
"""The default forecast looks at least this far ahead (to the end of the shift, or an hour into the next)."""


class NotReady(Exception):
    """Nothing to forecast from yet: no telemetry has come in."""


class Forecaster:
    """Keeps the line's knowledge current and its default forecast fresh (see the module docstring)."""

    def __init__(
        self,
        line: Line,
        *,
        period_s: float,
        replications: int,
        workers: int,
        shift_hours: float,
        shift_origin_h: float,
        plan_per_hour: float,
        shift_good: Any = None,
        store: Store | None = None,
        site: str = "",
        line_name: str = "",
    ) -> None:
        self._using = (line, "line-file")  # one tuple: a forecast reads the line and its label together
        self.period_s = period_s
        self.replications = replications
        self.workers = workers
        self.shift_hours = shift_hours
        self.shift_origin_h = shift_origin_h
        self.plan_per_hour = plan_per_hour
        self.shift_good = shift_good
        """``() -> (shift start h, good units made in it so far, its plan so far)`` from the live state, or None."""
        self._builder = KnowledgeBuilder(line, skip_late=True)
        self.store = store
        self.site = site
        self.line_name = line_name or line.name
        self.outcome = Outcome(line)
        """What the line did since the first event taken: what the kept forecasts are scored against."""
        self._outcome_since: float | None = None
        self._pending: list[tuple[float, dict[str, Any]]] = []  # kept default forecasts awaiting their score, by as_of
        self.kept = 0
        """Default forecasts written to the store."""
        self.scored = 0
        """Kept forecasts scored and the scores written."""
        self._with_failures = [s.id for s in line.stations if s.failures]
        self._unwritten: list[StoredForecast] = []  # records a failed write left, tried again with the next
        self._lock = threading.Lock()
        self._pool: Executor | None = None
        self._pool_lock = threading.Lock()
        self.latest: dict[str, Any] | None = None
        """The latest default forecast, as the API returns it (None before the first)."""
        self.error = ""
        """Why the last refresh failed (empty when it did not)."""
        self.refreshes = 0
        self.failures = 0
        self._first = threading.Event()  # set by the first refresh that worked
        self._closed = False

    # -- the observer -------------------------------------------------------------------------------------------
    def __call__(self, ev: Event) -> None:
        """Take one event of the line (the pipeline's thread, or the start-up replay)."""
        with self._lock:
            self._builder(ev)
            if self.period_s > 0:  # only refreshed forecasts are kept and scored; else it would grow without end
                self.outcome(ev)
                if self._outcome_since is None:
                    self._outcome_since = ev.t

    def seed_store(self, station: str, entries: list[tuple[float, int]]) -> None:
        """A store's entries from before the telemetry began (``twin.knowledge.KnowledgeBuilder.seed_store``)."""
        with self._lock:
            self._builder.seed_store(station, entries)

    def knowledge(self, now_h: float | None = None) -> LineKnowledge:
        """What the telemetry tells now (at ``now_h``, the live state's clock, if later than the newest event)."""
        with self._lock:
            clock = self._builder.clock_h
            if clock is None:
                raise NotReady("no telemetry has come in yet: nothing to forecast from")
            return self._builder.at(max(clock, now_h) if now_h is not None else clock)

    @property
    def line(self) -> Line:
        """The line the forecasts run: the line file's, or a calibration of it (:meth:`use_line`)."""
        return self._using[0]

    @property
    def parameters(self) -> str:
        """What :attr:`line`'s values are: ``line-file`` or ``calibrated``."""
        return self._using[1]

    def use_line(self, line: Line, parameters: str) -> None:
        """Forecast with ``line`` from the next forecast on (the same stations, other values: a calibration of the
        line file, or the line file again); ``parameters`` says which (``calibrated``, ``line-file``)."""
        if [s.id for s in line.stations] != [s.id for s in self.line.stations]:
            raise ValueError("a line to forecast with must have the same stations as the one watched")
        self._using = (line, parameters)

    # -- forecasts ----------------------------------------------------------------------------------------------
    def _executor(self) -> Executor | None:
        if self._closed:
            raise NotReady("the service is stopping")
        if self.workers <= 0:
            return None
        with self._pool_lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("forkserver"))
            return self._pool

    def compute(
        self, horizon_h: float | None = None, replications: int | None = None, seed: int = 0, now_h: float | None = None
    ) -> dict[str, Any]:
        """A forecast as the API returns it: ``horizon_h`` ahead (default: to the end of the shift, at least an hour),
        with ``replications`` (default ``forecast_replications``). ValueError for a bad horizon or count;
        :class:`NotReady` before any telemetry."""
        return self._compute(horizon_h, replications, seed, now_h)[1]

    def _compute(
        self, horizon_h: float | None, replications: int | None, seed: int, now_h: float | None
    ) -> tuple[float, dict[str, Any]]:
        """:meth:`compute`, with the forecast's instant in hours."""
        knowledge = self.knowledge(now_h)
        t0 = knowledge.time_h
        # the shifts of the line's calendar (or fixed blocks without one); the plan counts working hours only
        plan = ShiftPlan(self._using[0], self.plan_per_hour, shift_hours=self.shift_hours, origin_h=self.shift_origin_h)
        span = plan.shift_at(t0)
        if not span.working:  # between shifts: forecast to the end of the next one
            span = plan.shift_at(span.end_h)
        start, end = span.start_h, span.end_h
        default = horizon_h is None and replications is None and seed == 0
        horizon = min(max(end - t0, MIN_DEFAULT_HORIZON_H), MAX_HORIZON_H) if horizon_h is None else horizon_h
        target: float | None = None
        made = 0
        # to the shift's end (not an hour into the next): against the shift's plan
        if horizon_h is None and end - t0 >= MIN_DEFAULT_HORIZON_H and end - t0 <= MAX_HORIZON_H:
            if start > t0:  # the next shift: all of its plan is still to make
                target = plan.plan_between(t0, end)
            elif self.shift_good is not None:
                shift = self.shift_good()
                if shift is not None and shift[0] == start:  # the shift's plan by its end, less what it made so far
                    _, made, planned = shift
                    target = max(planned + plan.plan_between(t0, end) - made, 0.0)
        try:
            executor = self._executor()
        except NotReady:
            raise
        except Exception as exc:  # no pool on this machine: in this thread, slower
            log.warning("no forecast pool (%s): forecasting in the service's thread", exc)
            executor = None
        line, parameters = self._using  # one line for the whole forecast, whatever happens meanwhile
        result = forecast(
            line,
            knowledge,
            horizon,
            replications=self.replications if replications is None else replications,
            seed=seed,
            plan_per_hour=self.plan_per_hour,
            plan_target=target,
            executor=executor,
            parameters=parameters,
        )
        out = result.to_dict(hours_to_iso)
        out["plan"]["shift_good_so_far"] = made if target is not None else None
        out["default"] = default
        return t0, out

    def refresh(self) -> dict[str, Any]:
        """Compute the default forecast now, keep it as :attr:`latest` and in the store, and score the kept forecasts
        whose horizon has passed."""
        as_of_h, result = self._compute(None, None, 0, None)
        self.latest = result
        self.refreshes += 1
        self.error = ""
        self._first.set()
        self._keep(as_of_h, result)
        self.score_due()
        return result

    # -- kept forecasts and their scores ---------------------------------------------------------------------
    def _write(self, records: list[StoredForecast]) -> None:
        """Write ``records`` after those a failed write left (kept for the next try, the newest
        :data:`MAX_UNWRITTEN`); a failure is logged, never raised: the forecast is served all the same."""
        if self.store is None:
            return
        batch = [*self._unwritten, *records]
        if not batch:
            return
        try:
            self.store.write_forecasts(batch)
            self._unwritten = []
        except WriteRefused:  # the store refuses these for good: trying again would not help
            log.exception("the store refuses %d forecast records: dropped", len(batch))
            self._unwritten = []
        except Exception:  # an outage (InfluxDB spools its own; SQLite does not): the next refresh tries again
            log.exception("writing %d forecast records to the store failed; trying again at the next refresh", len(batch))
            self._unwritten = batch[-MAX_UNWRITTEN:]

    def _keep(self, as_of_h: float, forecast: dict[str, Any]) -> None:
        if self._pending and self._pending[-1][0] >= as_of_h:
            return  # the line's clock has not moved (no telemetry since): the same instant is kept once
        self._pending.append((as_of_h, forecast))
        self._write([StoredForecast(self.site, self.line_name, _ms(as_of_h), forecast)])
        self.kept += 1

    def resume(self) -> int:
        """Take back the kept forecasts not yet scored whose horizon may still be scored (after a restart, once the
        history is replayed); how many."""
        if self.store is None:
            return 0
        with self._lock:
            clock, since = self.outcome.clock_h, self._outcome_since
        if clock is None or since is None:
            return 0
        start_h = clock - MAX_HORIZON_H
        records = self.store.forecasts(
            start_ms=_ms(start_h), end_ms=_ms(clock) + 1, site=self.site, line=self.line_name, limit=100_000
        )
        waiting = [r for r in records if r.score is None and r.forecast is not None]
        usable = [(r.as_of_ms / MS_PER_HOUR, r.forecast) for r in waiting if r.as_of_ms / MS_PER_HOUR >= since]
        if len(usable) < len(waiting):
            log.warning(
                "%d kept forecasts were made before the replayed history begins: their output is not known, they stay unscored",
                len(waiting) - len(usable),
            )
        with self._lock:
            known = {a for a, _ in self._pending}
            taken = [(a, f) for a, f in usable if a not in known and f is not None]
            self._pending = sorted([*self._pending, *taken], key=lambda p: p[0])
        self.score_due()
        return len(usable)

    def score_due(self) -> int:
        """Score the kept forecasts whose horizon the line's clock has passed and write their scores; how many."""
        with self._lock:
            clock = self.outcome.clock_h
            if clock is None:
                return 0
            due = [(a, f) for a, f in self._pending if a + float(f["horizon_h"]) <= clock]
            scores = [self._score(a, f) for a, f in due]
            self._pending = [(a, f) for a, f in self._pending if a + float(f["horizon_h"]) > clock]
            oldest = self._pending[0][0] if self._pending else clock
            self.outcome.forget_before(min(oldest, clock))
        self._write([StoredForecast(self.site, self.line_name, _ms(a), score=s) for (a, _), s in zip(due, scores, strict=True)])
        self.scored += len(scores)
        return len(scores)

    def _score(self, as_of_h: float, forecast: dict[str, Any]) -> dict[str, Any]:
        horizon = float(forecast["horizon_h"])
        steps = [(as_of_h + min(i + 1.0, horizon), h["p10"], h["p50"], h["p90"]) for i, h in enumerate(forecast["hourly"])]
        stations = forecast.get("stations", {})
        p_failure = {sid: float(stations[sid]["p_failure"]) for sid in self._with_failures if sid in stations}
        return score(as_of_h, horizon, steps, p_failure, self.outcome).to_dict()

    def wait_latest(self, timeout_s: float) -> dict[str, Any] | None:
        """The latest default forecast, waiting up to ``timeout_s`` for the first one (None if there is none then)."""
        if self.latest is None and self.period_s > 0:
            self._first.wait(timeout_s)
        return self.latest

    def run(self, stop: threading.Event) -> None:
        """Refresh the default forecast every ``period_s`` until ``stop``; a failure is logged and retried."""
        try:
            while not stop.is_set() and not self._closed:
                began = time.monotonic()
                try:
                    self.refresh()
                    log.info("forecast refreshed in %.1f s", time.monotonic() - began)
                except NotReady:  # nothing has come in yet: look again in a second
                    stop.wait(1.0)
                    continue
                except Exception as exc:
                    if self._closed:
                        break  # stopped mid-refresh: its processes were ended on purpose
                    self.failures += 1
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.exception("the forecast failed; trying again in %g s", self.period_s)
                    if isinstance(exc, BrokenProcessPool):
                        self._drop_pool()  # a worker died (killed, out of memory): the next refresh starts a new pool
                stop.wait(max(self.period_s - (time.monotonic() - began), 1.0))
        finally:
            self.close()

    def close(self) -> None:
        """Stop at once: end the pool's processes (a forecast under way fails and is not retried), and wake whoever
        waits for a first forecast that will not come. Shutdown must not wait for a refresh (tens of seconds)."""
        self._closed = True
        self._first.set()
        self._drop_pool()

    def _drop_pool(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        # A replication under way would run to its end (seconds) and the pool's shutdown wait for it: its processes
        # hold nothing worth keeping, so they are ended (the executor has no public way to do it).
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _ms(hours: float) -> int:
    """An instant in hours on the line's clock (since the epoch) as the store's milliseconds."""
    return round(hours * MS_PER_HOUR)


def store_entries(line: Line, snapshot: LineSnapshot, origin_h: float) -> dict[str, list[tuple[float, int]]]:
    """Per store of ``snapshot`` (a warmed-up line that a feed starts from at ``origin_h`` on its clock), its lots as
    entries (time entered, units), oldest first: entered the mean dwell before their dwell runs out (exact for a
    constant dwell)."""
    out: dict[str, list[tuple[float, int]]] = {}
    for spec in line.stations:
        st = snapshot.stations.get(spec.id)
        if spec.kind != "delay" or st is None or not st.lots or spec.dwell is None:
            continue
        dwell = spec.dwell.mean_value
        out[spec.id] = sorted((origin_h - max(dwell - lot.dwell_left_h, 0.0), lot.units) for lot in st.lots)
    return out
