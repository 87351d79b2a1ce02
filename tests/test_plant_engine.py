"""The engine on lines as plants run them: merges, shift calendars, planned stops, changeovers, speed losses,
micro-stops and store faults. Constant times wherever possible, so results are exact.

The engine's clock is hours since the Unix epoch: t = 0 is Thursday 1970-01-01 00:00 UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.conftest import make_line, record
from twin.calendar import epoch_hours
from twin.engine import Engine
from twin.events import BufferLevel, Event, MachineState, StateChanged, UnitsCompleted, UnitsLoaded
from twin.kpis import KpiReducer
from twin.schema import Line

W, S, B, D = MachineState.WORKING, MachineState.STARVED, MachineState.BLOCKED, MachineState.DOWN
SETUP, STOP = MachineState.SETUP, MachineState.PLANNED_STOP
MON = 96.0  # Monday 1970-01-05 00:00 UTC on the engine clock
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def made(events: list[Event], station: str, t0: float = -1e18, t1: float = 1e18) -> int:
    """Good units ``station`` completed in ``(t0, t1]``."""
    return sum(e.good for e in events if isinstance(e, UnitsCompleted) and e.station == station and t0 < e.t <= t1)


def stretches(events: list[Event], station: str, machine: int = 0, until: float = 1e18) -> list[tuple[float, float, str, str]]:
    """The machine's states as ``(start, end, state, reason)``, zero-length ones left out."""
    out: list[tuple[float, float, str, str]] = []
    current: tuple[float, str, str] | None = None
    for e in events:
        if isinstance(e, StateChanged) and e.station == station and e.machine == machine:
            if current is not None and e.t > current[0]:
                out.append((current[0], e.t, current[1], current[2]))
            current = (e.t, e.state.value, e.reason)
    if current is not None and until > current[0]:
        out.append((current[0], until, current[1], current[2]))
    merged: list[tuple[float, float, str, str]] = []
    for s in out:
        if merged and merged[-1][2:] == s[2:] and merged[-1][1] == s[0]:
            merged[-1] = (merged[-1][0], s[1], s[2], s[3])
        else:
            merged.append(s)
    return merged


def hours_in(events: list[Event], station: str, state: str, until: float, machine: int = 0) -> float:
    return sum(b - a for a, b, st, _r in stretches(events, station, machine, until) if st == state)


# -- shift calendars ------------------------------------------------------------------------------------------------

THREE_SHIFTS: dict[str, Any] = {
    "shifts": [
        {"name": "early", "start": "06:00", "hours": 8},
        {"name": "late", "start": "14:00", "hours": 8},
        {"name": "night", "start": "22:00", "hours": 8},
    ],
    "days": WEEKDAYS,
    "breaks": [
        {"start": "10:00", "duration": "30min"},
        {"start": "18:00", "duration": "30min"},
        {"start": "02:00", "duration": "30min"},
    ],
    "holidays": ["1970-01-07"],
}


@pytest.mark.parametrize(
    ("calendar", "working_h"),
    [
        # 3 x 8 h on 5 days, a 30-min break per shift, Wednesday 7 January a holiday (its three shifts cancelled;
        # Tuesday's night shift runs into it). Two weeks from Thursday 1 January: 9 working days x 22.5 h.
        pytest.param(THREE_SHIFTS, 9 * 22.5, id="3x8-5-days-breaks-holiday"),
        # 4-crew continuous: 2 x 12 h every day, no breaks
        pytest.param({"shifts": [{"start": "06:00", "hours": 12}, {"start": "18:00", "hours": 12}]}, 336.0, id="continuous"),
        # one shift, five days
        pytest.param({"shifts": [{"start": "07:00", "hours": 9}], "days": WEEKDAYS}, 10 * 9.0, id="1x9-5-days"),
    ],
)
def test_a_deterministic_line_makes_its_rate_times_the_working_hours_exactly(calendar: dict[str, Any], working_h: float) -> None:
    """Two constant-time stations, the second slower: the line makes exactly rate x working hours, whatever
    the calendar; units in work at a shift's end are finished in the next shift, and nothing moves outside
    working time."""
    line = make_line({"id": "A", "cycle_time": 0.1, "buffer_after": 50}, {"id": "B", "cycle_time": 0.25}, calendar=calendar)
    assert line.calendar is not None
    assert line.calendar.working_hours(0.0, 336.0) == pytest.approx(working_h)
    _, events = record(line, 336.0)
    # the second station's first unit waits for the first station's first unit (0.1 h) in the first shift only
    assert made(events, "B") == int((working_h - 0.1) / 0.25 + 1e-9)
    # no unit completes outside working time
    for e in events:
        if isinstance(e, UnitsCompleted):
            working = [(a, b) for a, b, r in line.calendar.stretches(e.t - 1, e.t + 1) if r is None]
            assert any(a - 1e-9 <= e.t <= b + 1e-9 for a, b in working), f"made at {e.t}"


