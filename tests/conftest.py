"""Shared helpers for GigaTwin's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twin.engine import Engine
from twin.events import Event
from twin.schema import Line, load_line_data

REPO = Path(__file__).resolve().parent.parent
LINES = REPO / "simulations" / "lines"


def make_line(*stations: dict[str, Any], **top: Any) -> Line:
    """A line in hours from station dicts (the last station's buffer is left out)."""
    return load_line_data({"name": "test", "time_unit": "h", **top, "stations": list(stations)})


def record(line: Line, until: float, seed: int | tuple[int, ...] = 0, start: Any = None) -> tuple[Engine, list[Event]]:
    """Run ``line`` to ``until`` and return the engine and every event it emitted."""
    events: list[Event] = []
    engine = Engine(line, seed, start)
    engine.subscribe(events.append)
    engine.run(until)
    return engine, events


@pytest.fixture
def lines_dir() -> Path:
    """The folder of shipped line files."""
    return LINES
