"""The virtual plant of a line as plants run it: branches merging, a shift calendar, planned stops, changeovers and
store faults. What it publishes decodes, through the real codec, to exactly the engine's state changes; the stops
fall where the calendar puts them on the wall clock; motion signals read 0 while a machine is stopped for any reason
but a store's fault."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.feed import STOPPED_UNITS, VirtualPlant, on_wall_clock, warm_start
from connectors.publishing import CollectingPublisher
from connectors.telemetry import (
    MS_PER_HOUR,
    BufferReading,
    ProcessReading,
    Reading,
    StateReading,
    Topics,
    decode,
    reading_events,
)
from tests.conftest import MIXED_LINE, make_line
from twin.calendar import StopTimeline
from twin.counters import CumulativeCounters
from twin.engine import Engine
from twin.events import BufferLevel, MachineState, StateChanged
from twin.schema import Line
from twin.snapshot import LineSnapshot

# Tuesday 2025-11-18 09:17 UTC: inside the early shift, off every calendar boundary (whole minutes 00 and 30)
ORIGIN = round(datetime(2025, 11, 18, 9, 17, tzinfo=UTC).timestamp() * 1000)
ORIGIN_H = ORIGIN / MS_PER_HOUR
HOURS = 60.0  # Tuesday 09:17 to Thursday 21:17: breaks, nights, two planned stops of C1, many changeovers
SEED = 4

_JAM = {"name": "jam", "ttf": {"dist": "exponential", "mean": 5}, "ttr": {"dist": "exponential", "mean": 0.3}}
# Two branches (A1 -> A2, C1) merging at M, then a store with two fault modes, then the end. Signals in units of
# motion and current on A1 and M, a temperature beside them, and a current on the store (which a fault must not zero).
TREE = make_line(
    {
        "id": "A1",
        "inputs": [],
        "cycle_time": {"dist": "exponential", "mean": 0.05},
        "buffer_after": 20,
        "changeover": {"name": "coating_format", "duration": {"dist": "exponential", "mean": 0.3}, "every_units": 40},
        "signals": {
            "line_speed_m_min": {"unit": "m/min", "nominal": 30, "normal": [28, 32]},
            "oven_temp_c": {"unit": "degC", "nominal": 120, "normal": [110, 130]},
        },
    },
    {"id": "A2", "cycle_time": {"dist": "exponential", "mean": 0.05}, "failures": [_JAM], "buffer_after": 20},
    {
        "id": "C1",
        "inputs": [],
        "cycle_time": {"dist": "exponential", "mean": 0.045},
        "failures": [_JAM],
        "buffer_after": 20,
        "planned_stops": [{"name": "pm_C1", "start": "2025-11-18T12:00:00Z", "duration": 1.5, "every": 24}],
    },
    {
        "id": "M",
        "inputs": ["A2", "C1"],
        "cycle_time": {"dist": "exponential", "mean": 0.05},
        "failures": [_JAM],
        "buffer_after": 30,
        "signals": {
            "vibration_mm_s": {"unit": "mm/s", "nominal": 2.0, "normal": [1.0, 3.0], "condition": True},
            "motor_current_a": {"unit": "A", "nominal": 6.0, "normal": [5.0, 7.0]},
            "gripper_temp_c": {"unit": "degC", "nominal": 40, "normal": [35, 45]},
        },
    },
    {
        "id": "S",
        "kind": "delay",
        "capacity": 60,
        "dwell": 1.0,
        "buffer_after": 20,
        "failures": [
            {"name": "rack_fault", "ttf": {"dist": "exponential", "mean": 6}, "ttr": 1.0, "positions": 10},
            {"name": "channel_loss", "ttf": {"dist": "exponential", "mean": 4}, "ttr": 0.5, "positions": 5},
        ],
        "signals": {"fan_current_a": {"unit": "A", "nominal": 3.0, "normal": [2.5, 3.5]}},
    },
    {"id": "E", "cycle_time": {"dist": "exponential", "mean": 0.04}},
    calendar={
        "shifts": [{"name": "early", "start": "06:00", "hours": 8}, {"name": "late", "start": "14:00", "hours": 8}],
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "breaks": [{"start": "10:00", "duration": 0.5}, {"start": "18:00", "duration": 0.5}],
    },
)
TOPICS = Topics("acme", "plant1", TREE.name)


def _plant(line: Line, publisher: Any, **kw: Any) -> VirtualPlant:
    kw.setdefault("seed", SEED)
    kw.setdefault("origin_ms", ORIGIN)
    return VirtualPlant(line, topics=TOPICS, publisher=publisher, **kw)


def _decoded(messages: list[tuple[str, bytes]]) -> list[Reading]:
    out = []
    for topic, payload in messages:
        source, channel = TOPICS.parse(topic)
        out.append(decode(source, channel, payload))
    return out


def _published(hours: float = HOURS, **kw: Any) -> list[Reading]:
    pub = CollectingPublisher()
    _plant(TREE, pub, **kw).run_unpaced(hours)
    return _decoded(pub.messages)


def _per_key_last_of_each_ms(events: list[StateChanged]) -> dict[tuple[str, int], list[tuple[int, MachineState, str]]]:
    """Per machine, its state changes as (ms, state, reason), the last of each millisecond: what a plant publishes."""
    out: dict[tuple[str, int], list[tuple[int, MachineState, str]]] = defaultdict(list)
    for ev in events:
        row = (round(ev.t * MS_PER_HOUR), ev.state, ev.reason)
        seq = out[(ev.station, ev.machine)]
        if seq and seq[-1][0] == row[0]:
            seq[-1] = row
        else:
            seq.append(row)
    return dict(out)


def test_a_tree_lines_stops_setups_starvation_and_store_faults_reach_the_wire_as_the_engine_made_them() -> None:
    readings = _published(process_period_s=600.0)
    counters = CumulativeCounters()
    wire = [ev for r in readings if isinstance(r, StateReading) for ev in reading_events(r, counters)]
    # the engine on its own, started where the feed starts it (on the wall clock, at the origin)
    engine_events: list[StateChanged] = []
    engine_levels: list[BufferLevel] = []
    engine = Engine(TREE, SEED, LineSnapshot(time_h=ORIGIN_H))
    engine.subscribe(engine_events.append, kinds=[StateChanged])
    engine.subscribe(engine_levels.append, kinds=[BufferLevel])
    engine.run(ORIGIN_H + HOURS)
    assert _per_key_last_of_each_ms(wire) == _per_key_last_of_each_ms(engine_events)

    # and those changes hold what the contract promises
    seen = {(ev.station, ev.state, ev.reason) for ev in wire}
    assert ("A1", MachineState.SETUP, "coating_format") in seen
    for reason in ("break", "off_shift"):
        assert {sid for sid, state, why in seen if state is MachineState.PLANNED_STOP and why == reason} == {
            "A1",
            "A2",
            "C1",
            "M",
            "E",
        }, reason  # every process station, never the store (it keeps its clock)
    assert {sid for sid, state, why in seen if why == "pm_C1"} == {"C1"}
    starved_for = {why for sid, state, why in seen if sid == "M" and state is MachineState.STARVED}
    assert "C1" in starved_for
    assert starved_for <= {"A2", "C1"}
    # single-input stations starve without a reason, as before
    assert {why for sid, state, why in seen if sid != "M" and state is MachineState.STARVED} == {""}
    store = [(ev.machine, ev.state, ev.reason) for ev in wire if ev.station == "S"]
    assert (0, MachineState.DOWN, "rack_fault") in store
    assert (1, MachineState.DOWN, "channel_loss") in store
    assert {(m, s, r) for m, s, r in store if s is not MachineState.DOWN} == {
        (0, MachineState.WORKING, ""),
        (1, MachineState.WORKING, ""),
    }

    # a merge station's inputs are the buffers after A2 and C1, each on its upstream station's topic, as the engine
    # keyed them (the last level of each millisecond)
    levels: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in readings:
        if isinstance(r, BufferReading):
            levels[r.source.station].append((r.ts_ms, r.level))
    expected: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for ev in engine_levels:
        seq, row = expected[ev.station], (round(ev.t * MS_PER_HOUR), ev.level)
        if seq and seq[-1][0] == row[0]:
            seq[-1] = row
        else:
            seq.append(row)
    assert levels == expected
    assert {"A1", "A2", "C1"} <= set(levels)
    assert max(level for _, level in levels["C1"]) == 20  # C1 runs faster than M: its buffer fills


def test_planned_stops_fall_where_the_calendar_puts_them_on_the_wall_clock() -> None:
    assert on_wall_clock(TREE)
    assert not on_wall_clock(MIXED_LINE)
    readings = _published(process_period_s=600.0)
    timelines = {st.id: StopTimeline(TREE.calendar, TREE.planned_stops, st.planned_stops) for st in TREE.stations}
    states = [r for r in readings if isinstance(r, StateReading) and r.source.station != "S"]
    assert min(r.ts_ms for r in states) == ORIGIN  # every machine reports from the origin on
    stopped = 0
    for r in states:
        # half a millisecond on: inside the stretch that begins at the message's instant
        asked = timelines[r.source.station].at((r.ts_ms + 0.5) / MS_PER_HOUR).reason
        if r.state is MachineState.PLANNED_STOP:
            stopped += 1
            assert r.reason == asked, r
            assert r.packml == "STOPPED"
        else:
            assert asked is None, r
    assert stopped > 20
    # Tuesday 22:00 UTC to Wednesday 06:00 every process machine is stopped off shift, from the first instant
    night = [r for r in states if r.ts_ms == round(datetime(2025, 11, 18, 22, tzinfo=UTC).timestamp() * 1000)]
    assert {(r.source.station, r.state, r.reason) for r in night} == {
        (sid, MachineState.PLANNED_STOP, "off_shift") for sid in ("A1", "A2", "C1", "M", "E")
    }


def test_motion_signals_read_zero_while_a_machine_is_down_in_setup_or_stopped_but_not_while_a_store_has_a_fault() -> None:
    readings = _published(process_period_s=3.0, speed=60.0)  # one process message per station each simulated 3 min
    state: dict[tuple[str, int], MachineState] = {}
    seen: dict[tuple[str, MachineState], int] = defaultdict(int)
    for r in readings:
        if isinstance(r, StateReading):
            state[(r.source.station, r.machine)] = r.state
        elif isinstance(r, ProcessReading):
            sid = r.source.station
            if sid == "S":
                now = state.get(("S", 0))
                for name, value, _unit in r.values:
                    assert value > 0, (name, now)  # 2.5-3.5 A whether or not positions are out of use
                seen[(sid, now or MachineState.WORKING)] += 1
                continue
            now = state.get((sid, r.machine))
            if now is None:
                continue
            seen[(sid, now)] += 1
            for name, value, unit in r.values:
                if unit in STOPPED_UNITS and now in (MachineState.DOWN, MachineState.SETUP, MachineState.PLANNED_STOP):
                    assert value == 0.0, (sid, r.machine, name, now, r.ts_ms)
                else:
                    assert value > 0.0, (sid, r.machine, name, now, r.ts_ms)
    # every case was met often enough to matter
    for key in (
        ("A1", MachineState.WORKING),
        ("A1", MachineState.SETUP),
        ("A1", MachineState.PLANNED_STOP),
        ("M", MachineState.WORKING),
        ("M", MachineState.DOWN),
        ("M", MachineState.PLANNED_STOP),
        ("S", MachineState.DOWN),
    ):
        assert seen[key] >= 3, (key, dict(seen))


def test_a_warm_start_or_a_snapshot_from_elsewhere_is_moved_to_the_origin_and_the_calendar_applies_from_it() -> None:
    warm = warm_start(TREE, SEED, 30.0)  # on the engine's own clock: January 1970
    assert warm is not None
    assert sum(warm.buffers.values()) > 0  # it has run: the line is not empty
    # from Wednesday 10:15 (in the morning break) every process machine shows the break at the origin
    origin = round(datetime(2025, 11, 19, 10, 15, tzinfo=UTC).timestamp() * 1000)
    readings = _published(0.5, origin_ms=origin, start=warm, process_period_s=600.0)
    at_origin = {
        (r.source.station, r.machine, r.state, r.reason) for r in readings if isinstance(r, StateReading) and r.ts_ms == origin
    }
    assert {(sid, 0, MachineState.PLANNED_STOP, "break") for sid in ("A1", "A2", "C1", "M", "E")} <= at_origin
    # the snapshot's buffers are published at the origin, the engine's clock being the wall clock
    assert {r.source.station for r in readings if isinstance(r, BufferReading) and r.ts_ms == origin} >= {
        sid for sid, level in warm.buffers.items() if level
    }
    # a snapshot taken on Saturday night (off shift) starts a feed whose origin is Tuesday 09:17 (working): no machine
    # stays stopped
    saturday = Engine(TREE, SEED, LineSnapshot(time_h=ORIGIN_H - 58.0))
    saturday.run(ORIGIN_H - 50.0)
    snap = saturday.snapshot()
    assert any(m.state is MachineState.PLANNED_STOP for s in snap.stations.values() for m in s.machines)
    readings = _published(2.0, start=snap, process_period_s=600.0)
    first = {(r.source.station, r.machine): r for r in reversed(readings) if isinstance(r, StateReading)}
    assert all(r.ts_ms >= ORIGIN for r in first.values())
    assert not any(r.state is MachineState.PLANNED_STOP for r in first.values() if r.ts_ms < ORIGIN + 0.5 * MS_PER_HOUR)


@pytest.mark.parametrize("hour", [3, 10.25])
def test_a_feed_that_starts_in_a_stop_publishes_it_at_the_origin(hour: float) -> None:
    origin = round(datetime(2025, 11, 19, tzinfo=UTC).timestamp() * 1000 + hour * MS_PER_HOUR)  # Wednesday
    reason = "off_shift" if hour < 6 else "break"
    readings = _published(0.1, origin_ms=origin, process_period_s=600.0)
    at_origin = {
        (r.source.station, r.machine, r.state, r.reason) for r in readings if isinstance(r, StateReading) and r.ts_ms == origin
    }
    assert {(sid, 0, MachineState.PLANNED_STOP, reason) for sid in ("A1", "A2", "C1", "M", "E")} <= at_origin


# A station changing over for 6 min after every 10 units of a minute each, under twelve 2-hour shifts a day with a
# half-hour break in each: setups end inside breaks and the next units are loaded behind them, many times a day.
CHANGING = make_line(
    {"id": "MIX", "cycle_time": {"dist": "exponential", "mean": 0.02}, "buffer_after": 30},
    {
        "id": "COAT",
        "cycle_time": {"dist": "exponential", "mean": 1 / 60},
        "buffer_after": 30,
        "changeover": {"name": "chemistry_change", "duration": 0.1, "every_units": 10},
    },
    {"id": "END", "cycle_time": {"dist": "exponential", "mean": 0.015}},
    calendar={
        "shifts": [{"start": f"{h:02d}:00", "hours": 2} for h in range(0, 24, 2)],
        "breaks": [{"start": f"{h:02d}:00", "duration": 0.5} for h in range(1, 24, 2)],
    },
)


def test_a_snapshot_of_a_calendar_line_with_changeovers_is_valid_at_any_instant() -> None:
    """What a feed warms up to (and starts from) must pass the snapshot's checks wherever the warm-up ends: also just
    after a changeover, when the machine has loaded its next units behind a break."""
    engine = Engine(CHANGING, SEED, LineSnapshot(time_h=ORIGIN_H))
    loaded_behind_a_break = 0
    for k in range(1, 2401):  # every 36 s over a day
        engine.run(ORIGIN_H + k * 0.01)
        snap = engine.snapshot()
        snap.check(CHANGING)
        coat = snap.stations["COAT"].machines[0]
        loaded_behind_a_break += coat.state is MachineState.PLANNED_STOP and coat.units > 0
    assert loaded_behind_a_break > 0  # the case that mattered was met
