"""KPIs on lines as plants run them (issue 13): ISO 22400's split of planned stops, changeovers, speed losses and
micro-stops; store faults as the store's own downtime; WIP, releases and lead time on a tree with a merge; the
bottleneck through planned stops and merges."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.conftest import make_line, record
from twin.engine import Engine
from twin.events import MachineState, StateChanged, StoreOccupancy
from twin.kpis import ActivePeriods, KpiReducer, initial_wip
from twin.simulate import run_once
from twin.snapshot import LineSnapshot
from twin.state import LiveLine

WEAR = {"name": "wear", "ttf": 10, "ttr": 2}
"""Deterministic: down for 2 h after every 10 operating hours."""
ONE = {"id": "A", "cycle_time": 0.5, "failures": [WEAR]}


def _pieces(line: Any, snap: LineSnapshot) -> int:
    """Pieces of material in a snapshot, as the KPIs count them: a merge machine at work holds its inputs."""
    inputs = line.inputs
    total = sum(snap.buffers.values()) + snap.arrivals_queued
    for sid, st in snap.stations.items():
        per = sum(i.per_unit for i in inputs[sid]) or 1
        for m in st.machines:
            done = m.finished or m.state is MachineState.BLOCKED
            total += m.units if done else per * m.units
        total += sum(lot.units for lot in st.lots)
    return total


# -- ISO 22400 ---------------------------------------------------------------------------------------------------
def test_a_planned_stop_lowers_planned_busy_time_and_leaves_availability_as_it_was() -> None:
    """The same line over 48 h with and without a daily 6-h planned stop (13:00-19:00). Without it: work 10 h, down
    2 h, four times: availability 40/48. With it (the failure clock stands still in the stop): work 0-10, down
    10-12, work 12-13, stop 13-19, work 19-28, down 28-30, work 30-37, stop 37-43, work 43-46, down 46-48: 30 h
    working, 6 h down, 12 h stopped. ISO 22400: planned busy time 48 - 12 = 36 h, availability 30/36, the same
    5/6; the stop is not a loss, so OEE stays 5/6 while good output falls from 80 to 60."""
    free = run_once(make_line(ONE), hours=48)
    stopped = run_once(
        make_line(ONE, planned_stops=[{"name": "pm", "start": "1970-01-01T13:00:00", "duration": 6, "every": 24}]),
        hours=48,
    )
    a, b = free.stations["A"], stopped.stations["A"]
    assert (free.good, stopped.good) == (80, 60)
    assert a.state_fractions == pytest.approx({"working": 40 / 48, "starved": 0, "blocked": 0, "down": 8 / 48})
    assert b.state_fractions == pytest.approx(
        {"working": 30 / 48, "starved": 0, "blocked": 0, "down": 6 / 48, "planned_stop": 12 / 48}
    )
    assert a.availability == pytest.approx(5 / 6, rel=1e-12)
    assert b.availability == pytest.approx(5 / 6, rel=1e-12)
    assert b.performance == pytest.approx(1.0, rel=1e-12)
    # OEE = the ideal time of the good output over the planned busy time: 60 x 0.5 h / 36 h (not over 48 h)
    assert b.oee == pytest.approx(60 * 0.5 / 36, rel=1e-12)
    assert b.oee == pytest.approx(a.oee, rel=1e-12)


def test_a_calendar_break_is_a_planned_stop_too() -> None:
    """Off-shift time and breaks are outside the planned busy time: a loss-free station has availability, performance
    and OEE 1 over a day of one 8-h shift with a 30-min break, making 7.5 h of units."""
    line = make_line(
        {"id": "A", "cycle_time": 0.25},
        calendar={"shifts": [{"start": "06:00", "hours": 8}], "breaks": [{"start": "10:00", "duration": 0.5}]},
    )
    k = run_once(line, hours=24).stations["A"]
    assert k.good == 30
    assert k.state_fractions["planned_stop"] == pytest.approx(16.5 / 24, rel=1e-12)
    assert (k.availability, k.performance, k.oee) == pytest.approx((1.0, 1.0, 1.0), rel=1e-12)


def test_changeovers_are_an_availability_loss() -> None:
    """A changeover of 1 h after every 10 units of 0.5 h: of every 6 h, 5 working and 1 in SETUP."""
    line = make_line({"id": "A", "cycle_time": 0.5, "changeover": {"name": "format", "duration": 1, "every_units": 10}})
    k = run_once(line, hours=60).stations["A"]
    assert k.state_fractions["setup"] == pytest.approx(1 / 6, rel=1e-12)
    assert k.availability == pytest.approx(5 / 6, rel=1e-12)
    assert k.performance == pytest.approx(1.0, rel=1e-12)
    assert k.oee == pytest.approx(5 / 6, rel=1e-12)


def test_speed_losses_and_micro_stops_are_performance_losses() -> None:
    """At 80 % speed, or with a 3-min micro-stop after every 27 min of work, the machine stays WORKING: availability
    stays 1, performance falls to 0.8 and to 0.9 (up to one micro-stop at the window's end: the job under way there
    is credited its working time, micro-stop included)."""
    slow = run_once(make_line({"id": "A", "cycle_time": 0.5, "speed": 0.8}), hours=40).stations["A"]
    assert slow.state_fractions["working"] == pytest.approx(1.0)
    assert slow.availability == pytest.approx(1.0)
    assert slow.performance == pytest.approx(0.8, rel=1e-9)
    halting = make_line({"id": "A", "cycle_time": 0.5, "micro_stops": {"every": 0.45, "duration": 0.05}})
    hours = 450
    k = run_once(halting, hours=hours).stations["A"]
    assert k.state_fractions["working"] == pytest.approx(1.0)
    assert k.availability == pytest.approx(1.0)
    assert abs(k.performance - 0.9) <= 0.05 / hours


# -- store faults ------------------------------------------------------------------------------------------------
FAULTY_STORE = make_line(
    {"id": "A", "cycle_time": 1, "buffer_after": 5},
    {
        "id": "S",
        "kind": "delay",
        "capacity": 10,
        "dwell": 2,
        "buffer_after": 5,
        "failures": [{"name": "channel", "ttf": 5, "ttr": 1, "positions": 4}],
    },
    {"id": "B", "cycle_time": 0.1},
)


def test_a_store_fault_counts_its_empty_positions_out_of_use_as_the_stores_downtime() -> None:
    """Faults at 5, 11, 17, 23 h, each for 1 h, take 4 of 10 positions out of use; the store holds 2 units at most
    (one a hour, dwell 2 h), so all 4 are empty: down = 4 x 4 position-hours of 240, availability 14/15."""
    k = run_once(FAULTY_STORE, hours=24).stations["S"]
    assert k.state_fractions["down"] == pytest.approx(16 / 240, rel=1e-12)
    assert k.availability == pytest.approx(14 / 15, rel=1e-12)
    total = sum(k.state_fractions.values())
    assert total == pytest.approx(1.0)


def test_store_faults_are_not_taken_for_machines() -> None:
    """The store's fault events (machine = the mode's index) reach the reducer, the bottleneck and the live state
    without touching any machine's figures, and the live state shows the fault."""
    _, events = record(FAULTY_STORE, 29.5)
    faults = [e for e in events if isinstance(e, StateChanged) and e.station == "S"]
    assert [(e.t, e.state, e.reason) for e in faults[:2]] == [(5, MachineState.DOWN, "channel"), (6, MachineState.WORKING, "")]
    live = LiveLine(FAULTY_STORE, begin_h=0)
    for e in events:
        live(e)
    store = live.status().stations["S"].store
    assert store is not None
    assert store.faults == {"channel": 29.0}
    assert store.positions_out == 4
    assert live.status().stations["S"].machines == ()
    reducer = KpiReducer(FAULTY_STORE, 0, 29.5)
    for e in events:
        reducer(e)
    assert reducer.result().stations["S"].state_fractions["down"] > 0
    assert dataclasses.asdict(reducer.result()) == dataclasses.asdict(live.kpis(0, 29.5))
    periods = ActivePeriods(FAULTY_STORE, 0, 29.5)
    engine = Engine(FAULTY_STORE, 0)
    periods.attach(engine)
    engine.run(29.5)
    assert periods.bottleneck() == reducer.result().bottleneck


