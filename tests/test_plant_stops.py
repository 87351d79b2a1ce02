"""Why a line with merges, planned stops, changeovers and store faults stops (issue 13): a starved merge station is
traced into the input that ran empty, planned stops and changeovers are causes of their own, and a store's faults are
its own downtime."""

from __future__ import annotations

import pytest

from tests.conftest import make_line, record
from twin.events import BufferLevel, Event, MachineState, StateChanged, StoreOccupancy
from twin.state import LiveLine
from twin.stops import AttributedStop, CauseKind, attribute_stops, downtime_pareto

WORKING, STARVED, BLOCKED = MachineState.WORKING, MachineState.STARVED, MachineState.BLOCKED
DOWN, SETUP, PLANNED_STOP = MachineState.DOWN, MachineState.SETUP, MachineState.PLANNED_STOP

# anode (A_COAT -> A_NOTCH) and cathode (C_COAT -> C_NOTCH) branches merging at STACK
MERGE = make_line(
    {"id": "A_COAT", "cycle_time": 1, "buffer_after": 2},
    {"id": "A_NOTCH", "cycle_time": 1, "buffer_after": 2},
    {"id": "C_COAT", "cycle_time": 1, "buffer_after": 2},
    {"id": "C_NOTCH", "cycle_time": 1, "buffer_after": 2},
    {"id": "STACK", "inputs": ["A_NOTCH", "C_NOTCH"], "cycle_time": 1},
)
STATIONS = ("A_COAT", "A_NOTCH", "C_COAT", "C_NOTCH", "STACK")


def _s(t: float, station: str, state: MachineState, reason: str = "", machine: int = 0) -> StateChanged:
    return StateChanged(t, station, machine, state, reason)


def _up(t: float, *stations: str) -> list[Event]:
    return [_s(t, sid, WORKING) for sid in stations]


def _cause(stop: AttributedStop) -> tuple[str | None, CauseKind, str]:
    return stop.cause_station, stop.cause_kind, stop.cause_reason


def _chain(stop: AttributedStop) -> list[str]:
    return [step.station for step in stop.chain]


def test_a_starved_stacker_is_traced_into_whichever_branch_ran_empty() -> None:
    """The anode coater breaks down, then the cathode coater: each of the stacker's stops leads into the branch its
    starved state names, through that branch's notcher to its coater."""
    events = [
        *_up(0.0, *STATIONS),
        _s(1.0, "A_COAT", DOWN, "web_break"),
        _s(2.0, "A_NOTCH", STARVED),
        _s(2.5, "STACK", STARVED, "A_NOTCH"),
        *_up(3.0, "A_COAT"),
        *_up(4.0, "A_NOTCH", "STACK"),
        _s(5.0, "C_COAT", DOWN, "slurry"),
        _s(6.0, "C_NOTCH", STARVED),
        _s(6.5, "STACK", STARVED, "C_NOTCH"),
        *_up(7.0, "C_COAT"),
        *_up(8.0, "C_NOTCH", "STACK"),
    ]
    result = attribute_stops(events, MERGE, 0.0, 10.0)
    first, second = result.stops
    assert (first.start_h, first.end_h) == (2.5, 4.0)
    assert _cause(first) == ("A_COAT", CauseKind.DOWN, "web_break")
    assert _chain(first) == ["STACK", "A_NOTCH", "A_COAT"]
    assert (second.start_h, second.end_h) == (6.5, 8.0)
    assert _cause(second) == ("C_COAT", CauseKind.DOWN, "slurry")
    assert _chain(second) == ["STACK", "C_NOTCH", "C_COAT"]


