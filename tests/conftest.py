"""Shared helpers for GigaTwin's tests."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from connectors.feed import VirtualPlant
from connectors.ingest import Ingest, LoopbackPublisher
from connectors.stores import Store
from connectors.telemetry import Topics
from twin.engine import Engine
from twin.events import Event
from twin.schema import Line, load_line_data

REPO = Path(__file__).resolve().parent.parent
LINES = REPO / "simulations" / "lines"


def make_line(*stations: dict[str, Any], **top: Any) -> Line:
    """A line in hours from station dicts (the last station's buffer is left out)."""
    return load_line_data({"name": "test", "time_unit": "h", **top, "stations": list(stations)})


def fill_store(line: Line, store: Store, hours: float, *, seed: int, origin_ms: int) -> None:
    """``hours`` of ``line``'s telemetry from the virtual plant into ``store`` through the real ingest (what a plant's
    store would hold; site ``plant1``, prefix ``gigatwin``); no message may be rejected. The store stays open."""
    topics = Topics("gigatwin", "plant1", line.name)
    ingest = Ingest(topics, store, line=line, batch_wait_s=0.01)
    stop = threading.Event()
    worker = threading.Thread(target=ingest.run, args=(stop,))
    worker.start()
    try:
        VirtualPlant(line, topics=topics, publisher=LoopbackPublisher(ingest), seed=seed, origin_ms=origin_ms).run_unpaced(hours)
    finally:
        stop.set()
        worker.join()
    assert ingest.stats.rejected == 0


def record(line: Line, until: float, seed: int | tuple[int, ...] = 0, start: Any = None) -> tuple[Engine, list[Event]]:
    """Run ``line`` to ``until`` and return the engine and every event it emitted."""
    events: list[Event] = []
    engine = Engine(line, seed, start)
    engine.subscribe(events.append)
    engine.run(until)
    return engine, events


FAIL = {"name": "f", "ttf": {"dist": "exponential", "mean": 6}, "ttr": {"dist": "exponential", "mean": 0.7}}
# A small line with everything the engine has: failures (operating and calendar), scrap, transfer lots,
# a direct hand-off, a store, a batch station. The KPI and live-state tests share it.
MIXED_LINE = make_line(
    {"id": "A", "cycle_time": {"dist": "exponential", "mean": 0.5}, "failures": [FAIL], "scrap": 0.05, "buffer_after": 3},
    {"id": "B", "machines": 2, "cycle_time": {"dist": "gamma", "mean": 1.0, "cv": 0.5}, "lot": 2, "buffer_after": 0},
    {"id": "S", "kind": "delay", "capacity": 8, "dwell": 2.5, "buffer_after": 2},
    {
        "id": "C",
        "batch_size": 3,
        "batch_timeout": 0.5,
        "cycle_time": 1.2,
        "failures": [{**FAIL, "basis": "calendar"}],
        "scrap": 0.1,
    },
)


@pytest.fixture
def lines_dir() -> Path:
    """The folder of shipped line files."""
    return LINES


SMALL_LINE_YAML = """
name: small_cell_line
time_unit: h
stations:
  - id: COAT
    cycle_time: 0.02
    failures:
      - {name: web_break, ttf: {dist: weibull, shape: 1.5, mean: 3h}, ttr: {dist: lognormal, mean: 20min, sigma: 0.8}}
    buffer_after: 40
  - id: AGE
    kind: delay
    capacity: 200
    dwell: 1.5h
    buffer_after: 40
  - id: EOL
    machines: 2
    cycle_time: 0.035
    failures:
      - {name: breakdown, ttf: {dist: exponential, mean: 5h}, ttr: 15min}
"""
"""A three-step line file (coating with Weibull web breaks, a 1.5 h aging store, two end-of-line testers) for the
forecast and backtest commands."""