def test_a_fault_refused_for_a_mode_the_store_does_not_have() -> None:
    live = LiveLine(FAULTY_STORE, begin_h=0)
    with pytest.raises(ValueError, match="not an event"):
        live(StateChanged(1.0, "S", 1, MachineState.DOWN, "x"))
    reducer = KpiReducer(FAULTY_STORE, 0, 10)
    with pytest.raises(IndexError, match="no mode 3"):
        reducer(StateChanged(1.0, "S", 3, MachineState.DOWN, "x"))


def test_a_fault_on_a_full_store_counts_only_its_empty_positions() -> None:
    """Positions out of use that still hold units are not down: they hold units dwelling."""
    line = make_line(
        {"id": "A", "cycle_time": 1, "buffer_after": 1},
        {"id": "S", "kind": "delay", "capacity": 4, "dwell": 10, "failures": [{"name": "f", "ttf": 100, "ttr": 1}]},
    )
    reducer = KpiReducer(line, 0, 10)
    for e in (
        StoreOccupancy(0.0, "S", 3, 0, False),
        StateChanged(2.0, "S", 0, MachineState.DOWN, "f"),  # all 4 positions out, 3 of them hold units
        StoreOccupancy(4.0, "S", 2, 0, True),  # one left: 2 positions empty
        StateChanged(6.0, "S", 0, MachineState.WORKING, ""),
    ):
        reducer(e)
    k = reducer.result().stations["S"]
    assert k.state_fractions["down"] == pytest.approx((2 * 1 + 2 * 2) / 40, rel=1e-12)


