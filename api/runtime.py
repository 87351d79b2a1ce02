"""One watched line, wired: its telemetry source, the ingest pipeline, the store, the live state and the stream.

The one composition of the pipeline: ``gigatwin serve`` (and ``demo``) serve it over HTTP, ``gigatwin ingest`` is
the same without HTTP. :func:`build_runtime` assembles the parts from the settings without starting anything;
:meth:`LineRuntime.start` starts the background tasks under a :class:`~api.supervisor.Supervisor` (a task that
dies is restarted with backoff until it has failed for good: :attr:`LineRuntime.failed`) and
:meth:`LineRuntime.stop` stops them in order (the feed, then the pipeline, which drains and stores what it
took, then the broker connection and the store). The app's lifespan or the ingest command does both.

Sources:

- ``mqtt``: a persistent-session MQTT subscription (``connectors.mqtt``) feeding the pipeline; paho's own
  thread reconnects with backoff, and readiness reports whether the broker is connected.
- ``demo``: the virtual plant (``connectors.feed``) runs in-process from a warmed-up snapshot of the line, at
  ``demo_speed`` times real time, and hands its messages straight to the same pipeline (no broker): the same
  decoding, dead letters, store and live state as a plant's telemetry. Its messages are received on the demo's
  own clock (``demo_speed`` times the wall clock from the feed's start), the clock their timestamps follow, so
  the accepted lead (``max_lead_s``) means the same as for a plant: a timestamp ahead of the demo's present.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import anyio.to_thread

from api.forecaster import Forecaster, NotReady, store_entries
from api.live import LiveSnapshot, LiveStatePublisher
from api.schemas import hours_to_iso
from api.settings import PipelineSettings
from api.stream import StreamHub
from api.supervisor import RestartPolicy, Supervisor, TaskStatus
from connectors.calibrate import calibrate_from_store
from connectors.faults import Faults
from connectors.feed import VirtualPlant, warm_start
from connectors.ingest import Ingest, IngestStats
from connectors.linefile import read_line
from connectors.mqtt import Delivery, MqttConfig, MqttError, MqttSubscriber, parse_mqtt_url
from connectors.rebuild import RebuildStats, rebuild
from connectors.redact import redact_url
from connectors.stores import open_store
from connectors.stores.base import Store
from connectors.stores.forecasts import finite_json
from connectors.telemetry import MS_PER_HOUR, Topics
from twin.calibration import MIN_FAILURES, calibrated_line
from twin.knowledge import LineKnowledge
from twin.kpis import initial_wip
from twin.schema import Line
from twin.snapshot import LineSnapshot
from twin.state import LiveLine

__all__ = ["RESTART_POLICY", "LineRuntime", "build_runtime", "default_client_id", "ingest_counters"]

log = logging.getLogger("gigatwin.runtime")

T = TypeVar("T")

FIRST_FORECAST_WAIT_S = 120.0
"""How long a request for the default forecast waits for the service's first one (computed from its start)."""

RESTART_POLICY = RestartPolicy()
"""How the background tasks are restarted and when one has failed for good (read when a runtime is built)."""


def default_client_id(line: str, group: str | None) -> str:
    """A client id stable across restarts on this host (a persistent session is found again by its id)."""
    return f"gigatwin-ingest-{line}-{group or 'solo'}-{socket.gethostname()}"


