"""One watched line, wired: its telemetry source, the ingest pipeline, the store, the live state and the stream.

:func:`build_runtime` assembles the parts from :class:`~api.settings.Settings` without starting anything;
:meth:`LineRuntime.start` starts the background tasks under a :class:`~api.supervisor.Supervisor` and
:meth:`LineRuntime.stop` stops them in order (the feed, then the pipeline, which drains and stores what it
took, then the broker connection and the store). The app's lifespan does both.

Sources:

- ``mqtt``: a persistent-session MQTT subscription (``connectors.mqtt``) feeding the pipeline; paho's own
  thread reconnects with backoff, and readiness reports whether the broker is connected.
- ``demo``: the virtual plant (``connectors.feed``) runs in-process from a warmed-up snapshot of the line, at
  ``demo_speed`` times real time, and hands its messages straight to the same pipeline (no broker): the same
  decoding, dead letters, store and live state as a plant's telemetry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from api.ingest_service import default_client_id
from api.live import LiveView
from api.settings import Settings
from api.stream import StreamHub
from api.supervisor import Supervisor
from connectors.faults import Faults
from connectors.feed import VirtualPlant
from connectors.ingest import Ingest, LoopbackPublisher
from connectors.linefile import read_line
from connectors.mqtt import MqttError, MqttSubscriber, parse_mqtt_url
from connectors.stores import open_store
from connectors.stores.base import Health, Store
from connectors.telemetry import MS_PER_HOUR, Topics
from twin.engine import Engine
from twin.kpis import initial_wip
from twin.schema import Line
from twin.state import LiveLine

__all__ = ["LineRuntime", "build_runtime"]

log = logging.getLogger("gigatwin.runtime")

_NO_LIMIT_S = 100 * 365 * 86400.0  # a century: no source timestamp is refused for running ahead


@dataclass
class LineRuntime:
    """Everything the API serves for one line, and the background tasks that keep it current."""

    line: Line
    settings: Settings
    live: LiveView
    store: Store
    ingest: Ingest
    hub: StreamHub
    topics: Topics
    subscriber: MqttSubscriber | None = None
    plant: VirtualPlant | None = None
    supervisor: Supervisor = field(default_factory=Supervisor)
    dead_letters_before: int = 0
    """Dead letters already in the store when the service started."""
    _health: tuple[float, Health] | None = field(default=None, init=False, repr=False)

    def store_health(self, max_age_s: float = 5.0) -> Health:
        """The store's health, probed at most every ``max_age_s`` (a probe is a real write)."""
        now = time.monotonic()
        cached = self._health
        if cached is None or now - cached[0] > max_age_s:
            cached = self._health = (now, self.store.health())
        return cached[1]

    @property
    def source_ok(self) -> bool:
        """Whether telemetry can come in now: the broker is connected, or the demo feed runs."""
        if self.subscriber is not None:
            return self.subscriber.connected
        return any(t.name == "feed" and t.state == "running" for t in self.supervisor.status())

    def start(self) -> None:
        """Resume the counters from the store and start the pipeline, then the source."""
        self.ingest.resume_counters()
        self.dead_letters_before = self.store.dead_letter_count(topic_prefix=self.topics.base + "/")  # this line's only
        self.supervisor.start("ingest", self.ingest.run)
        if self.plant is not None:
            plant = self.plant
            self.supervisor.start("feed", lambda stop: plant.run(stop=stop))
        if self.subscriber is not None:
            try:
                self.subscriber.start(timeout_s=5.0)
            except MqttError as exc:
                # Not fatal: paho keeps trying in the background, and readiness says the broker is not connected.
                log.warning("%s; the service starts anyway and keeps trying", exc)

    def stop(self) -> None:
        """Stop the feed, drain and store what the pipeline took, disconnect (the session stays), close the store."""
        stuck = self.supervisor.stop()
        if stuck:
            log.error("background tasks did not stop in time: %s", ", ".join(stuck))
        if self.subscriber is not None:
            self.subscriber.stop()
        self.store.close()

    def counters(self) -> dict[str, Any]:
        """The dead letters in the store and the pipeline's counters (for the stream)."""
        stats = self.ingest.stats
        return {"dead_letters": self.dead_letters_before + stats.rejected, "ingest": stats.as_dict()}


def build_runtime(settings: Settings, line: Line | None = None) -> LineRuntime:
    """The parts for ``settings``, not started. Raises ValueError (a bad URL), ``twin.errors.LineError`` (a bad
    line file) or ``connectors.errors.ConnectorError`` (a store that cannot be opened), each naming what is wrong."""
    if line is None:
        line = read_line(settings.line_file)
    topics = Topics(settings.topic_prefix, settings.site, line.name)
    store = open_store(settings.store_url, spool_dir=settings.spool_dir)
    try:
        return _assemble(settings, line, topics, store)
    except BaseException:
        store.close()
        raise


def _assemble(settings: Settings, line: Line, topics: Topics, store: Store) -> LineRuntime:
    live_kwargs: dict[str, Any] = {
        "shift_hours": settings.shift_hours,
        "shift_origin_h": settings.shift_origin_h,
        "history_h": max(settings.history_hours, settings.shift_hours),
        "plan_per_hour": settings.plan_per_hour,
    }
    plant = None
    subscriber = None
    if settings.source == "demo":
        engine = Engine(line, settings.demo_seed)
        if settings.demo_warmup_hours > 0:
            engine.run(settings.demo_warmup_hours)
        snapshot = engine.snapshot()
        origin_ms = round(time.time() * 1000)
        live = LiveView(LiveLine(line, begin_h=origin_ms / MS_PER_HOUR, wip0=initial_wip(snapshot), **live_kwargs))
        # The demo's clock runs demo_speed times faster than the wall clock, so its timestamps soon lie days
        # ahead of the receive time: the check for gateway clocks that run ahead does not apply.
        ingest = _ingest(settings, line, topics, store, live, max_future_s=_NO_LIMIT_S)
        faults = Faults(malformed=settings.demo_malformed, seed=settings.demo_seed) if settings.demo_malformed else None
        plant = VirtualPlant(
            line,
            topics=topics,
            publisher=LoopbackPublisher(ingest),
            speed=settings.demo_speed,
            seed=settings.demo_seed,
            origin_ms=origin_ms,
            start=snapshot,
            faults=faults,
        )
    else:
        assert settings.mqtt_url is not None  # the settings' validator requires it for the mqtt source
        mqtt = parse_mqtt_url(settings.mqtt_url)
        mqtt = replace(
            mqtt, client_id=settings.mqtt_client_id or mqtt.client_id or default_client_id(line.name, settings.mqtt_group)
        )
        live = LiveView(LiveLine(line, **live_kwargs))
        ingest = _ingest(settings, line, topics, store, live, receive_maximum=mqtt.receive_maximum)
        subscriber = MqttSubscriber(mqtt, topics.subscription(settings.mqtt_group), ingest.submit)
        ingest.ack = subscriber.ack
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
    )
    hub.extra = rt.counters
    return rt


def _ingest(
    settings: Settings,
    line: Line,
    topics: Topics,
    store: Store,
    live: LiveView,
    *,
    receive_maximum: int = 2000,
    max_future_s: float = 24 * 3600.0,
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
        max_future_s=max_future_s,
    )