def test_outside_working_time_machines_are_in_a_planned_stop_with_its_reason() -> None:
    line = make_line({"id": "A", "cycle_time": 0.25}, calendar=THREE_SHIFTS)
    _, events = record(line, MON + 24.0)
    got = stretches(events, "A", until=MON + 24.0)
    # t = 0 is Thursday 00:00, inside Wednesday's night shift: its 02:00 break, then the day's shifts and breaks
    assert got[:5] == [
        (0.0, 2.0, "WORKING", ""),
        (2.0, 2.5, "PLANNED_STOP", "break"),
        (2.5, 10.0, "WORKING", ""),
        (10.0, 10.5, "PLANNED_STOP", "break"),
        (10.5, 18.0, "WORKING", ""),
    ]
    # the weekend: Friday's night shift ends Saturday 06:00; Monday's early shift starts at 06:00
    assert (54.0, MON + 6.0, "PLANNED_STOP", "off_shift") in got
    assert sum(b - a for a, b, st, _r in got if st == "WORKING") == pytest.approx(line.calendar.working_hours(0.0, MON + 24.0))


def test_shifts_keep_their_wall_clock_times_across_daylight_saving() -> None:
    """Europe/Berlin: 06:00 local is 05:00 UTC in summer and 06:00 UTC in winter (DST ended 25 October 2026)."""
    calendar = {"timezone": "Europe/Berlin", "shifts": [{"start": "06:00", "hours": 8}]}
    line = make_line({"id": "A", "cycle_time": 0.5}, calendar=calendar)
    assert line.calendar is not None
    friday = epoch_hours(dt.datetime(2026, 10, 23, tzinfo=dt.UTC))
    monday = epoch_hours(dt.datetime(2026, 10, 26, tzinfo=dt.UTC))
    assert [(a - friday, b - friday) for a, b, r in line.calendar.stretches(friday, friday + 24) if r is None] == [(4.0, 12.0)]
    assert [(a - monday, b - monday) for a, b, r in line.calendar.stretches(monday, monday + 24) if r is None] == [(5.0, 13.0)]


def test_a_store_keeps_its_clock_outside_working_time() -> None:
    """Material in a storage step dwells through the night: cells put in before the shift ends are ready next morning."""
    calendar = {"shifts": [{"start": "06:00", "hours": 8}]}
    line = make_line(
        {"id": "A", "cycle_time": 1.0, "buffer_after": 100},
        {"id": "WET", "kind": "delay", "capacity": 100, "dwell": 12.0, "buffer_after": 100},
        {"id": "B", "cycle_time": 0.01},
        calendar=calendar,
    )
    _, events = record(line, 31.0)
    # A makes units at 7..14; each leaves the store 12 h later (19..26, night), B takes them at 30.0 (06:00)
    released = [e.t for e in events if isinstance(e, UnitsCompleted) and e.station == "WET"]
    assert released == pytest.approx([7 + 12.0 + k for k in range(8)])
    assert made(events, "B", 0, 30.0) == 0
    assert made(events, "B", 30.0, 31.0) == 8


# -- planned stops --------------------------------------------------------------------------------------------------