@dataclass
class LineRuntime:
    """Everything the API serves for one line, and the background tasks that keep it current."""

    line: Line
    settings: PipelineSettings
    live: LiveStatePublisher
    store: Store
    ingest: Ingest
    hub: StreamHub
    topics: Topics
    subscriber: MqttSubscriber | None = None
    plant: VirtualPlant | None = None
    forecaster: Forecaster | None = None
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(RESTART_POLICY))
    dead_letters_before: int = 0
    """Dead letters already in the store when the service started."""

    @property
    def source_ok(self) -> bool:
        """Whether telemetry can come in now: the broker is connected, or the demo feed runs."""
        if self.subscriber is not None:
            return self.subscriber.connected
        return any(t.name == "feed" and t.state == "running" for t in self.supervisor.status())

    @property
    def failed(self) -> threading.Event:
        """Set when a background task has failed for good (the process should exit non-zero and be restarted)."""
        return self.supervisor.failed

    def failures(self) -> list[TaskStatus]:
        """The background tasks that have failed for good, with their last errors."""
        return self.supervisor.failures()

    def describe(self) -> str:
        """Where telemetry comes from and goes, for a start-up line: no password or token in it."""
        if self.subscriber is not None:
            cfg = self.subscriber.config
            source = f"{self.subscriber.subscription} from {cfg.address} as {cfg.client_id}"
        else:
            source = f"the in-process virtual plant at x{self.settings.demo_speed:g}"
        return f"{source} into {redact_url(self.settings.store_url)}"

    def rebuild(self) -> RebuildStats | None:
        """Rebuild the live state from the store's last ``history_hours`` before the pipeline starts, so that a restart
        keeps the shift's output, OEE, downtime and stops; the pipeline's counters then count on from the store's last
        totals. None for the demo, whose live state begins at its feed's origin (its store is a fresh one)."""
        if self.plant is not None:
            return None
        now_ms = round(time.time() * 1000)
        start_ms = now_ms - round(self.settings.history_hours * 3600 * 1000)
        end_ms = now_ms + round(self.settings.max_lead_s * 1000)  # stored readings may lie this far ahead
        observers: list[Callable[[Any], None]] = [self.live]
        if self.forecaster is not None:
            observers.append(self.forecaster)
        stats = rebuild(self.store, self.topics, observers, start_ms=start_ms, end_ms=end_ms, counters=self.ingest.counters)
        self.live.end_batch()  # publish what was replayed: readers see it before the first live message
        log.info(
            "line %s: live state rebuilt from the store's last %g h: %d readings, %d events in %.2f s%s",
            self.line.name,
            self.settings.history_hours,
            stats.readings,
            stats.events,
            stats.seconds,
            f" ({stats.observer_errors} events refused, first: {stats.first_error})" if stats.observer_errors else "",
        )
        return stats

    def start(self, *, require_source: bool = False, timeout_s: float = 5.0) -> None:
        """Rebuild the live state and the counters from the store, start the pipeline, then the source.

        An unreachable broker (within ``timeout_s``) is not fatal (paho keeps trying; readiness says so) unless
        ``require_source``, when the MqttError is raised (after stopping the tasks; :meth:`stop` still closes the rest).
        """
        if self.rebuild() is None:
            self.ingest.resume_counters()  # the rebuild seeded the counters; without one, take the store's last totals
        elif self.forecaster is not None:
            try:
                resumed = self.forecaster.resume()  # the kept forecasts still to be scored, now that the history is back
                if resumed:
                    log.info("line %s: %d kept forecasts wait for their score", self.line.name, resumed)
            except Exception:  # scoring is a record, not the service: it must not stop the start
                log.exception("line %s: the kept forecasts could not be read back", self.line.name)
        self.dead_letters_before = self.store.dead_letter_count(topic_prefix=self.topics.base + "/")  # this line's only
        log.info("line %s: %s", self.line.name, self.describe())
        self.supervisor.start("ingest", self.ingest.run)
        if self.forecaster is not None and self.settings.forecast_period_s > 0:
            self.supervisor.start("forecast", self.forecaster.run)
        if self.plant is not None:
            plant = self.plant
            self.supervisor.start("feed", lambda stop: plant.run(stop=stop))
        if self.subscriber is not None:
            try:
                self.subscriber.start(timeout_s=timeout_s)
            except MqttError as exc:
                if require_source:
                    self.supervisor.stop()
                    raise
                # Not fatal: paho keeps trying in the background, and readiness says the broker is not connected.
                log.warning("%s; the service starts anyway and keeps trying", exc)

    def stop(self) -> None:
        """Stop the feed, drain and store what the pipeline took, disconnect (the session stays), close the store."""
        if self.forecaster is not None:
            self.forecaster.close()  # first: a refresh under way ends now rather than hold the stop for its length
        stuck = self.supervisor.stop()
        if stuck:
            log.error("background tasks did not stop in time: %s", ", ".join(stuck))
        if self.subscriber is not None:
            self.subscriber.stop()
        self.store.close()

    def counters(self) -> dict[str, Any]:
        """The dead letters in the store and the pipeline's counters (for the stream)."""
        return ingest_counters(self.dead_letters_before, self.ingest.stats)

    # -- what the API reads (api.served.ServedLine): here, from the pipeline in this process ----------------------
    @property
    def snapshot(self) -> LiveSnapshot:
        """The latest published live state."""
        return self.live.snapshot

    @property
    def constraint(self) -> str:
        """The line's constraint station."""
        return self.live.live.constraint

    def cached(self, key: str, build: Callable[[LiveSnapshot], T]) -> T:
        """``build(snapshot)`` of the latest snapshot, reused while it is the latest."""
        return self.live.cached(key, build)

    def ingest_stats(self) -> IngestStats:
        """The pipeline's counters now (a copy, with the queue's depth now)."""
        stats = self.ingest.stats
        return replace(stats, queue_depth=self.ingest.queue_depth(), data_seen_at=dict(stats.data_seen_at))

    def tasks(self) -> list[TaskStatus]:
        """The background tasks now."""
        return self.supervisor.status()

    async def window(self, fn: Callable[..., T], start_h: float, end_h: float, *args: Any, clamp: bool = True) -> T:
        """``fn(line, view, w0, end_h, *args)`` over the retained history from ``max(start_h, its start)`` (``clamp``;
        else from ``start_h``), in the window-query pool (:meth:`LiveStatePublisher.query`)."""
        view, w0 = self.live.window_view(start_h, clamp)  # O(1): the replay holds no lock the pipeline or the loop needs
        return await self.live.query(fn, self.line, view, w0, end_h, *args)

    async def throughput(self, start_h: float, end_h: float, every_s: float) -> tuple[float, list[tuple[float, int]]]:
        """Good output per interval (:meth:`LiveStatePublisher.throughput`), in a worker thread: the series is the
        pipeline's, not a view to send."""
        return await self.live.query_in_thread(self.live.throughput, start_h, end_h, every_s)

    async def set_plan(self, plan_per_hour: float) -> LiveSnapshot:
        """A new plan from now on, set in a worker thread (it waits for the pipeline's current event)."""
        return await anyio.to_thread.run_sync(self.live.set_plan, plan_per_hour)

    def forecast_now(self, horizon_h: float | None, replications: int | None, seed: int) -> dict[str, Any]:
        """A forecast (:meth:`api.forecaster.Forecaster.compute`) from the live state's clock; blocking."""
        if self.forecaster is None:
            raise NotReady("forecasts are off in this service")
        return self.forecaster.compute(horizon_h, replications, seed, now_h=self.live.snapshot.status.clock_h)

    def calibration_now(
        self, action: str, since_ms: int | None = None, until_ms: int | None = None, min_failures: int = MIN_FAILURES
    ) -> dict[str, Any]:
        """``show``: the line calibrated from the store's history of the window (:mod:`connectors.calibrate`);
        ``apply``: the same, and forecasts use it from now on; ``reset``: forecasts use the line file again. Blocking
        (a long history takes seconds). CalibrationError when the store cannot give one."""
        if action == "reset":
            if self.forecaster is not None:
                self.forecaster.use_line(self.line, "line-file")
            return {"line": self.line.name, "parameters": "line-file", "applied": False}
        if action not in ("show", "apply"):
            raise ValueError(f"no calibration action {action!r}")
        made = calibrate_from_store(
            self.store, self.topics, self.line, since_ms=since_ms, until_ms=until_ms, min_failures=min_failures
        )
        cal = made.calibration
        out = finite_json(cal.to_dict(self.line.time_unit))
        out["window"].update(start=hours_to_iso(cal.start_h), end=hours_to_iso(cal.end_h))
        applied = action == "apply" and self.forecaster is not None
        if applied:
            assert self.forecaster is not None
            self.forecaster.use_line(calibrated_line(self.line, cal), "calibrated")
        out["parameters"] = self.forecaster.parameters if self.forecaster is not None else "line-file"
        out["applied"] = applied
        return dict(out)

    def latest_forecast_now(self, wait_s: float = FIRST_FORECAST_WAIT_S) -> tuple[dict[str, Any] | None, str]:
        """The latest default forecast (waiting up to ``wait_s`` for the first; None if there is none then) and why
        the last refresh failed (empty if it did not); blocking."""
        if self.forecaster is None:
            return None, "forecasts are off in this service"
        return self.forecaster.wait_latest(wait_s), self.forecaster.error

    def whatif_basis_now(self, now: bool) -> tuple[Line, str, LineKnowledge | None]:
        """The line and parameters forecasts use and, with ``now``, the plant's knowledge at the live state's clock
        (:meth:`api.served.ServedLine.whatif_basis`); blocking."""
        if self.forecaster is None:
            if now:
                raise NotReady("forecasts are off in this service: it keeps no knowledge of the plant to start from")
            return self.line, "line-file", None
        line, parameters = self.forecaster.line, self.forecaster.parameters
        knowledge = self.forecaster.knowledge(self.live.snapshot.status.clock_h) if now else None
        return line, parameters, knowledge

    async def whatif_basis(self, now: bool) -> tuple[Line, str, LineKnowledge | None]:
        """:meth:`whatif_basis_now` in a worker thread (it waits for the pipeline's current event)."""
        return await anyio.to_thread.run_sync(self.whatif_basis_now, now)

    async def calibration(
        self, action: str, since_ms: int | None = None, until_ms: int | None = None, min_failures: int = MIN_FAILURES
    ) -> dict[str, Any]:
        """:meth:`calibration_now` in a worker thread."""
        return await anyio.to_thread.run_sync(self.calibration_now, action, since_ms, until_ms, min_failures)

    async def latest_forecast(self) -> tuple[dict[str, Any] | None, str]:
        """The latest default forecast and the last refresh's error (:meth:`latest_forecast_now`), off the loop."""
        return await anyio.to_thread.run_sync(self.latest_forecast_now)

    async def forecast(self, horizon_h: float | None, replications: int | None, seed: int) -> dict[str, Any]:
        """A forecast computed on demand, in a worker thread (its replications in the forecast pool)."""
        return await anyio.to_thread.run_sync(self.forecast_now, horizon_h, replications, seed)