# -- trees -------------------------------------------------------------------------------------------------------
TREE = make_line(
    {"id": "A1", "cycle_time": 1, "buffer_after": 5},
    {"id": "B1", "cycle_time": 1, "buffer_after": 5},
    {"id": "A2", "inputs": [], "cycle_time": 1, "buffer_after": 5},
    {"id": "M", "inputs": ["B1", "A2"], "cycle_time": 1, "buffer_after": 5},
    {"id": "E", "cycle_time": 1},
)


def test_wip_and_lead_time_on_a_tree() -> None:
    """Deterministic, one unit an hour from each branch: A1 releases at t and finishes at t + 1, B1 at t + 2, A2's
    unit (released at t + 1) waits an hour, M finishes at t + 3 and E ships at t + 4: a lead time of 4 h. In the line
    at any moment: A1, B1, A2 and E hold one unit each, A2's buffer one, M two inputs: 7 pieces. Both branches
    release a unit an hour: 2 per hour started, 1 shipped."""
    k = run_once(TREE, hours=100, warmup=10)
    assert k.throughput_per_hour == pytest.approx(1.0)
    assert k.started == 200
    assert k.wip_mean == pytest.approx(7.0)
    assert k.lead_time_mean_h == pytest.approx(4.0)


def test_the_live_wip_counts_the_pieces_in_a_tree() -> None:
    """The live state's WIP equals the pieces in the engine's own snapshot, on a random tree with per_unit 2."""
    line = make_line(
        {"id": "A", "cycle_time": {"dist": "exponential", "mean": 0.5}, "buffer_after": 4, "scrap": 0.1},
        {"id": "C", "inputs": [], "cycle_time": {"dist": "exponential", "mean": 0.8}, "buffer_after": 3},
        {
            "id": "M",
            "machines": 2,
            "inputs": [{"station": "A", "per_unit": 2}, "C"],
            "cycle_time": {"dist": "exponential", "mean": 1.5},
            "buffer_after": 2,
            "scrap": 0.05,
        },
        {"id": "E", "cycle_time": {"dist": "exponential", "mean": 0.7}},
    )
    engine, events = record(line, 200.0, seed=3)
    live = LiveLine(line, begin_h=0)
    for e in events:
        live(e)
    assert live.status().wip == _pieces(line, engine.snapshot())


