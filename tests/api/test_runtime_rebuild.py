"""A restarted service keeps the plant: the runtime rebuilds its live state from the store before it starts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.runtime import build_runtime
from api.settings import load_pipeline_settings
from connectors.feed import VirtualPlant
from connectors.linefile import read_line
from connectors.mqtt import Delivery
from tests.integration.streams import REFERENCE_LINE, TOPICS
from twin.stops import downtime_pareto


class _Collect:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, payload))


def test_a_restart_rebuilds_the_live_state_from_the_store(tmp_path: Path) -> None:
    settings = load_pipeline_settings(
        source="mqtt", mqtt_url="mqtt://127.0.0.1:1", store_url=f"sqlite:{tmp_path / 'r.db'}", line_file=REFERENCE_LINE
    )
    pub = _Collect()
    now_ms = round(time.time() * 1000)
    line = read_line(REFERENCE_LINE)
    plant = VirtualPlant(line, topics=TOPICS, publisher=pub, seed=3, origin_ms=now_ms - 6 * 3_600_000)
    plant.run_unpaced(6.0)  # six hours from empty, ending now: inside the retained history
    first = build_runtime(settings, line)
    first.ingest.process([Delivery(t, p, now_ms, (0, 0)) for t, p in pub.sent])
    before = first.live.snapshot.status
    assert before.stations["COAT_C"].good > 0
    first.stop()

    second = build_runtime(settings, line)  # a new process: nothing in memory
    assert second.live.snapshot.status.stations["COAT_C"].good == 0
    stats = second.rebuild()
    assert stats is not None
    assert stats.events > 0
    after = second.live.snapshot.status
    for sid, st in before.stations.items():
        assert (after.stations[sid].good, after.stations[sid].scrapped) == (st.good, st.scrapped), sid
    assert second.ingest.counters.resets == 0
    # what a plant engineer reads after the restart: the shift's output, its OEE and the stops, as before it
    assert after.shift == before.shift
    assert after.clock_h == before.clock_h
    kb, ka = first.live.snapshot.shift_kpis, second.live.snapshot.shift_kpis
    assert kb is not None
    assert ka is not None
    assert (ka.start_h, ka.end_h, ka.good, ka.scrapped) == (kb.start_h, kb.end_h, kb.good, kb.scrapped)
    for sid, st in kb.stations.items():
        assert ka.stations[sid].oee == pytest.approx(st.oee, abs=1e-9), sid
        assert ka.stations[sid].state_fractions == pytest.approx(st.state_fractions, abs=1e-9), sid
    t0 = before.history_start_h
    assert t0 is not None
    # the same state events (the store orders those of one instant by station and machine, the wire by arrival)
    ea, eb = second.live.history().state_events(t0), first.live.history().state_events(t0)
    assert sorted(ea, key=repr) == sorted(eb, key=repr)
    assert downtime_pareto(ea, line, t0, after.clock_h) == downtime_pareto(eb, line, t0, before.clock_h)
    second.stop()