def ingest_counters(dead_letters_before: int, stats: IngestStats) -> dict[str, Any]:
    """The stream's counters: the dead letters in the store (those before the start and those since) and the pipeline's."""
    return {
        "dead_letters": dead_letters_before + stats.rejected,
        "ingest": stats.as_dict(),
        "data_seen_at": {sid: hours_to_iso(t / 3600.0) for sid, t in stats.data_seen_at.items()},
        "served_at": hours_to_iso(time.time() / 3600.0),  # the ages of data_seen_at by the service's clock, not the client's
    }


def build_runtime(
    settings: PipelineSettings, line: Line | None = None, *, store: Store | None = None, mqtt: MqttConfig | None = None
) -> LineRuntime:
    """The parts for ``settings``, not started. ``line``, ``store`` and ``mqtt`` (the broker, instead of
    ``settings.mqtt_url``) may be given already made; a store given is closed by :meth:`LineRuntime.stop` too.

    Raises ValueError (a bad URL), ``twin.errors.LineError`` (a bad line file) or ``connectors.errors.ConnectorError``
    (a store that cannot be opened), each naming what is wrong."""
    if line is None:
        line = read_line(settings.line_file)
    topics = Topics(settings.topic_prefix, settings.site, line.name)
    if mqtt is None and settings.source == "mqtt":
        assert settings.mqtt_url is not None  # the settings' validator requires it for the mqtt source
        mqtt = parse_mqtt_url(settings.mqtt_url)  # before the store opens: a bad URL leaves nothing to close
    if store is None:
        store = open_store(settings.store_url, spool_dir=settings.spool_dir)
    try:
        return _assemble(settings, line, topics, store, mqtt)
    except BaseException:
        store.close()
        raise


