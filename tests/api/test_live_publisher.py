"""Readers never wait for the pipeline: published snapshots, window queries on history views, the store's health."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from api.live import LiveStatePublisher
from api.runtime import LineRuntime
from api.store_health import StoreHealthCache
from connectors.stores.base import Health
from tests.api.conftest import LINE_ID, VIEWER, LiveServer, demo_settings, wait_for
from tests.conftest import MIXED_LINE
from twin.engine import Engine
from twin.events import MachineState, StateChanged
from twin.history import HistoryView
from twin.kpis import RunKpis
from twin.state import LiveLine

BASE = f"/api/v1/lines/{LINE_ID}"


def test_snapshots_are_published_after_each_batch_and_within_a_huge_one() -> None:
    publisher = LiveStatePublisher(LiveLine(MIXED_LINE, begin_h=0.0), publish_every=100)
    events: list[object] = []
    engine = Engine(MIXED_LINE, 5)
    engine.subscribe(events.append)
    engine.run(40.0)
    assert len(events) > 450
    first = publisher.snapshot
    assert (first.version, first.clock_h) == (0, None)
    publisher(events[0])  # type: ignore[arg-type]  # the engine's events
    assert publisher.snapshot is first  # not published mid-batch
    publisher.end_batch()
    one = publisher.snapshot
    assert (one.version, one.status.events) == (1, 1)
    for ev in events[1:251]:
        publisher(ev)  # type: ignore[arg-type]
    # a batch of 250 events is published every 100 of them, so a reader never sees one minutes old
    assert (publisher.snapshot.version, publisher.snapshot.status.events) == (3, 201)
    publisher.end_batch()
    last = publisher.snapshot
    assert (last.version, last.status.events) == (4, 251)
    publisher.end_batch()  # nothing new: nothing published
    assert publisher.snapshot is last
    assert one.status.events == 1  # a published snapshot never changes
    assert last.shift_kpis == publisher.read(lambda live: live.shift_kpis())  # computed by the pipeline when it publishes
    assert publisher.set_plan(2.5).plan_per_hour == 2.5
    assert publisher.snapshot.version == 5


def test_status_answers_while_a_window_query_replays_and_late_events_flood_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    replay = HistoryView.kpis

    def held_replay(view: HistoryView, start_h: float, end_h: float | None = None, shares: bool = False) -> RunKpis:
        # the window query's reducer, still running until the test lets it finish
        started.set()
        assert release.wait(60), "the test did not release the window query"
        return replay(view, start_h, end_h, shares)

    monkeypatch.setattr(HistoryView, "kpis", held_replay)
    # window queries in threads of this process, where the held replay is (the pool's processes would not see it)
    with LiveServer(demo_settings(tmp_path, history_hours=48.0, window_workers=0), line=MIXED_LINE) as server:
        rt = server.runtime
        assert isinstance(rt, LineRuntime)  # demo_settings: the pipeline in this process
        wait_for(lambda: (rt.live.snapshot.clock_h or 0) - (rt.live.snapshot.history_start_h or 0) > 6, what="6 h of history")
        # rounded up: an ISO time holds whole microseconds, and the history's start rounded down is before it (a 400)
        start = datetime.fromtimestamp((rt.live.snapshot.history_start_h or 0) * 3600 + 1e-3, UTC)
        auth = {"X-API-Key": VIEWER}
        with (
            httpx.Client(base_url=server.url, headers=auth, timeout=60) as slow,
            httpx.Client(base_url=server.url, headers=auth, timeout=10) as fast,
            ThreadPoolExecutor(1) as pool,
        ):
            oee = pool.submit(slow.get, f"{BASE}/oee", params={"start": start.isoformat()})
            try:
                assert started.wait(20), "the window query did not start"
                # the pipeline takes a flood of late events and publishes while the replay runs
                version = rt.live.snapshot.version
                clock = rt.live.snapshot.clock_h
                assert clock is not None
                for i in range(2000):
                    rt.live(StateChanged(clock - 0.5 + i * 1e-5, "A", 0, MachineState.DOWN, "late"))
                rt.live.end_batch()
                assert rt.live.snapshot.version > version
                status = fast.get(f"{BASE}/status")
                assert status.status_code == 200
                assert status.json()["late_events"] >= 2000  # the loop answered from the latest snapshot
                assert fast.get(f"{BASE}/status/A").status_code == 200
                assert fast.get("/metrics").status_code == 200
                assert not oee.done()  # all of that while the window query was still replaying
            finally:
                release.set()
            answer = oee.result(timeout=60)
            assert answer.status_code == 200, answer.text


def test_the_store_health_is_read_without_waiting_for_a_probe() -> None:
    probing, finish = threading.Event(), threading.Event()
    calls: list[int] = []
    running = [0, 0]  # now, most at once

    def probe() -> Health:
        calls.append(1)
        running[0] += 1
        running[1] = max(running)
        probing.set()
        assert finish.wait(10)
        running[0] -= 1
        return Health(True, f"probe {len(calls)}", 0)

    cache = StoreHealthCache(probe, max_age_s=0.0)
    assert cache.latest() is None  # nothing yet, and a probe starts in the background
    assert probing.wait(5)
    for _ in range(20):
        assert cache.latest() is None  # readers do not wait for the probe in flight, nor start another
    assert len(calls) == 1
    finish.set()
    wait_for(lambda: cache.latest() is not None, what="the first probe")
    # each read of a stale result starts a refresh
    wait_for(lambda: cache.latest() is not None and cache.probes >= 3, what="refreshes of a stale result")
    assert running[1] == 1  # one probe at a time