def test_without_a_named_input_the_trace_takes_the_input_whose_buffer_ran_empty() -> None:
    """A starved state with no reason (a plant that does not name the input): the input whose buffer held less than a
    unit's worth at that instant; with no levels known, the first input."""
    events: list[Event] = [
        *_up(0.0, *STATIONS),
        BufferLevel(0.0, "A_NOTCH", 2),
        BufferLevel(0.0, "C_NOTCH", 2),
        _s(1.0, "C_NOTCH", SETUP, "format"),
        BufferLevel(1.5, "C_NOTCH", 0),
        _s(2.0, "STACK", STARVED),
        *_up(3.0, "C_NOTCH", "STACK"),
    ]
    stop = attribute_stops(events, MERGE, 0.0, 5.0).stops[0]
    assert _cause(stop) == ("C_NOTCH", CauseKind.SETUP, "format")
    unknown = [e for e in events if not isinstance(e, BufferLevel)]
    stop = attribute_stops(unknown, MERGE, 0.0, 5.0).stops[0]
    assert _chain(stop)[:2] == ["STACK", "A_NOTCH"]  # nothing says which: the first input
    named_elsewhere = [_s(e.t, e.station, e.state, "NOT_AN_INPUT") if e == _s(2.0, "STACK", STARVED) else e for e in events]
    stop = attribute_stops(named_elsewhere, MERGE, 0.0, 5.0).stops[0]
    assert _cause(stop) == ("C_NOTCH", CauseKind.SETUP, "format")


def test_a_starved_branch_start_is_the_lines_supply_and_a_blocked_branch_leads_to_the_merge() -> None:
    events = [
        *_up(0.0, *STATIONS),
        _s(1.0, "C_COAT", STARVED),
        _s(1.5, "C_NOTCH", STARVED),
        _s(2.0, "STACK", STARVED, "C_NOTCH"),
        *_up(3.0, "C_COAT", "C_NOTCH", "STACK"),
        _s(4.0, "STACK", PLANNED_STOP, "pm_stacker"),
        _s(4.5, "A_NOTCH", BLOCKED),
        _s(5.0, "A_COAT", BLOCKED),
        *_up(6.0, "STACK", "A_NOTCH", "A_COAT"),
    ]
    stack = attribute_stops(events, MERGE, 0.0, 8.0).stops
    assert [_cause(s) for s in stack] == [(None, CauseKind.SUPPLY, ""), ("STACK", CauseKind.PLANNED_STOP, "pm_stacker")]
    assert _chain(stack[0]) == ["STACK", "C_NOTCH", "C_COAT"]
    coat = attribute_stops(events, MERGE, 0.0, 8.0, station="A_COAT").stops
    assert [_cause(s) for s in coat] == [("STACK", CauseKind.PLANNED_STOP, "pm_stacker")]
    assert _chain(coat[0]) == ["A_COAT", "A_NOTCH", "STACK"]


def test_on_the_engines_merge_line_every_starved_stop_goes_into_the_input_it_named() -> None:
    """Random failures on both branches: each stop of the stacker that began starved is traced first to the input
    its starved state named at that instant, and both branches turn up."""
    fail = {"ttf": {"dist": "exponential", "mean": 8}, "ttr": {"dist": "exponential", "mean": 1.5}}
    line = make_line(
        {
            "id": "A_COAT",
            "cycle_time": {"dist": "exponential", "mean": 0.5},
            "buffer_after": 3,
            "failures": [{"name": "a", **fail}],
        },
        {"id": "A_NOTCH", "cycle_time": {"dist": "exponential", "mean": 0.4}, "buffer_after": 3},
        {
            "id": "C_COAT",
            "cycle_time": {"dist": "exponential", "mean": 0.5},
            "buffer_after": 3,
            "failures": [{"name": "c", **fail}],
        },
        {"id": "C_NOTCH", "cycle_time": {"dist": "exponential", "mean": 0.4}, "buffer_after": 3},
        {"id": "STACK", "inputs": ["A_NOTCH", "C_NOTCH"], "cycle_time": {"dist": "exponential", "mean": 0.6}},
    )
    _, events = record(line, 300.0, seed=4)
    result = attribute_stops(events, line, 0.0, 300.0)
    named: dict[float, str] = {}
    for e in events:
        if isinstance(e, StateChanged) and e.station == "STACK":
            named[e.t] = e.reason if e.state is STARVED else ""
    inputs_seen = set()
    starved = [s for s in result.stops if s.chain[0].state is STARVED]
    assert len(starved) > 20
    for stop in starved:
        assert stop.chain[1].station == named[stop.start_h]
        inputs_seen.add(stop.chain[1].station)
    assert inputs_seen == {"A_NOTCH", "C_NOTCH"}
    causes = {(c.station, c.kind) for c in result.causes}
    assert {("A_COAT", CauseKind.DOWN), ("C_COAT", CauseKind.DOWN)} <= causes