def test_a_recurring_planned_stop_holds_the_station_and_its_operating_failure_clock_stands_still() -> None:
    """Every 168 h for 6 h from Monday 06:00 (and so before it too); the operating-basis failure clock counts only
    the working hours, so the failure lands 6 h later than without the stop."""
    stop = {"name": "pm", "start": "1970-01-05T06:00:00", "duration": "6h", "every": "168h"}
    fail = {"name": "wear", "ttf": 105.0, "ttr": 1.0}
    plain = make_line({"id": "A", "cycle_time": 0.5, "failures": [fail]})
    stopped = make_line({"id": "A", "cycle_time": 0.5, "failures": [fail], "planned_stops": [stop]})
    _, e0 = record(plain, 200.0)
    _, e1 = record(stopped, 200.0)
    assert [s for s in stretches(e1, "A", until=200.0) if s[2] == "PLANNED_STOP"] == [(MON + 6, MON + 12, "PLANNED_STOP", "pm")]
    assert [s[:2] for s in stretches(e0, "A", until=200.0) if s[2] == "DOWN"] == [(105.0, 106.0)]
    assert [s[:2] for s in stretches(e1, "A", until=200.0) if s[2] == "DOWN"] == [(111.0, 112.0)]
    assert made(e0, "A") - made(e1, "A") == 12  # 6 h at 2 units an hour


def test_a_line_planned_stop_stops_every_process_station_and_the_station_ones_add() -> None:
    line_stop = {"name": "plant_shutdown", "start": "1970-01-02T00:00:00Z", "duration": "4h"}
    own = {"name": "pm", "start": "1970-01-02T02:00:00Z", "duration": "4h"}
    line = make_line(
        {"id": "A", "cycle_time": 0.5, "buffer_after": 1000, "planned_stops": [own]},
        {"id": "B", "cycle_time": 0.5},
        planned_stops=[line_stop],
    )
    _, events = record(line, 40.0)
    stops_a = [s for s in stretches(events, "A", until=40.0) if s[2] == "PLANNED_STOP"]
    # the station's own stop comes first where both apply
    assert stops_a == [(24.0, 26.0, "PLANNED_STOP", "plant_shutdown"), (26.0, 30.0, "PLANNED_STOP", "pm")]
    assert [s for s in stretches(events, "B", until=40.0) if s[2] == "PLANNED_STOP"] == [
        (24.0, 28.0, "PLANNED_STOP", "plant_shutdown")
    ]


def test_a_stop_after_the_batch_lets_the_batch_in_hand_finish() -> None:
    """A formation rack 3 h into a 5-h batch when the stop begins finishes it, then stops until the stop ends;
    without after_batch it stops at once and finishes the batch after the stop."""

    def line(after_batch: bool) -> Line:
        stop = {"name": "pm", "start": "1970-01-01T08:00:00Z", "duration": "6h", "after_batch": after_batch}
        return make_line({"id": "FORM", "batch_size": 4, "cycle_time": 5.0, "planned_stops": [stop]})

    _, gentle = record(line(True), 20.0)
    _, hard = record(line(False), 20.0)
    # batches complete at 5, 10 (the batch in hand at 8 finishes), then after the stop at 14: 19
    assert [e.t for e in gentle if isinstance(e, UnitsCompleted)] == [5.0, 10.0, 19.0]
    assert stretches(gentle, "FORM", until=20.0)[1:3] == [(10.0, 14.0, "PLANNED_STOP", "pm"), (14.0, 20.0, "WORKING", "")]
    # stopped at 8 with 2 h of the batch left: done at 16
    assert [e.t for e in hard if isinstance(e, UnitsCompleted)] == [5.0, 16.0]


def test_a_batch_finished_inside_a_stop_after_the_batch_shows_the_stop_not_blocked() -> None:
    """A finishes its batch 1 h into the stop and cannot hand all of it on (a direct hand-off to B, stopped too): it is
    in the planned stop, not BLOCKED, until the stop ends; then it is blocked until B takes the second unit."""
    stop = {"name": "shutdown", "start": "1970-01-01T10:00:00Z", "duration": "5h", "after_batch": True}
    line = make_line(
        {"id": "A", "batch_size": 2, "cycle_time": 3.0, "buffer_after": 0}, {"id": "B", "cycle_time": 1.0}, planned_stops=[stop]
    )
    _, events = record(line, 16.0)
    a = stretches(events, "A", until=16.0)
    assert a[-3:] == [(8.0, 11.0, "WORKING", ""), (11.0, 15.0, "PLANNED_STOP", "shutdown"), (15.0, 16.0, "BLOCKED", "")]