def _assemble(settings: PipelineSettings, line: Line, topics: Topics, store: Store, mqtt: MqttConfig | None) -> LineRuntime:
    live_kwargs: dict[str, Any] = {
        "shift_hours": settings.shift_hours,
        "shift_origin_h": settings.shift_origin_h,
        # the live state looks back at least one shift: the settings' blocks, or the calendar's longest shift
        "history_h": max(settings.history_hours, settings.shift_hours, *(s.hours for s in line.calendar.shifts))
        if line.calendar is not None
        else max(settings.history_hours, settings.shift_hours),
        "plan_per_hour": settings.plan_per_hour,
    }
    plant = None
    subscriber = None
    plant_start: LineSnapshot | None = None
    plant_origin_ms = 0
    if settings.source == "demo":
        snapshot = warm_start(line, settings.demo_seed, settings.demo_warmup_hours)
        origin_ms = round(time.time() * 1000)
        plant_start, plant_origin_ms = snapshot, origin_ms
        live = LiveStatePublisher(
            LiveLine(line, begin_h=origin_ms / MS_PER_HOUR, wip0=initial_wip(snapshot, line), **live_kwargs)
        )
        ingest = _ingest(settings, line, topics, store, live)
        faults = Faults(malformed=settings.demo_malformed, seed=settings.demo_seed) if settings.demo_malformed else None
        publisher = _DemoClockPublisher(ingest)
        plant = VirtualPlant(
            line,
            topics=topics,
            publisher=publisher,
            speed=settings.demo_speed,
            seed=settings.demo_seed,
            origin_ms=origin_ms,
            start=snapshot,
            faults=faults,
        )
        publisher.plant = plant
    else:
        assert mqtt is not None  # build_runtime parses settings.mqtt_url for the mqtt source
        mqtt = replace(
            mqtt, client_id=settings.mqtt_client_id or mqtt.client_id or default_client_id(line.name, settings.mqtt_group)
        )
        live = LiveStatePublisher(LiveLine(line, **live_kwargs))
        ingest = _ingest(settings, line, topics, store, live, receive_maximum=mqtt.receive_maximum)
        subscriber = MqttSubscriber(mqtt, topics.subscription(settings.mqtt_group), ingest.submit)
        ingest.ack = subscriber.ack
    forecaster = Forecaster(
        line,
        period_s=settings.forecast_period_s,
        replications=settings.forecast_replications,
        workers=settings.forecast_workers,
        shift_hours=settings.shift_hours,
        shift_origin_h=settings.shift_origin_h,
        plan_per_hour=live.live.plan_per_hour,
        shift_good=lambda: _shift_so_far(live),
        store=store,
        site=topics.site,
        line_name=topics.line,
    )
    if plant is not None and plant_start is not None:  # the demo: its stores' past is the warm-up's
        for sid, entries in store_entries(line, plant_start, plant_origin_ms / MS_PER_HOUR).items():
            forecaster.seed_store(sid, entries)
    ingest.observers.append(forecaster)
    hub = StreamHub(line, live)
    ingest.observers.append(hub)
    rt = LineRuntime(
        line=line,
        settings=settings,
        live=live,
        store=store,
        ingest=ingest,
        hub=hub,
        topics=topics,
        subscriber=subscriber,
        plant=plant,
        forecaster=forecaster,
    )
    hub.extra = rt.counters
    return rt


