"""Window queries run in the window-query processes and answer there what they answer in the service's process."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import window_queries
from api.app import create_app
from api.live import LiveStatePublisher, start_window_pool
from api.settings import SettingsError
from tests.api.conftest import LINE_ID, VIEWER, demo_settings, runtime_of, wait_for
from tests.conftest import MIXED_LINE
from twin.engine import Engine
from twin.events import Event, MachineState, StateChanged
from twin.state import LiveLine

BASE = f"/api/v1/lines/{LINE_ID}"


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """One warm window-query process, as the service starts it."""
    made = start_window_pool(1)
    assert made is not None
    yield made
    made.shutdown(wait=True, cancel_futures=True)


def _publisher(hours: float = 60.0) -> LiveStatePublisher:
    """The mixed line's live state fed ``hours`` of a seeded run, with a late event (so the columns were copied)."""
    publisher = LiveStatePublisher(LiveLine(MIXED_LINE, begin_h=0.0, history_h=48.0), publish_every=500)
    events: list[Event] = []
    engine = Engine(MIXED_LINE, 3)
    engine.subscribe(events.append)
    engine.run(hours)
    for ev in events:
        publisher(ev)
    publisher.end_batch()
    publisher(StateChanged(hours - 5.0, "A", 0, MachineState.DOWN, "late"))
    publisher.end_batch()
    return publisher


def test_window_query_processes_yield_the_cpu_to_the_service(pool: ProcessPoolExecutor) -> None:
    # A replay is background work: on a busy machine the event loop and the pipeline must win the core.
    assert pool.submit(os.nice, 0).result(timeout=30) == min(19, os.nice(0) + 10)


def test_a_window_query_runs_in_another_process_and_answers_as_in_a_thread(pool: ProcessPoolExecutor) -> None:
    publisher = _publisher()
    publisher.window_pool = pool
    view = publisher.history()
    assert view.start_h > 0  # the history was cut to its 48 h: the base checkpoint is not at position 0
    line = MIXED_LINE

    async def both() -> None:
        assert await publisher.query(os.getpid) != os.getpid()  # the query itself runs in the pool's process
        for w0, w1 in ((view.start_h, view.clock_h), (view.clock_h - 7.3, view.clock_h - 1.1), (view.start_h + 3.4, None)):
            end = view.clock_h if w1 is None else w1
            sent = view.since(w0)
            assert len(sent.checkpoints) == 1  # only the checkpoint the window forks travels
            assert await publisher.query(window_queries.oee, line, sent, w0, end) == window_queries.oee(line, view, w0, end)
            assert await publisher.query(window_queries.downtime, line, sent, w0, end, 5) == window_queries.downtime(
                line, view, w0, end, 5
            )
            got = await publisher.query(window_queries.stops, line, sent, w0, end, None, 50)
            assert got == window_queries.stops(line, view, w0, end, None, 50)
            assert got.total_stops > 0

    asyncio.run(both())


def test_a_bad_window_raises_its_value_error_from_the_process(pool: ProcessPoolExecutor) -> None:
    publisher = _publisher()
    publisher.window_pool = pool
    view = publisher.history()
    early = view.start_h - 1.0

    async def ask() -> None:
        await publisher.query(window_queries.oee, MIXED_LINE, view.since(early), early, view.clock_h)

    with pytest.raises(ValueError, match="before the retained history") as raised:
        asyncio.run(ask())
    with pytest.raises(ValueError, match="retained history") as here:
        window_queries.oee(MIXED_LINE, view, early, view.clock_h)
    assert str(raised.value) == str(here.value)


def test_a_view_pickles_only_what_its_queries_read() -> None:
    publisher = _publisher()
    view = publisher.history()
    publisher(StateChanged(view.clock_h + 0.1, "A", 0, MachineState.WORKING, ""))  # appended to the shared columns
    t = view.clock_h - 6.0
    sent = pickle.loads(pickle.dumps(view.since(t)))
    assert sent.n < view.n  # the events before the window's checkpoint stayed home, and the one appended since
    assert sent.kpis(t) == view.kpis(t)
    assert sent.state_events(t) == view.state_events(t)
    assert list(sent.events(t, view.clock_h + 1)) == list(view.events(t, view.clock_h + 1))
    whole = pickle.loads(pickle.dumps(view))
    assert whole.n == view.n
    assert whole.kpis(view.start_h + 1.0) == view.kpis(view.start_h + 1.0)


def test_a_pool_whose_process_died_is_replaced() -> None:
    publisher = _publisher(10.0)
    first = start_window_pool(1)
    assert first is not None
    publisher.window_pool = first
    publisher.restart_window_pool = lambda: start_window_pool(1) or first

    async def run() -> int:
        return await publisher.query(os.getpid)

    try:
        pid = asyncio.run(run())
        os.kill(pid, signal.SIGKILL)  # e.g. the kernel's out-of-memory killer
        again = asyncio.run(run())
        assert again not in (pid, os.getpid())
        assert publisher.window_pool is not first
    finally:
        first.shutdown(wait=True, cancel_futures=True)
        if publisher.window_pool is not None:
            publisher.window_pool.shutdown(wait=True, cancel_futures=True)


def test_the_service_answers_window_queries_from_its_pool(tmp_path: Path) -> None:
    # the default: one window-query process (a long history: the window asked stays in it however slow the machine)
    app = create_app(demo_settings(tmp_path, history_hours=200.0), line=MIXED_LINE)
    with TestClient(app, headers={"X-API-Key": VIEWER}) as client:
        rt = runtime_of(client)
        assert isinstance(rt.live.window_pool, ProcessPoolExecutor)
        wait_for(lambda: (rt.live.snapshot.clock_h or 0) - (rt.live.snapshot.history_start_h or 0) > 3, what="3 h of history")
        start_h = rt.live.snapshot.history_start_h
        assert start_h is not None
        start, end = (datetime.fromtimestamp((start_h + h) * 3600, UTC) for h in (0.5, 2.5))
        params = {"start": start.isoformat(), "end": end.isoformat()}
        w0, w1 = start.timestamp() / 3600, end.timestamp() / 3600  # the window as the service reads it
        for path, here in (
            ("oee", lambda v: window_queries.oee(MIXED_LINE, v, w0, w1)),
            ("downtime", lambda v: window_queries.downtime(MIXED_LINE, v, w0, w1, 20)),
            ("stops", lambda v: window_queries.stops(MIXED_LINE, v, w0, w1, None, 100, rt.live.snapshot.plan_per_hour)),
        ):
            r = client.get(f"{BASE}/{path}", params=params)
            assert r.status_code == 200, r.text
            assert r.json() == here(rt.live.history()).model_dump(mode="json")  # a closed window: the same any time
        r = client.get(f"{BASE}/oee", params={"start": "2001-01-01T00:00:00Z", "end": "2001-01-01T08:00:00Z"})
        assert r.status_code == 400
        assert "retained history" in r.json()["error"]["message"]
    assert rt.live.window_pool is not None
    with pytest.raises(RuntimeError):  # shut down with the service
        rt.live.window_pool.submit(os.getpid)


def test_window_workers_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIGATWIN_WINDOW_WORKERS", "0")
    assert demo_settings(tmp_path).window_workers == 0
    with pytest.raises(SettingsError, match="window_workers"):
        demo_settings(tmp_path, window_workers=-1)