def test_an_idle_machine_shows_the_stop_and_its_own_state_again_after_it() -> None:
    stop = {"name": "pm", "start": "1970-01-01T02:00:00Z", "duration": "2h"}
    line = make_line({"id": "A", "cycle_time": 10.0, "buffer_after": 5}, {"id": "B", "cycle_time": 0.5, "planned_stops": [stop]})
    _, events = record(line, 12.0)
    assert stretches(events, "B", until=12.0) == [
        (0.0, 2.0, "STARVED", ""),
        (2.0, 4.0, "PLANNED_STOP", "pm"),
        (4.0, 10.0, "STARVED", ""),
        (10.0, 10.5, "WORKING", ""),
        (10.5, 12.0, "STARVED", ""),
    ]


def test_a_repair_goes_on_behind_a_planned_stop() -> None:
    """Down at 1 for 4 h; a stop from 2 to 3 shows over it; at 3 the machine is down again until 5."""
    stop = {"name": "break", "start": "1970-01-01T02:00:00Z", "duration": "1h"}
    line = make_line({"id": "A", "cycle_time": 0.5, "failures": [{"name": "f", "ttf": 1.0, "ttr": 4.0}], "planned_stops": [stop]})
    _, events = record(line, 6.0)
    assert stretches(events, "A", until=5.0) == [
        (0.0, 1.0, "WORKING", ""),
        (1.0, 2.0, "DOWN", "f"),
        (2.0, 3.0, "PLANNED_STOP", "break"),
        (3.0, 5.0, "DOWN", "f"),
    ]


# -- changeovers ------------------------------------------------------------------------------------------------------


def test_a_changeover_every_n_units_puts_the_machine_in_setup() -> None:
    line = make_line({"id": "A", "cycle_time": 0.5, "changeover": {"name": "format", "every_units": 4, "duration": 1.0}})
    _, events = record(line, 9.0)
    assert stretches(events, "A", until=9.0) == [
        (0.0, 2.0, "WORKING", ""),
        (2.0, 3.0, "SETUP", "format"),
        (3.0, 5.0, "WORKING", ""),
        (5.0, 6.0, "SETUP", "format"),
        (6.0, 8.0, "WORKING", ""),
        (8.0, 9.0, "SETUP", "format"),
    ]
    assert made(events, "A") == 12


def test_a_scheduled_changeover_waits_for_the_unit_in_hand() -> None:
    change = {"name": "chemistry", "duration": 2.0, "schedule": {"start": "1970-01-01T03:30:00Z", "every": "24h"}}
    line = make_line({"id": "A", "cycle_time": 1.0, "changeover": change})
    _, events = record(line, 30.0)
    setups = [s for s in stretches(events, "A", until=30.0) if s[2] == "SETUP"]
    assert setups == [(4.0, 6.0, "SETUP", "chemistry"), (28.0, 30.0, "SETUP", "chemistry")]


# -- speed losses and micro-stops -------------------------------------------------------------------------------------


def test_a_speed_factor_slows_the_station_and_it_stays_working() -> None:
    line = make_line({"id": "A", "cycle_time": 0.5, "speed": 0.8})
    _, events = record(line, 100.1)
    assert made(events, "A") == 160  # 0.625 h a unit
    assert stretches(events, "A", until=100.1) == [(0.0, 100.1, "WORKING", "")]


def test_a_speed_range_is_drawn_per_cycle_around_its_mean() -> None:
    line = make_line({"id": "A", "cycle_time": 0.01, "speed": {"low": 0.7, "high": 0.9}})
    _, events = record(line, 1000.0, seed=3)
    # 100,000 cycles: the mean of 0.01 / U(0.7, 0.9) is 0.01 x ln(0.9/0.7) / 0.2; its sd over n cycles is tiny
    mean_cycle = 0.01 * 5.0 * 0.25131442828090605
    n = made(events, "A")
    assert n == pytest.approx(1000.0 / mean_cycle, rel=0.002)