def test_the_live_states_window_events_attribute_as_the_whole_stream_does() -> None:
    """``LiveLine.state_events`` leads a window with each merge input's buffer level, so a window's attribution
    from it equals the one from every event of the run (starved states without a reason, as some plants send)."""
    line = make_line(
        {"id": "A", "cycle_time": {"dist": "exponential", "mean": 0.5}, "buffer_after": 2},
        {"id": "C", "inputs": [], "cycle_time": {"dist": "exponential", "mean": 0.5}, "buffer_after": 2},
        {"id": "M", "inputs": ["A", "C"], "cycle_time": {"dist": "exponential", "mean": 0.45}},
    )
    _, raw = record(line, 60.0, seed=2)
    events = [e._replace(reason="") if isinstance(e, StateChanged) and e.state is STARVED else e for e in raw]
    live = LiveLine(line, begin_h=0, checkpoint_h=5.0)
    for e in events:
        live(e)
    window = live.state_events(23.3, 41.0)
    assert any(isinstance(e, BufferLevel) and e.t < 23.3 for e in window)
    ours = attribute_stops(window, line, 23.3, 41.0)
    truth = attribute_stops(events, line, 23.3, 41.0)
    assert ours == truth
    assert {s.chain[1].station for s in truth.stops if s.chain[0].state is STARVED} == {"A", "C"}


# -- stores --------------------------------------------------------------------------------------------------------
STORE = make_line(
    {"id": "A", "cycle_time": 1, "buffer_after": 1},
    {
        "id": "S",
        "kind": "delay",
        "capacity": 4,
        "dwell": 2,
        "buffer_after": 2,
        "failures": [{"name": "channel", "ttf": 50, "ttr": 2}, {"name": "rack", "ttf": 80, "ttr": 1, "positions": 1}],
    },
    {"id": "C", "cycle_time": 1},
)


def test_a_store_fault_that_fills_it_is_the_cause_of_the_blocking_upstream() -> None:
    events: list[Event] = [
        *_up(0.0, "A", "C"),
        StoreOccupancy(0.0, "S", 2, 0, False),
        _s(1.0, "S", DOWN, "channel"),  # store faults: the mode's index as the machine
        StoreOccupancy(1.0, "S", 2, 0, True),
        _s(1.5, "A", BLOCKED),
        _s(3.0, "S", WORKING, ""),
        StoreOccupancy(3.0, "S", 2, 0, False),
        _s(3.0, "A", WORKING),
        _s(4.0, "S", DOWN, "rack", machine=1),
        _s(4.5, "S", WORKING, "", machine=1),
    ]
    stop = attribute_stops(events, STORE, 0.0, 6.0, station="A").stops[0]
    assert (stop.start_h, stop.end_h) == (1.5, 3.0)
    assert _cause(stop) == ("S", CauseKind.DOWN, "channel")
    pareto = downtime_pareto(events, STORE, 0.0, 6.0)
    s = pareto.stations["S"]
    assert [(e.state, e.reason, e.hours, e.stops) for e in s.entries] == [(DOWN, "channel", 2.0, 1), (DOWN, "rack", 0.5, 1)]
    assert pareto.stations["A"].entries == ()  # A's blocking is not its downtime
    with pytest.raises(ValueError, match="not a state event"):
        downtime_pareto([_s(1.0, "S", DOWN, "x", machine=2)], STORE, 0.0, 2.0)


def test_store_faults_from_the_engine_are_counted_as_the_stores_downtime() -> None:
    """Each mode's hours in the Pareto are the spans from its DOWN to its WORKING (one open at the end: to the end)."""
    _, events = record(STORE, 400.0, seed=1)
    hours = {"channel": 0.0, "rack": 0.0}
    since: dict[str, float] = {}
    for e in events:
        if isinstance(e, StateChanged) and e.station == "S":
            mode = ("channel", "rack")[e.machine]
            if e.state is DOWN:
                since[mode] = e.t
            else:
                hours[mode] += e.t - since.pop(mode)
    for mode, t in since.items():
        hours[mode] += 400.0 - t
    assert all(h > 0 for h in hours.values())
    pareto = downtime_pareto(events, STORE, 0.0, 400.0)
    assert {e.reason: e.hours for e in pareto.stations["S"].entries} == pytest.approx(hours)