def _shift_so_far(live: LiveStatePublisher) -> tuple[float, int, float] | None:
    """The current shift's start, good units and plan so far, from the latest published live state."""
    shift = live.snapshot.status.shift
    return None if shift is None else (shift.start_h, shift.good, shift.plan)


def _ingest(
    settings: PipelineSettings, line: Line, topics: Topics, store: Store, live: LiveStatePublisher, *, receive_maximum: int = 2000
) -> Ingest:
    batch = 1000
    return Ingest(
        topics,
        store,
        line=line,
        observers=[live],
        # The queue holds everything the broker may have in flight to us, so paho's thread never blocks.
        batch_size=min(batch, receive_maximum),
        queue_size=max(2 * receive_maximum, batch),
        max_lead_s=settings.max_lead_s,
    )


class _DemoClockPublisher:
    """Hands the in-process virtual plant's messages straight to the pipeline, received on the demo's own clock.

    The demo's source clock runs ``demo_speed`` times the wall clock from the feed's start, so after an hour at x60
    its timestamps lie 59 hours ahead of the wall clock, and more every minute: no fixed accepted lead would do
    against the wall clock. Stamped with the demo's present instead (the feed's own mapping, :meth:`VirtualPlant.
    feed_clock`), its messages arrive on time, and ``max_lead_s`` still catches one from the demo's future.
    Blocks while the ingest queue is full, so a fast producer is held back rather than losing messages.
    """

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest
        self.plant: VirtualPlant | None = None
        self.published = 0
        self._origin_ms = 0.0
        self._start_ms = 0.0
        self._speed = 0.0

    def publish(self, topic: str, payload: bytes) -> None:
        """Deliver the message to the pipeline now, received at the demo clock's present."""
        if not self._speed and self.plant is not None:
            # the feed's mapping is fixed when its first paced run begins, before its first message
            clock = self.plant.feed_clock()
            self._origin_ms, self._start_ms, self._speed = clock.origin_ms, clock.start_ms, clock.speed
        now_ms = time.time() * 1000
        received = round(self._origin_ms + (now_ms - self._start_ms) * self._speed) if self._speed else round(now_ms)
        self.ingest.submit(Delivery(topic, payload, received, (0, 0)))
        self.published += 1