def test_micro_stops_are_performance_losses_not_breakdowns() -> None:
    """A 3-min stop after every hour of operation: the machine stays WORKING and makes 60/63 of its ideal output."""
    line = make_line({"id": "A", "cycle_time": 0.25, "micro_stops": {"every": 1.0, "duration": "3min"}})
    _, events = record(line, 63.0)
    assert made(events, "A") == 240
    assert stretches(events, "A", until=63.0) == [(0.0, 63.0, "WORKING", "")]
    # the KPIs over the window to the 240th unit (62.95 h: 60 h of work and 59 micro-stops), no work in progress
    end = 60.0 + 59 * 0.05
    reducer = KpiReducer(line, 0.0, end)
    engine = Engine(line)
    reducer.attach(engine)
    engine.run(end + 1e-9)
    kpis = reducer.result().stations["A"]
    assert kpis.availability == pytest.approx(1.0)
    assert kpis.performance == pytest.approx(60 / end, rel=1e-6)


# -- store faults ---------------------------------------------------------------------------------------------------


def test_a_store_fault_takes_positions_out_of_use_until_it_is_repaired() -> None:
    """A 10-position store loses 6 positions from 2 h to 5 h (then again from 7 h): with 3 units in it at 2 h, one
    more fits; the next four wait before it and enter together at 5 h, and the store is full at 6 h. The store reports the fault as DOWN of its
    failure mode (machine index = the mode's index), then WORKING."""
    fault = {"name": "crane", "ttf": 2.0, "ttr": 3.0, "positions": 6}
    line = make_line(
        {"id": "A", "cycle_time": 0.6, "buffer_after": 100},
        {"id": "AGE", "kind": "delay", "capacity": 10, "dwell": 100.0, "failures": [fault], "buffer_after": 10},
        {"id": "B", "cycle_time": 0.1},
    )
    _, events = record(line, 6.9)
    assert stretches(events, "AGE", until=6.9) == [(2.0, 5.0, "DOWN", "crane"), (5.0, 6.9, "WORKING", "")]
    loads = [(e.t, e.units) for e in events if isinstance(e, UnitsLoaded) and e.station == "AGE"]
    expected = [(0.6, 1), (1.2, 1), (1.8, 1), (2.4, 1), (5.0, 4), (5.4, 1), (6.0, 1)]  # full (10) from 6.0
    assert [u for _t, u in loads] == [u for _t, u in expected]
    assert [t for t, _u in loads] == pytest.approx([t for t, _u in expected])
    # a fault without positions takes the whole store out of use
    whole = make_line(
        {"id": "A", "cycle_time": 0.6, "buffer_after": 100},
        {
            "id": "AGE",
            "kind": "delay",
            "capacity": 10,
            "dwell": 100.0,
            "failures": [{**fault, "positions": None}],
            "buffer_after": 10,
        },
        {"id": "B", "cycle_time": 0.1},
    )
    _, events = record(whole, 6.9)
    loads = [(e.t, e.units) for e in events if isinstance(e, UnitsLoaded) and e.station == "AGE"]
    assert [u for _t, u in loads] == [1, 1, 1, 5, 1, 1]


# -- merges ---------------------------------------------------------------------------------------------------------


def test_a_merge_takes_per_unit_from_each_input_at_once() -> None:
    """STACK makes one cell from 2 anode and 1 cathode units; its lot of 4 takes 8 and 4 at once, as soon as both
    are there. Anode 20 units/h and cathode 10/h feed 10 cells/h: the stacker's rate, so lots start every 0.4 h."""
    line = make_line(
        {"id": "ANODE", "cycle_time": 0.05, "buffer_after": 100},
        {"id": "CATHODE", "cycle_time": 0.1, "buffer_after": 100, "inputs": []},
        {"id": "STACK", "cycle_time": 0.1, "lot": 4, "inputs": [{"station": "ANODE", "per_unit": 2}, "CATHODE"]},
    )
    _, events = record(line, 9.9)
    loads = [e.t for e in events if isinstance(e, UnitsLoaded) and e.station == "STACK"]
    assert loads == pytest.approx([0.4 * k for k in range(1, 25)])
    assert all(e.units == 4 for e in events if isinstance(e, UnitsLoaded) and e.station == "STACK")
    assert made(events, "STACK") == 4 * 23  # lots done at 0.8 .. 9.6
    # each load empties what it took: the levels right after each load are back to 0
    for t in loads:
        after = {e.station: e.level for e in events if isinstance(e, BufferLevel) and e.t <= t + 1e-9}
        assert after == {"ANODE": 0, "CATHODE": 0}, f"at {t}"