def test_a_run_from_a_snapshot_of_a_tree_starts_its_wip_from_the_pieces_in_it() -> None:
    """From a snapshot taken mid-run (merge machines at work), the KPIs of the next hours equal those of the
    uninterrupted run, WIP and lead time included."""
    engine = Engine(TREE, 0)
    engine.run(20.5)
    snap = engine.snapshot()
    cont = run_once(TREE, hours=30, start=snap)
    whole = run_once(TREE, hours=30, warmup=20.5)
    assert initial_wip(snap) + 1 == _pieces(TREE, snap)  # M works on one unit made of 2 inputs
    assert initial_wip(snap, TREE) == _pieces(TREE, snap)  # counted as pieces, as a live state starts from it
    assert cont.wip_mean == pytest.approx(whole.wip_mean)
    assert cont.lead_time_mean_h == pytest.approx(whole.lead_time_mean_h)


def test_the_slow_branch_of_a_merge_is_its_bottleneck() -> None:
    """Bottleneck on a tree: the branch whose station is slowest holds the merge (it waits for it) and is the
    bottleneck."""
    line = make_line(
        {"id": "A", "cycle_time": {"dist": "exponential", "mean": 0.5}, "buffer_after": 3},
        {"id": "C", "inputs": [], "cycle_time": {"dist": "exponential", "mean": 1.2}, "buffer_after": 3},
        {"id": "M", "inputs": ["A", "C"], "cycle_time": {"dist": "exponential", "mean": 0.6}},
    )
    k = run_once(line, hours=2000, seed=1)
    assert k.bottleneck == "C"
    assert k.stations["M"].state_fractions["starved"] > 0.4


def test_the_calendar_does_not_join_active_periods_across_the_night() -> None:
    """A line off shift stands still as a whole: no station is active then, so active periods end at the shift's
    end. A station's own planned maintenance keeps it active (it holds the line up, as a repair does)."""
    calendar = {"shifts": [{"start": "06:00", "hours": 8}]}
    line = make_line(
        {"id": "A", "cycle_time": 0.25, "buffer_after": 2},
        {"id": "B", "cycle_time": 0.5},
        calendar=calendar,
    )
    # after the first day (B starts empty): B is never starved or blocked in a shift, so one active period per
    # shift (8 h), none across the night
    k = run_once(line, hours=48, warmup=24)
    assert k.stations["B"].active_period_mean_h == pytest.approx(8.0)
    maintained = make_line(
        {"id": "A", "cycle_time": 0.25, "buffer_after": 2},
        {
            "id": "B",
            "cycle_time": 0.5,
            "planned_stops": [{"name": "pm", "start": "1970-01-01T09:00:00", "duration": 1, "every": 24}],
        },
        calendar=calendar,
    )
    k = run_once(maintained, hours=48, warmup=24)
    # each shift's period runs through B's own 1-h stop: 8 h
    assert k.stations["B"].active_period_mean_h == pytest.approx(8.0)


def test_the_scrap_rate_of_a_tree_is_in_units_the_line_ships() -> None:
    """Anode pieces scrapped at 20 %, none elsewhere, one anode and one cathode piece per cell: a scrapped anode piece
    is half a cell's material, so per good cell 0.25 anode pieces = 0.125 cells are lost and the scrap rate is
    0.125 / 1.125 = 1/9 (the pieces counted alike would say 0.25 / 1.25 = 0.2)."""
    line = make_line(
        {"id": "A", "cycle_time": 0.01, "scrap": 0.2, "buffer_after": 50},
        {"id": "C", "cycle_time": 0.0125, "buffer_after": 50, "inputs": []},
        {"id": "S", "cycle_time": 0.02, "inputs": ["A", "C"]},
    )
    kpis = run_once(line, hours=400.0, seed=5, warmup=10.0)
    lost = 0.5 * kpis.stations["A"].scrapped
    assert kpis.scrapped == kpis.stations["A"].scrapped
    assert kpis.scrap_rate == pytest.approx(lost / (kpis.good + lost))
    # rate = p / (2 - p) of the anode scrap fraction p, whose binomial sd over its n pieces is sqrt(p (1 - p) / n):
    # 4 sd of p through the derivative 2 / (2 - p)^2
    n = kpis.stations["A"].scrapped + kpis.good
    tolerance = 4 * (0.2 * 0.8 / n) ** 0.5 * 2 / (2 - 0.2) ** 2
    assert kpis.scrap_rate == pytest.approx(1 / 9, abs=tolerance)
