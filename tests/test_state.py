"""The live line state: rebuilt from events alone, it gives what the engine's own reducer and snapshot give."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.linefile import read_line
from tests.conftest import FAIL, LINES, make_line, record
from tests.conftest import MIXED_LINE as LINE
from twin.engine import Engine
from twin.events import (
    BufferLevel,
    Event,
    MachineState,
    ProcessValue,
    StateChanged,
    StoreOccupancy,
    UnitsCompleted,
    UnitsReleased,
)
from twin.kpis import KpiReducer, RunKpis, initial_wip
from twin.schema import Line
from twin.state import LiveLine, line_oee

REFERENCE = read_line(LINES / "reference_cell_line.yaml")


def _epoch_h(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """Hours since the Unix epoch of a time in March 2024 (UTC), as live telemetry's clock reads it."""
    return datetime(2024, 3, day, hour, minute, second, tzinfo=UTC).timestamp() / 3600


def _exact(kpis: RunKpis | None) -> dict[str, Any]:
    """Every field, for exact comparison (NaN, the lead time of a window nothing left, compares equal to NaN)."""
    assert kpis is not None
    return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in dataclasses.asdict(kpis).items()}


def _run_with_reducers(
    line: Line, hours: float, seed: int, windows: list[tuple[float, float]], **live_args: Any
) -> tuple[Engine, LiveLine, list[KpiReducer]]:
    """Run ``line`` with a reducer per window attached the way ``run_once`` attaches it, and a live line subscribed."""
    engine = Engine(line, seed)
    reducers = []
    for w0, w1 in windows:
        reducer = KpiReducer(line, w0, w1, begin_h=0.0, wip0=0)
        reducer.attach(engine)
        reducers.append(reducer)
    live = LiveLine(line, begin_h=0.0, **live_args)
    engine.subscribe(live)
    engine.run(hours)
    return engine, live, reducers


# -- one reducer ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "hours", "warmup"),
    [pytest.param(REFERENCE, 60.0, 24.0, id="reference_line"), pytest.param(LINE, 400.0, 50.0, id="small_line")],
)
def test_live_kpis_equal_the_engines_reducer_exactly(line: Line, hours: float, warmup: float) -> None:
    _, live, (after_warmup, whole) = _run_with_reducers(line, hours, 3, [(warmup, hours), (0.0, hours)], history_h=hours)
    assert _exact(live.kpis(warmup, hours)) == _exact(after_warmup.result())
    assert _exact(live.kpis(0.0, hours)) == _exact(whole.result())
    assert whole.result().scrapped > 0  # the comparison covers scrap, not only states


def test_shift_kpis_so_far_equal_a_reducer_over_the_shift_so_far() -> None:
    engine, events = Engine(LINE, 8), list[Event]()
    live = LiveLine(LINE, begin_h=0.0, shift_hours=8.0, shift_origin_h=6.0)
    engine.subscribe(live)
    engine.subscribe(events.append)
    for until in (3.0, 13.5, 21.9, 22.4, 70.0):  # the first shift began before the run; 21.9 -> 22.4 crosses a change
        engine.run(until)
        so_far = live.shift_kpis()
        status = live.status()
        clock = live.clock_h
        assert so_far is not None
        assert status.shift is not None
        assert clock is not None
        start, end = live.shift_of(clock)
        assert (status.shift.start_h, status.shift.end_h) == (start, end)
        assert (so_far.start_h, so_far.end_h) == (max(start, 0.0), clock)
        replay = KpiReducer(LINE, so_far.start_h, clock)
        for e in events:
            replay(e)
        assert _exact(so_far) == _exact(replay.result())
        assert status.shift.good == so_far.good
        assert _exact(live.kpis(so_far.start_h)) == _exact(so_far)


