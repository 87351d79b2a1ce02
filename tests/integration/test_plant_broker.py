"""A calendar line's virtual plant over a real Mosquitto into the real ingest: a planned stop and a changeover it
publishes arrive and show in the live state with their reasons, and a store's faults of either failure mode are
taken, not dead-lettered."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.ingest_service import IngestService, IngestSettings
from connectors.feed import VirtualPlant
from connectors.mqtt import MqttPublisher, parse_mqtt_url
from connectors.stores.sqlite import SqliteStore
from connectors.telemetry import MS_PER_HOUR, Topics
from tests.conftest import make_line
from tests.integration.mqtt_server import MosquittoServer
from tests.integration.streams import wait_for
from twin.engine import Engine
from twin.events import MachineState, StateChanged
from twin.snapshot import LineSnapshot

pytestmark = pytest.mark.integration

SEED = 2
# P stops for its own maintenance an hour in every six, S changes over every 5 units for half an hour on average,
# the store ST has two fault modes (its "machines" 0 and 1 on the wire); the calendar gives 16 h shifts every day.
LINE = make_line(
    {
        "id": "P",
        "cycle_time": {"dist": "exponential", "mean": 0.05},
        "buffer_after": 10,
        "planned_stops": [{"name": "pm_P", "start": "2025-01-01T00:30:00Z", "duration": 1.0, "every": 6}],
    },
    {
        "id": "S",
        "cycle_time": {"dist": "exponential", "mean": 0.04},
        "buffer_after": 10,
        "changeover": {"name": "format_change", "duration": {"dist": "exponential", "mean": 0.5}, "every_units": 5},
    },
    {
        "id": "ST",
        "kind": "delay",
        "capacity": 30,
        "dwell": 0.5,
        "buffer_after": 10,
        "failures": [
            {"name": "rack_fault", "ttf": {"dist": "exponential", "mean": 3}, "ttr": 0.5, "positions": 10},
            {"name": "channel_loss", "ttf": {"dist": "exponential", "mean": 2}, "ttr": 0.3, "positions": 5},
        ],
    },
    {"id": "E", "cycle_time": {"dist": "exponential", "mean": 0.03}},
    calendar={"shifts": [{"name": "day", "start": "06:00", "hours": 16}]},
)
TOPICS = Topics("gigatwin", "plant1", LINE.name)


def _both_stopped(origin_ms: int, after_h: float, hours: float) -> float:
    """The middle of the first stretch (from ``after_h`` to ``hours`` after the origin) in which P is in its planned
    stop while S is in SETUP, in hours after the origin, from the engine run the feed will publish."""
    t0 = origin_ms / MS_PER_HOUR
    events: list[StateChanged] = []
    engine = Engine(LINE, SEED, LineSnapshot(time_h=t0))
    engine.subscribe(events.append, kinds=[StateChanged])
    engine.run(t0 + hours)
    now: dict[str, tuple[MachineState, str]] = {}
    since = None
    for ev in events:
        if ev.station in ("P", "S"):
            now[ev.station] = (ev.state, ev.reason)
        both = now.get("P") == (MachineState.PLANNED_STOP, "pm_P") and now.get("S") == (MachineState.SETUP, "format_change")
        both = both and ev.t >= t0 + after_h
        if both and since is None:
            since = ev.t
        elif not both and since is not None and ev.t > since + 0.02:
            return (since + ev.t) / 2 - t0
        elif not both:
            since = None
    raise AssertionError(f"P never stopped while S was in SETUP within {hours} h")


def test_a_planned_stop_and_a_changeover_cross_the_broker_into_the_live_state(broker: MosquittoServer, tmp_path: Path) -> None:
    # an origin on a whole minute a day and a half ago: every timestamp lies in the past of the receive clock
    origin_ms = (round(time.time() * 1000) - 36 * 3_600_000) // 60_000 * 60_000
    # after the first night (22:00 to 06:00 UTC), so that the feed publishes one
    night_h = (22 * MS_PER_HOUR - origin_ms % (24 * MS_PER_HOUR)) % (24 * MS_PER_HOUR) / MS_PER_HOUR
    until_h = _both_stopped(origin_ms, night_h + 8.0, night_h + 32.0)
    store = SqliteStore(tmp_path / "edge.db")
    settings = IngestSettings(mqtt=parse_mqtt_url(broker.url, client_id="edge-ingest"), topics=TOPICS, batch_wait_s=0.02)
    service = IngestService(LINE, store, settings)
    service.start()
    pub = MqttPublisher(parse_mqtt_url(broker.url, client_id="edge-plant"))
    pub.start()
    sent: list[str] = []

    class Counting:
        def publish(self, topic: str, payload: bytes) -> None:
            sent.append(topic)
            pub.publish(topic, payload)

    try:
        VirtualPlant(
            LINE, topics=TOPICS, publisher=Counting(), seed=SEED, origin_ms=origin_ms, process_period_s=600.0
        ).run_unpaced(until_h)
        pub.flush()
        wait_for(lambda: service.ingest.stats.received >= len(sent), 60, "the ingest to take every message")
        wait_for(lambda: service.ingest.stats.events > 0 and service.live.clock_h is not None, 10, "the live state")
        stats = service.ingest.stats
        assert stats.rejected == 0, "a message was dead-lettered (a store fault's machine index?)"
        status = service.live.status()
        p, s = status.stations["P"], status.stations["S"]
        assert (p.state, p.reason) == (MachineState.PLANNED_STOP, "pm_P")
        assert (s.state, s.reason) == (MachineState.SETUP, "format_change")
        # both store fault modes arrived and were stored under their machine numbers
        lo, hi = origin_ms, origin_ms + round(until_h * MS_PER_HOUR) + 1
        faults = {(pt.machine, pt.fields["reason"]) for pt in store.range("state", start_ms=lo, end_ms=hi, station="ST")}
        assert {(0, "rack_fault"), (1, "channel_loss")} <= faults
        # and the off-shift nights too, at the calendar's 22:00 UTC
        nights = [
            pt.ts_ms
            for pt in store.range("state", start_ms=lo, end_ms=hi, station="S", limit=100_000)
            if pt.fields["reason"] == "off_shift"
        ]
        assert origin_ms + round(night_h * MS_PER_HOUR) in nights
        assert all(ts == origin_ms or ts % (24 * MS_PER_HOUR) == 22 * MS_PER_HOUR for ts in nights)
    finally:
        service.stop()
        pub.stop()