def test_a_starved_merge_names_the_input_it_waits_for() -> None:
    """The cathode side breaks down for 5 h: the stacker, fed by the anode side, waits for the cathode."""
    line = make_line(
        {"id": "ANODE", "cycle_time": 0.5, "buffer_after": 2},
        {
            "id": "CATHODE",
            "cycle_time": 0.5,
            "buffer_after": 2,
            "inputs": [],
            "failures": [{"name": "web_break", "ttf": 3.0, "ttr": 5.0}],
        },
        {"id": "STACK", "cycle_time": 0.5, "inputs": ["ANODE", "CATHODE"]},
    )
    _, events = record(line, 10.0)
    starved = [s for s in stretches(events, "STACK", until=10.0) if s[2] == "STARVED"]
    assert starved[0] == (0.0, 0.5, "STARVED", "ANODE")  # both empty at first: the first input in order
    assert (3.5, 8.5, "STARVED", "CATHODE") in starved
    assert [s[:3] for s in stretches(events, "ANODE", until=10.0)] == [
        (0.0, 4.5, "WORKING"),
        (4.5, 8.5, "BLOCKED"),
        (8.5, 10.0, "WORKING"),
    ]


# -- warm starts and common random numbers -----------------------------------------------------------------------------


PLANT: dict[str, Any] = {
    "calendar": {**THREE_SHIFTS, "holidays": []},
    "planned_stops": [{"name": "shutdown", "start": "1970-01-02T12:00:00Z", "duration": "3h", "every": "50h"}],
}


def plant_line() -> Line:
    """A deterministic tree with everything: two branches with speed losses and micro-stops, a merge with a
    changeover, a batch station with a stop after the batch, a store with faults, operating and calendar failures."""
    return make_line(
        {
            "id": "A1",
            "cycle_time": 0.07,
            "lot": 5,
            "buffer_after": 40,
            "speed": 0.9,
            "failures": [{"name": "f", "ttf": 7.3, "ttr": 0.6}],
        },
        {"id": "A2", "cycle_time": 0.05, "buffer_after": 30, "micro_stops": {"every": 1.3, "duration": "2min"}},
        {
            "id": "C1",
            "cycle_time": 0.08,
            "buffer_after": 30,
            "inputs": [],
            "failures": [{"name": "g", "ttf": 5.1, "ttr": 1.1, "basis": "calendar"}],
        },
        {
            "id": "STACK",
            "machines": 2,
            "cycle_time": 0.15,
            "lot": 2,
            "inputs": ["A2", "C1"],
            "buffer_after": 20,
            "changeover": {"every_units": 30, "duration": 0.4},
        },
        {
            "id": "WET",
            "kind": "delay",
            "capacity": 40,
            "dwell": 3.0,
            "buffer_after": 8,
            "failures": [{"name": "crane", "ttf": 9.7, "ttr": 1.5, "positions": 30}],
        },
        {
            "id": "FORM",
            "machines": 3,
            "batch_size": 8,
            "cycle_time": 2.2,
            "planned_stops": [
                {"name": "pm", "start": "1970-01-03T01:00:00Z", "duration": "5h", "every": "31h", "after_batch": True}
            ],
        },
        **PLANT,
    )


def test_a_warm_start_continues_the_run_exactly() -> None:
    """From snapshots taken every 3.1 h over five days (mid-shift, in breaks, off shift, mid-setup, in a stop after a
    batch, during a store fault, mid-repair), each run goes on exactly as the uninterrupted one (deterministic times):
    the same units loaded and completed at the same times, station by station."""
    line = plant_line()
    end = 140.0
    _, whole = record(line, end)
    seen: set[str] = set()

    def progress(events: list[Event], after: float) -> list[tuple[Any, ...]]:
        return sorted(
            (round(e.t, 9), *e[1:]) for e in events if isinstance(e, UnitsCompleted | UnitsLoaded) and e.t > after + 1e-9
        )

    at = 1.0
    while at < 130.0:
        engine, _ = record(line, at)
        snap = engine.snapshot()
        for _sid, st in snap.stations.items():
            seen.update(m.state.value for m in st.machines)
            if st.faults:
                seen.add("store fault")
        _, after = record(line, end, start=snap)
        assert progress(after, at) == progress(whole, at), f"the run from the snapshot at {at} h differs"
        at += 3.1
    assert {"WORKING", "DOWN", "SETUP", "PLANNED_STOP", "STARVED", "BLOCKED", "store fault"} <= seen