def test_the_live_state_agrees_with_the_engines_snapshot() -> None:
    engine, live, _ = _run_with_reducers(LINE, 300.0, 4, [], history_h=300.0)
    snapshot = engine.snapshot()
    status = live.status()
    assert status.wip == initial_wip(snapshot)
    assert status.good == engine.sink.shipped
    assert status.clock_h is not None
    assert status.clock_h <= 300.0
    for sid, station in status.stations.items():
        snap = snapshot.stations[sid]
        if station.kind == "delay":
            assert station.store is not None
            assert station.store.dwelling + station.store.held == sum(lot.units for lot in snap.lots)
        else:
            assert [m.state for m in station.machines] == [m.state for m in snap.machines]
            assert [m.reason for m in station.machines] == [m.reason for m in snap.machines]
            assert all(m.since_h is not None and m.since_h <= status.clock_h for m in station.machines)
        if sid in snapshot.buffers:
            assert (station.buffer_level or 0) == snapshot.buffers[sid]  # None: never changed from empty
    kpis = live.kpis(0.0)
    assert {sid: s.good for sid, s in status.stations.items()} == {sid: s.good for sid, s in kpis.stations.items()}
    assert status.scrapped == kpis.scrapped


def test_late_events_within_a_jitter_give_the_same_kpis_and_state() -> None:
    _, events = record(LINE, 300, seed=4)
    # Shuffle within 0.3 h; events at the same instant keep their order, as one publisher's messages do.
    rng = random.Random(7)
    groups = [list(g) for _, g in itertools.groupby(events, key=lambda e: e[0])]
    shuffled = [e for g in sorted(groups, key=lambda g: g[0][0] + rng.uniform(0.0, 0.3)) for e in g]
    in_order, jittered = LiveLine(LINE, begin_h=0.0, history_h=300), LiveLine(LINE, begin_h=0.0, history_h=300)
    for e in events:
        in_order(e)
    for i, e in enumerate(shuffled):
        jittered(e)
        if i % 100 == 0:
            jittered.shift_kpis()  # a dashboard asking meanwhile: later late events land before what it has taken
    a, b = in_order.status(), jittered.status()
    assert b.late_events > len(events) // 10
    assert (a.late_events, a.events) == (0, b.events)
    assert b.stations == a.stations  # states, since when, reasons, counts, levels
    assert (b.good, b.scrapped, b.wip, b.shift, b.clock_h) == (a.good, a.scrapped, a.wip, a.shift, a.clock_h)
    for w0, w1 in [(0.0, 300.0), (50.0, 120.0), (140.0, None)]:
        assert _exact(jittered.kpis(w0, w1)) == _exact(in_order.kpis(w0, w1))
    assert _exact(jittered.shift_kpis()) == _exact(in_order.shift_kpis())


def test_a_late_event_does_not_overwrite_a_newer_state_but_counts() -> None:
    live = LiveLine(LINE, begin_h=0.0)
    live(StateChanged(1.0, "A", 0, MachineState.WORKING, ""))
    live(StateChanged(3.0, "A", 0, MachineState.DOWN, "f"))
    live(StateChanged(2.0, "A", 0, MachineState.BLOCKED, ""))  # late and older than DOWN
    live(UnitsCompleted(2.5, "C", 0, 3, 1))
    live(BufferLevel(2.0, "A", 2))
    live(BufferLevel(1.0, "A", 1))
    status = live.status()
    machine = status.stations["A"].machines[0]
    assert (machine.state, machine.since_h, machine.reason) == (MachineState.DOWN, 3.0, "f")
    assert (status.good, status.scrapped, status.late_events, status.events) == (3, 1, 4, 6)
    assert status.stations["A"].buffer_level == 2
    assert live.kpis(0.0, 4.0).stations["A"].state_fractions["blocked"] == pytest.approx(0.25)  # [2, 3) of [0, 4]


def test_a_repeated_report_keeps_since_and_a_late_one_can_move_it() -> None:
    live = LiveLine(LINE, begin_h=0.0)
    live(StateChanged(1.0, "A", 0, MachineState.DOWN, "f"))
    live(StateChanged(2.0, "A", 0, MachineState.DOWN, "f"))  # a heartbeat
    assert live.status().stations["A"].machines[0].since_h == 1.0
    live(StateChanged(1.5, "A", 0, MachineState.WORKING, ""))  # arrives late: the machine was up in between
    assert live.status().stations["A"].machines[0].since_h == 2.0
    live(StateChanged(0.5, "A", 0, MachineState.STARVED, ""))  # before the current state began: no change
    assert live.status().stations["A"].machines[0].since_h == 2.0


def test_events_before_the_history_are_dropped_and_bad_events_refused() -> None:
    live = LiveLine(LINE, begin_h=10.0)
    live(UnitsCompleted(9.0, "C", 0, 5, 0))
    live(UnitsReleased(10.0, 4))
    for bad in (
        StateChanged(11.0, "NOPE", 0, MachineState.DOWN, "f"),
        StateChanged(11.0, "B", 2, MachineState.DOWN, "f"),
        StateChanged(11.0, "S", 0, MachineState.DOWN, "f"),  # a store has no machines
        BufferLevel(11.0, "C", 1),  # the last station ships: no buffer after it
        UnitsCompleted(10.5, "A", -1, 1, 0),
    ):
        with pytest.raises(ValueError, match="not an event of line"):
            live(bad)
    status = live.status()
    assert (status.events, status.late_events, status.dropped_events, status.good, status.released) == (2, 1, 1, 0, 4)
    assert status.clock_h == 10.0
    with pytest.raises(ValueError, match="before the retained history"):
        live.kpis(9.0, 10.0)


def test_the_first_event_begins_the_live_state_when_begin_is_not_given() -> None:
    live = LiveLine(LINE)
    assert live.status().clock_h is None
    assert live.shift_kpis() is None
    with pytest.raises(ValueError, match="no events yet"):
        live.kpis(0.0, 1.0)
    live(UnitsReleased(5.0, 2))
    live(UnitsReleased(4.0, 2))
    status = live.status()
    assert (status.history_start_h, status.released, status.dropped_events) == (5.0, 2, 1)


# -- shifts and plan --------------------------------------------------------------------------------------------
def test_shifts_on_an_epoch_clock_and_output_against_plan() -> None:
    live = LiveLine(LINE)  # shifts at 06:00, 14:00, 22:00 UTC
    assert live.plan_per_hour == pytest.approx(2.0 * 0.95 * 0.9)  # A's (and B's) 2/h, A's and C's scrap after it
    assert live.shift_of(_epoch_h(5, 13, 59, 59)) == (_epoch_h(5, 6), _epoch_h(5, 14))
    assert live.shift_of(_epoch_h(5, 14)) == (_epoch_h(5, 14), _epoch_h(5, 22))
    assert live.shift_of(_epoch_h(6, 1)) == (_epoch_h(5, 22), _epoch_h(6, 6))

    live(UnitsReleased(_epoch_h(5, 13), 10))
    live(UnitsCompleted(_epoch_h(5, 13, 30), "C", 0, 3, 0))
    live(UnitsCompleted(_epoch_h(5, 13, 59), "C", 0, 2, 1))
    morning = live.status().shift
    assert morning is not None
    assert (morning.start_h, morning.good) == (_epoch_h(5, 6), 5)
    assert morning.plan == pytest.approx(live.plan_per_hour * 59 / 60)  # since the live state began at 13:00

    live(UnitsCompleted(_epoch_h(5, 14), "C", 0, 3, 0))  # the first event of the next shift
    live(UnitsCompleted(_epoch_h(5, 13, 45), "C", 0, 1, 0))  # late, in the shift before
    live(UnitsCompleted(_epoch_h(5, 14, 30), "C", 0, 1, 0))
    live(UnitsCompleted(_epoch_h(5, 14, 10), "C", 0, 2, 0))  # late, in this shift
    afternoon = live.status(now_h=_epoch_h(5, 15))
    assert afternoon.shift is not None
    assert (afternoon.shift.start_h, afternoon.shift.good, afternoon.good) == (_epoch_h(5, 14), 6, 12)
    assert afternoon.shift.plan == pytest.approx(live.plan_per_hour)
    so_far = live.shift_kpis()
    assert so_far is not None
    assert (so_far.start_h, so_far.end_h, so_far.good) == (_epoch_h(5, 14), _epoch_h(5, 14, 30), 6)
    assert live.kpis(_epoch_h(5, 13), _epoch_h(5, 13, 59, 30)).good == 6
    night = live.status(now_h=_epoch_h(5, 22, 30)).shift
    assert night is not None
    assert (night.start_h, night.good) == (_epoch_h(5, 22), 0)