def test_a_station_without_the_new_features_draws_the_same_numbers() -> None:
    """Common random numbers: giving station B a speed range, micro-stops, a changeover and a planned stop leaves
    station A (unbounded buffer after it, so never blocked) making exactly what it made."""
    rand = {"dist": "exponential", "mean": 0.3}
    fail = {"name": "f", "ttf": {"dist": "exponential", "mean": 5.0}, "ttr": {"dist": "lognormal", "mean": 0.5, "sigma": 0.8}}
    base = make_line({"id": "A", "cycle_time": rand, "failures": [fail]}, {"id": "B", "cycle_time": rand, "failures": [fail]})
    changed = make_line(
        {"id": "A", "cycle_time": rand, "failures": [fail]},
        {
            "id": "B",
            "cycle_time": rand,
            "failures": [fail],
            "speed": {"low": 0.8, "high": 0.95},
            "micro_stops": {"every": {"dist": "exponential", "mean": 2.0}, "duration": {"dist": "exponential", "mean": 0.03}},
            "changeover": {"every_units": 50, "duration": {"dist": "uniform", "low": 0.2, "high": 0.6}},
            "planned_stops": [{"start": "1970-01-01T20:00:00Z", "duration": "4h", "every": "48h"}],
        },
    )
    _, e0 = record(base, 200.0, seed=11)
    _, e1 = record(changed, 200.0, seed=11)
    a0 = [e for e in e0 if getattr(e, "station", None) == "A" and not isinstance(e, BufferLevel)]
    a1 = [e for e in e1 if getattr(e, "station", None) == "A" and not isinstance(e, BufferLevel)]
    assert a0 == a1
    assert [e for e in e0 if getattr(e, "station", None) == "B"] != [e for e in e1 if getattr(e, "station", None) == "B"]


# -- outages (what-ifs) ---------------------------------------------------------------------------------------------


def test_an_outage_takes_a_station_down_for_its_hours_and_the_unit_resumes() -> None:
    """A down from 2.2 h for 3 h with reason roll_change: its unit in work (0.3 h left) is finished at 5.5 h; a
    machine already down for a repair goes down for what is left of the outage once repaired."""
    line = make_line({"id": "A", "cycle_time": 0.5, "buffer_after": 100}, {"id": "B", "cycle_time": 0.25})
    engine = Engine(line, 0, outages=[("A", 2.2, 3.0, "roll_change")])
    events: list[Event] = []
    engine.subscribe(events.append)
    engine.run(8.0)
    assert stretches(events, "A", until=8.0) == [
        (0.0, 2.2, "WORKING", ""),
        (2.2, 5.2, "DOWN", "roll_change"),
        (5.2, 8.0, "WORKING", ""),
    ]
    assert [e.t for e in events if isinstance(e, UnitsCompleted) and e.station == "A"][3:5] == pytest.approx([2.0, 5.5])
    failing = make_line({"id": "A", "cycle_time": 0.5, "failures": [{"name": "jam", "ttf": 1.0, "ttr": 2.0}]})
    engine = Engine(failing, 0, outages=[("A", 2.0, 2.0, "planned_test")])
    events = []
    engine.subscribe(events.append)
    engine.run(6.0)
    assert stretches(events, "A", until=6.0)[:3] == [
        (0.0, 1.0, "WORKING", ""),
        (1.0, 3.0, "DOWN", "jam"),
        (3.0, 4.0, "DOWN", "planned_test"),
    ]
    with pytest.raises(ValueError, match="not a process station"):
        Engine(failing, 0, outages=[("NOPE", 0.0, 1.0, "x")])