def test_the_reference_lines_plan_is_formation_times_the_yield_after_it() -> None:
    live = LiveLine(REFERENCE)
    yield_after = (1 - 0.012) * (1 - 0.003) * (1 - 0.008) * (1 - 0.008)  # FORM, DEGAS, AGE, EOL
    assert live.constraint == "FORM"
    assert live.plan_per_hour == pytest.approx(219 * 256 / 18.5 * yield_after)


# -- history --------------------------------------------------------------------------------------------------
def test_history_is_pruned_and_windows_inside_it_stay_exact() -> None:
    engine = Engine(LINE, 11)
    last_day = KpiReducer(LINE, 576.0, 600.0, begin_h=0.0)
    last_day.attach(engine)
    live = LiveLine(LINE, begin_h=0.0, history_h=24.0)
    engine.subscribe(live)
    retained = []
    for until in range(50, 601, 50):
        engine.run(float(until))
        status = live.status()
        assert status.clock_h is not None
        assert status.history_start_h is not None
        assert status.clock_h - 27.0 <= status.history_start_h <= max(status.clock_h - 24.0, 0.0)  # 24 h + an eighth
        retained.append(status.retained_events)
    assert max(retained) < live.status().events / 10  # bounded: not growing with the run
    assert max(retained[2:]) < 1.6 * min(retained[2:])
    assert _exact(live.kpis(576.0, 600.0)) == _exact(last_day.result())
    with pytest.raises(ValueError, match="before the retained history"):
        live.kpis(500.0, 600.0)


def test_history_is_bounded_by_count_and_windows_inside_it_stay_exact() -> None:
    _, events = record(LINE, 300, seed=6)
    bounded, unbounded = (
        LiveLine(LINE, begin_h=0.0, history_h=400.0, max_events=800),
        LiveLine(LINE, begin_h=0.0, history_h=400.0),
    )
    for e in events:
        bounded(e)
        unbounded(e)
    status = bounded.status()
    assert status.retained_events <= 800
    assert status.trimmed_events > 0  # let go early, and counted
    assert status.trimmed_events + status.retained_events == unbounded.status().retained_events
    start = status.history_start_h
    assert start is not None
    assert start > 0.0
    assert bounded.status().stations == unbounded.status().stations  # current values do not depend on the bound
    for w0, w1 in [(start, 300.0), (start + 1.0, 290.0)]:
        assert _exact(bounded.kpis(w0, w1)) == _exact(unbounded.kpis(w0, w1))
    assert bounded.state_events(start) == unbounded.state_events(start)
    with pytest.raises(ValueError, match="before the retained history"):
        bounded.kpis(start - 1.0)


def test_a_late_event_invalidates_only_the_checkpoints_after_it() -> None:
    _, events = record(LINE, 48, seed=8)
    live = LiveLine(LINE, begin_h=0.0)
    for e in events:
        live(e)
    live.build_checkpoints()
    history = live._history  # the retained history, to look at its checkpoints
    assert history is not None
    before = history.checkpoints
    assert len(before) >= 40  # about one an hour
    clock = live.clock_h
    assert clock is not None
    late = StateChanged(before[-1].t - 0.5, "A", 0, MachineState.DOWN, "late")  # 30 min before the last checkpoint
    live(late)
    kept = history.checkpoints
    assert all(a is b for a, b in zip(kept, before, strict=False))  # the reducers before it are not rebuilt
    assert kept[-1].t <= late.t < before[-1].t
    assert len(kept) == len(before) - 1
    live.build_checkpoints()
    assert len(history.checkpoints) == len(before)
    # and the windows and the shift are what a live line fed the same events in time order gives
    in_order = LiveLine(LINE, begin_h=0.0)
    for e in sorted([*events, late], key=lambda e: e[0]):
        in_order(e)
    for w0 in (0.0, 30.0, clock - 1.0):
        assert _exact(live.kpis(w0)) == _exact(in_order.kpis(w0))
    assert _exact(live.shift_kpis()) == _exact(in_order.shift_kpis())


def test_a_view_of_the_history_stays_as_it_was() -> None:
    _, events = record(LINE, 100, seed=9)
    live = LiveLine(LINE, begin_h=0.0, history_h=48.0)
    for e in events[: len(events) // 2]:
        live(e)
    live.build_checkpoints()
    view = live.view()
    clock = view.clock_h
    start = view.start_h
    expected = view.kpis(start, clock)
    expected_states = view.state_events(start, clock)
    # the pipeline goes on meanwhile: in-order events, late ones (inserted into a copy) and cuts of the history
    for e in events[len(events) // 2 :]:
        live(e)
        live(StateChanged(max(e[0] - 0.2, live.history_start_h or 0.0), "A", 0, MachineState.DOWN, "late"))
    assert (live.history_start_h or 0.0) > start
    assert _exact(view.kpis(start, clock)) == _exact(expected)
    assert view.state_events(start, clock) == expected_states


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    late_share=st.floats(0.0, 0.5),
    lateness_h=st.floats(0.01, 3.0),
    checkpoint_h=st.sampled_from([0.25, 1.0, 2.5]),
    asks=st.integers(1, 60),
)
def test_late_events_checkpoints_and_the_shift_reducer_agree_with_time_order(
    seed: int, late_share: float, lateness_h: float, checkpoint_h: float, asks: int
) -> None:
    # Any arrival order within a lateness, any checkpoint spacing, a dashboard asking meanwhile: the same KPIs as the
    # events taken in time order.
    _, events = record(LINE, 40, seed=seed)
    rng = random.Random(seed)
    groups = [list(g) for _, g in itertools.groupby(events, key=lambda e: e[0])]
    key = {id(g): g[0][0] + (rng.uniform(0.0, lateness_h) if rng.random() < late_share else 0.0) for g in groups}
    arrival = [e for g in sorted(groups, key=lambda g: key[id(g)]) for e in g]
    live = LiveLine(LINE, begin_h=0.0, checkpoint_h=checkpoint_h)
    in_order = LiveLine(LINE, begin_h=0.0)
    for i, e in enumerate(arrival):
        live(e)
        if i % asks == 0:
            live.shift_kpis()
            live.build_checkpoints()
    for e in events:
        in_order(e)
    assert live.status().stations == in_order.status().stations
    assert _exact(live.shift_kpis()) == _exact(in_order.shift_kpis())
    clock = in_order.clock_h
    assert clock is not None
    for w0 in (0.0, 13.3, 30.0, clock - 0.2):
        assert _exact(live.kpis(w0)) == _exact(in_order.kpis(w0))
        assert live.state_events(w0) == in_order.state_events(w0)


def test_line_oee_splits_into_availability_performance_and_quality() -> None:
    _, live, _ = _run_with_reducers(LINE, 300.0, 2, [], history_h=300.0)
    kpis = live.kpis(20.0)
    oee = line_oee(LINE, kpis)
    span = kpis.end_h - kpis.start_h
    assert (oee.constraint, oee.ideal_rate_per_hour) == ("A", 2.0)
    a = kpis.stations["A"]
    # A works one unit at a time: over 280 h, its good units at the ideal rate, up to one unit at each edge
    assert abs(oee.oee - a.good / 2.0 / span) <= 2 * 0.5 / span
    assert oee.quality == a.good / (a.good + a.scrapped)
    assert oee.availability == a.availability
    assert oee.oee == pytest.approx(oee.availability * oee.performance * oee.quality)
    assert 0.0 < oee.oee < oee.availability * oee.quality <= 1.0


# -- the summary a plant engineer reads -------------------------------------------------------------------------
def test_station_summary_counts_process_values_and_store() -> None:
    line = make_line(
        {"id": "P", "machines": 4, "cycle_time": 1.0, "failures": [FAIL], "buffer_after": 5},
        {"id": "S", "kind": "delay", "capacity": 10, "dwell": 1.0, "buffer_after": 5},
        {"id": "Q", "cycle_time": 1.0},
    )
    live = LiveLine(line, begin_h=0.0)
    events: list[Event] = [StateChanged(0.0, "P", m, MachineState.WORKING, "") for m in range(3)]
    events += [
        StateChanged(0.5, "P", 3, MachineState.DOWN, "f"),
        ProcessValue(0.6, "P", 1, "speed", 42.0, "m/min"),
        ProcessValue(0.7, "P", 2, "speed", 40.0, "m/min"),
        ProcessValue(0.65, "P", 0, "speed", 99.0, "m/min"),  # late: older than the reading it would replace
        StoreOccupancy(0.8, "S", 6, 2, False),
    ]
    for e in events:
        live(e)
    status = live.status()
    p, s, q = status.stations["P"], status.stations["S"], status.stations["Q"]
    assert (p.state, p.down_share) == (MachineState.WORKING, 0.25)  # producing, a quarter of it down
    assert p.machine_counts == {"WORKING": 3, "STARVED": 0, "BLOCKED": 0, "DOWN": 1, "SETUP": 0, "PLANNED_STOP": 0, "UNKNOWN": 0}
    speed = p.process_values["speed"]
    assert (speed.value, speed.unit, speed.t, speed.machine) == (40.0, "m/min", 0.7, 2)
    assert s.state == MachineState.BLOCKED
    assert s.store is not None
    assert (s.store.dwelling, s.store.held) == (6, 2)
    assert q.state is None
    assert q.machine_counts["UNKNOWN"] == 1
    for m in range(3):
        live(StateChanged(1.0, "P", m, MachineState.STARVED, ""))
    assert live.status().stations["P"].state == MachineState.STARVED  # not producing: three starved, one down
    for m in range(2):
        live(StateChanged(1.1, "P", m, MachineState.DOWN, "f"))
    assert live.status().stations["P"].state == MachineState.DOWN


# -- properties -------------------------------------------------------------------------------------------------
@st.composite
def small_lines(draw: st.DrawFn) -> Line:
    n = draw(st.integers(1, 3))
    stations: list[dict[str, Any]] = []
    for i in range(n):
        if 0 < i < n - 1 and draw(st.booleans()):
            station: dict[str, Any] = {"id": f"S{i}", "kind": "delay", "capacity": draw(st.integers(1, 6)), "dwell": 1.5}
        else:
            station = {
                "id": f"S{i}",
                "machines": draw(st.integers(1, 3)),
                "cycle_time": {"dist": "exponential", "mean": draw(st.sampled_from([0.3, 0.8]))},
            }
            if draw(st.booleans()):
                station["batch_size"] = draw(st.integers(2, 4))
            if draw(st.booleans()):
                station["failures"] = [{**FAIL, "basis": draw(st.sampled_from(["operating", "calendar"]))}]
        station["scrap"] = draw(st.sampled_from([0.0, 0.1]))
        if i < n - 1:
            station["buffer_after"] = draw(st.sampled_from([0, 2, None]))
        stations.append(station)
    return make_line(*stations)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    line=small_lines(),
    seed=st.integers(0, 10_000),
    window=st.tuples(st.floats(0.0, 30.0), st.floats(0.5, 20.0)),
    shift=st.tuples(st.sampled_from([2.0, 8.0, 12.0]), st.floats(-12.0, 12.0)),
    now=st.floats(0.0, 10.0),
)
def test_live_kpis_and_shift_output_keep_their_invariants(
    line: Line, seed: int, window: tuple[float, float], shift: tuple[float, float], now: float
) -> None:
    w0, length = window
    w1 = w0 + length
    engine = Engine(line, seed)
    reducer = KpiReducer(line, w0, w1)
    reducer.attach(engine)
    live = LiveLine(line, begin_h=0.0, shift_hours=shift[0], shift_origin_h=shift[1])
    engine.subscribe(live)
    engine.run(w1)
    kpis = live.kpis(w0, w1)
    assert _exact(kpis) == _exact(reducer.result())
    engine.run(50.0)
    for spec in line.stations:  # every machine reports its state at t = 0, so all are known in the window
        if spec.kind == "process":
            fractions = kpis.stations[spec.id].state_fractions
            assert all(-1e-9 <= f <= 1 + 1e-9 for f in fractions.values())
            assert math.fsum(fractions.values()) == pytest.approx(1.0)
    status = live.status(now_h=50.0 + now)
    assert status.shift is not None
    assert 0 <= status.shift.good <= status.good
    assert status.shift.plan <= live.plan_per_hour * shift[0] + 1e-9
    so_far, at_clock = live.shift_kpis(), live.status().shift
    if so_far is not None:
        assert at_clock is not None
        assert so_far.good == at_clock.good
