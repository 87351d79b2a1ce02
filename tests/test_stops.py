"""Why the line stops: the downtime Pareto and the attribution of stops, on hand-made streams and on the engine's own."""

from __future__ import annotations

import math
from bisect import bisect_right
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_line, record
from twin.events import Event, MachineState, StateChanged, StoreOccupancy, UnitsCompleted
from twin.kpis import KpiReducer
from twin.schema import Line
from twin.state import LiveLine
from twin.stops import (
    AttributedStop,
    CauseKind,
    DowntimeEntry,
    StopAttribution,
    attribute_stops,
    downtime_pareto,
)

WORKING, STARVED, BLOCKED = MachineState.WORKING, MachineState.STARVED, MachineState.BLOCKED
DOWN, SETUP, PLANNED_STOP = MachineState.DOWN, MachineState.SETUP, MachineState.PLANNED_STOP

ABC = make_line(
    {"id": "A", "cycle_time": 1, "buffer_after": 2},
    {"id": "B", "cycle_time": 1, "machines": 2, "buffer_after": 2},
    {"id": "C", "cycle_time": 1},
)
SERIAL = make_line(
    {"id": "A", "cycle_time": 1, "buffer_after": 2},
    {"id": "B", "cycle_time": 1, "buffer_after": 2},
    {"id": "C", "cycle_time": 1},
)
STORE = make_line(
    {"id": "A", "cycle_time": 1, "buffer_after": 2},
    {"id": "S", "kind": "delay", "capacity": 4, "dwell": 2, "buffer_after": 2},
    {"id": "C", "cycle_time": 1},
)


def _s(t: float, station: str, state: MachineState, reason: str = "", machine: int = 0) -> StateChanged:
    return StateChanged(t, station, machine, state, reason)


def _up(t: float, *stations: str) -> list[Event]:
    """Every (single-machine) station of ``stations`` working from ``t``."""
    return [_s(t, sid, WORKING) for sid in stations]


def _path(stop: AttributedStop) -> list[tuple[str, MachineState, float, float]]:
    return [(step.station, step.state, step.t, step.since_h) for step in stop.chain]


def _only(result: StopAttribution) -> AttributedStop:
    assert len(result.stops) == 1
    return result.stops[0]


# -- a plain replay of the raw events, to check the module against ---------------------------------------------
class _Truth:
    """Each station's machine states (or a store's dwelling and held units) after every instant, replayed plainly."""

    def __init__(self, events: list[Event], line: Line) -> None:
        self.line = line
        states = {s.id: [STARVED] * s.machines for s in line.stations if s.kind == "process"}
        self.initial: dict[str, tuple[Any, ...]] = {sid: tuple(m) for sid, m in states.items()}
        self.initial.update({s.id: ("store", 0, 0) for s in line.stations if s.kind == "delay"})
        self.times: dict[str, list[float]] = {s.id: [] for s in line.stations}
        self.snaps: dict[str, list[tuple[Any, ...]]] = {s.id: [] for s in line.stations}
        for ev in events:
            if isinstance(ev, StateChanged):
                states[ev.station][ev.machine] = ev.state
                snap: tuple[Any, ...] = tuple(states[ev.station])
            elif isinstance(ev, StoreOccupancy):
                snap = ("store", ev.dwelling, ev.held)
            else:
                continue
            times, snaps = self.times[ev.station], self.snaps[ev.station]
            if times and times[-1] == ev.t:
                snaps[-1] = snap  # the state after the last event of an instant
            else:
                times.append(ev.t)
                snaps.append(snap)

    def at(self, station: str, t: float) -> tuple[Any, ...]:
        k = bisect_right(self.times[station], t) - 1
        return self.snaps[station][k] if k >= 0 else self.initial[station]

    @staticmethod
    def _stopped(snap: tuple[Any, ...]) -> bool:
        if snap and snap[0] == "store":
            return not (snap[1] > 0 and snap[2] == 0)
        return WORKING not in snap

    def stops(self, station: str, start: float, end: float) -> list[tuple[float, float]]:
        """The maximal stretches of ``[start, end)`` in which no machine of ``station`` works."""
        out: list[tuple[float, float]] = []
        since = start if self._stopped(self.at(station, start)) else None
        for t, snap in zip(self.times[station], self.snaps[station], strict=True):
            if not start < t < end:
                continue
            stopped = self._stopped(snap)
            if stopped and since is None:
                since = t
            elif not stopped and since is not None:
                out.append((since, t))
                since = None
        if since is not None and end > since:
            out.append((since, end))
        return out


# -- the downtime Pareto ---------------------------------------------------------------------------------------
def test_the_pareto_counts_machine_hours_and_stops_per_reason_clipped_to_the_window() -> None:
    events: list[Event] = [
        _s(-3.0, "A", DOWN, "x"),  # over before the window: not in it
        _s(-2.0, "A", WORKING),
        _s(-1.0, "A", DOWN, "jam"),  # running at the window start: counts as a stop, from the start
        _s(2.0, "A", WORKING),
        _s(3.0, "B", SETUP, "changeover"),
        _s(4.0, "B", PLANNED_STOP, "break", machine=1),
        _s(4.5, "B", WORKING),
        _s(4.5, "B", WORKING, machine=1),
        _s(5.0, "A", DOWN, "jam"),
        _s(6.0, "A", WORKING),
        _s(7.0, "A", DOWN, "jam"),  # reported and left at one instant: no stop
        _s(7.0, "A", WORKING),
        _s(8.0, "A", DOWN, ""),
        _s(9.0, "A", DOWN, ""),  # a repeated report: the same stop
        _s(9.5, "C", DOWN, "motor"),  # running at the window end: clipped to it
        _s(12.0, "C", WORKING),  # after the window
    ]
    pareto = downtime_pareto(events, ABC, 0.0, 10.0)

    a = pareto.stations["A"]
    assert a.hours == 5.0
    assert a.entries == (
        DowntimeEntry("A", DOWN, "jam", hours=3.0, stops=2, share=0.6, cumulative_share=0.6),
        DowntimeEntry("A", DOWN, "unspecified", hours=2.0, stops=1, share=0.4, cumulative_share=1.0),
    )
    b = pareto.stations["B"]
    assert [(e.state, e.reason, e.hours, e.stops, e.share) for e in b.entries] == [
        (SETUP, "changeover", 1.5, 1, 0.75),
        (PLANNED_STOP, "break", 0.5, 1, 0.25),
    ]
    assert [(e.reason, e.hours, e.stops) for e in pareto.stations["C"].entries] == [("motor", 0.5, 1)]
    assert pareto.hours == 7.5
    # line-wide: every station's entries against the line's total; equal hours and stops go in flow order
    assert [(e.station, e.reason, e.hours) for e in pareto.line] == [
        ("A", "jam", 3.0),
        ("A", "unspecified", 2.0),
        ("B", "changeover", 1.5),
        ("B", "break", 0.5),
        ("C", "motor", 0.5),
    ]
    assert [e.share for e in pareto.line] == pytest.approx([0.4, 0.8 / 3, 0.2, 0.2 / 3, 0.2 / 3])
    assert [e.cumulative_share for e in pareto.line] == pytest.approx([0.4, 2 / 3, 13 / 15, 14 / 15, 1.0])


def test_a_pareto_of_a_window_without_downtime_lists_every_station_empty() -> None:
    pareto = downtime_pareto([*_up(0.0, "A", "C"), _s(0.0, "B", WORKING), _s(0.0, "B", STARVED, machine=1)], ABC, 0.0, 8.0)
    assert list(pareto.stations) == ["A", "B", "C"]
    assert all(s.entries == () for s in pareto.stations.values())
    assert pareto.hours == 0.0
    assert pareto.line == ()


# -- attribution on hand-made streams --------------------------------------------------------------------------
def test_a_starved_chain_leads_to_the_station_that_was_down() -> None:
    events = [
        *_up(0.0, "A", "B", "C"),
        _s(1.0, "A", DOWN, "jam"),
        _s(2.0, "B", STARVED),
        _s(3.0, "C", STARVED),
        _s(4.0, "A", WORKING),
        _s(5.0, "B", WORKING),
        _s(6.0, "C", WORKING),
    ]
    result = attribute_stops(events, SERIAL, 0.0, 10.0)
    stop = _only(result)
    assert (stop.station, stop.start_h, stop.end_h, stop.duration_h) == ("C", 3.0, 6.0, 3.0)
    assert (stop.cause_station, stop.cause_kind, stop.cause_reason) == ("A", CauseKind.DOWN, "jam")
    assert _path(stop) == [("C", STARVED, 3.0, 3.0), ("B", STARVED, 3.0, 2.0), ("A", DOWN, 3.0, 1.0)]
    assert result.stopped_h == 3.0
    assert [(c.station, c.kind, c.reason, c.hours, c.stops, c.share) for c in result.causes] == [
        ("A", CauseKind.DOWN, "jam", 3.0, 1, 1.0)
    ]


def test_a_blocked_chain_leads_downstream_to_the_station_that_was_down() -> None:
    events = [
        *_up(0.0, "A", "B", "C"),
        _s(1.0, "C", DOWN, "motor"),
        _s(2.0, "B", BLOCKED),
        _s(3.0, "A", BLOCKED),
        _s(4.0, "C", WORKING),
        _s(4.0, "B", WORKING),
        _s(4.0, "A", WORKING),
    ]
    stop = _only(attribute_stops(events, SERIAL, 0.0, 10.0, station="A"))
    assert (stop.start_h, stop.end_h, stop.cause_station, stop.cause_kind, stop.cause_reason) == (
        3.0,
        4.0,
        "C",
        CauseKind.DOWN,
        "motor",
    )
    assert [(step.station, step.state) for step in stop.chain] == [("A", BLOCKED), ("B", BLOCKED), ("C", DOWN)]


def test_a_neighbour_working_again_passes_on_the_stop_whose_effect_persists() -> None:
    # A is repaired at 2 and B, which starved meanwhile, works again from 2.5; C runs dry at 3, after both are
    # back: the gap A's stop left in the buffers reaches C late. The trace goes back along the stops that caused it.
    events = [
        *_up(0.0, "A", "B", "C"),
        _s(1.0, "A", DOWN, "jam"),
        _s(1.5, "B", STARVED),
        _s(2.0, "A", WORKING),
        _s(2.5, "B", WORKING),
        _s(3.0, "C", STARVED),
        _s(3.5, "C", WORKING),
    ]
    stop = _only(attribute_stops(events, SERIAL, 0.0, 10.0))
    assert (stop.cause_station, stop.cause_kind, stop.cause_reason) == ("A", CauseKind.DOWN, "jam")
    # B's stop ended at 2.5 in STARVED (since 1.5); A's at 2 in DOWN (since 1)
    assert _path(stop) == [("C", STARVED, 3.0, 3.0), ("B", STARVED, 2.5, 1.5), ("A", DOWN, 2.0, 1.0)]


def test_a_working_neighbour_without_a_stop_since_the_station_last_worked_is_slow() -> None:
    events = [
        *_up(0.0, "A", "B", "C"),
        _s(0.5, "C", STARVED),
        _s(1.0, "B", STARVED),  # A is slow to deliver: B waits, A never stops
        _s(1.5, "B", WORKING),
        _s(2.0, "C", WORKING),
        _s(3.0, "C", STARVED),  # B works but C runs dry, and B's last stop ended before C last began working (2)
        _s(3.2, "C", WORKING),
        _s(4.0, "B", STARVED),
        _s(4.2, "C", STARVED),
        _s(4.5, "B", WORKING),
        _s(5.0, "C", WORKING),
    ]
    result = attribute_stops(events, SERIAL, 0.0, 10.0)
    _, first, second = result.stops
    assert (first.start_h, first.cause_station, first.cause_kind, first.cause_reason) == (3.0, "B", CauseKind.SLOW, "")
    assert _path(first) == [("C", STARVED, 3.0, 3.0), ("B", WORKING, 3.0, 1.5)]
    # at 4.2, B is starved and A works, without a stop ever: A is slow
    assert (second.start_h, second.end_h, second.cause_station, second.cause_kind) == (4.2, 5.0, "A", CauseKind.SLOW)
    assert [(step.station, step.state) for step in second.chain] == [("C", STARVED), ("B", STARVED), ("A", WORKING)]
    assert [(c.station, c.kind, c.hours, c.stops) for c in result.causes] == [
        ("B", CauseKind.SLOW, pytest.approx(1.7), 2),  # [0.5, 2) (B had no stop yet) and [3, 3.2)
        ("A", CauseKind.SLOW, pytest.approx(0.8), 1),
    ]
    assert result.stopped_h == pytest.approx(2.5)


def test_a_neighbours_stop_that_ended_when_the_station_began_working_is_not_followed() -> None:
    events = [
        *_up(0.0, "A", "B", "C"),
        _s(1.0, "B", DOWN, "jam"),
        _s(1.0, "C", STARVED),
        _s(2.0, "B", WORKING),
        _s(2.0, "C", WORKING),  # C got B's last unit as B came back
        _s(3.0, "C", STARVED),
        _s(3.5, "C", WORKING),
    ]
    first, second = attribute_stops(events, SERIAL, 0.0, 10.0).stops
    assert (first.cause_station, first.cause_kind) == ("B", CauseKind.DOWN)
    assert (second.cause_station, second.cause_kind) == ("B", CauseKind.SLOW)


def test_the_first_station_starved_is_a_supply_stop_and_the_last_blocked_a_shipping_stop() -> None:
    events = [
        *_up(0.0, "A", "B", "C"),
        _s(1.0, "A", STARVED),
        _s(2.0, "B", STARVED),
        _s(3.0, "C", STARVED),
        _s(5.0, "A", WORKING),
        _s(6.0, "B", WORKING),
        _s(7.0, "C", WORKING),
        _s(8.0, "C", BLOCKED),  # the sink never refuses in the engine; a plant's exit can
        _s(9.0, "C", WORKING),
    ]
    supply, shipping = attribute_stops(events, SERIAL, 0.0, 10.0).stops
    assert (supply.cause_station, supply.cause_kind, supply.cause_reason) == (None, CauseKind.SUPPLY, "")
    assert [step.station for step in supply.chain] == ["C", "B", "A"]
    assert (shipping.cause_station, shipping.cause_kind) == (None, CauseKind.SHIPPING)
    assert [step.station for step in shipping.chain] == ["C"]


def test_a_starved_and_blocked_ping_pong_ends_at_the_last_station_reached() -> None:
    # inconsistent data: A blocked by B while B starves for A's units
    events = [
        *_up(0.0, "A", "B", "C"),
        _s(1.0, "A", BLOCKED),
        _s(1.0, "B", STARVED),
        _s(2.0, "A", WORKING),
        _s(2.0, "B", WORKING),
    ]
    stop = _only(attribute_stops(events, SERIAL, 0.0, 10.0, station="B"))
    assert (stop.cause_station, stop.cause_kind) == ("A", CauseKind.SLOW)
    assert [(step.station, step.state) for step in stop.chain] == [("B", STARVED), ("A", BLOCKED)]


def test_a_station_is_down_only_when_down_is_its_most_common_idle_state() -> None:
    events = [
        *_up(0.0, "A", "C"),
        _s(0.0, "B", WORKING),
        _s(0.0, "B", WORKING, machine=1),
        _s(1.0, "A", DOWN, "jam"),
        _s(1.0, "B", DOWN, "belt", machine=1),
        _s(2.0, "B", STARVED),  # B: one down, one starved -> a tie, which DOWN wins
        _s(2.5, "C", STARVED),
        _s(3.0, "B", WORKING, machine=1),
        _s(3.0, "C", WORKING),
    ]
    stop = _only(attribute_stops(events, ABC, 0.0, 10.0, station="B"))
    assert (stop.cause_station, stop.cause_kind, stop.cause_reason) == ("B", CauseKind.DOWN, "belt")
    three = make_line(
        {"id": "A", "cycle_time": 1, "buffer_after": 2},
        {"id": "B", "cycle_time": 1, "machines": 3, "buffer_after": 2},
        {"id": "C", "cycle_time": 1},
    )
    events = [
        *_up(0.0, "A", "C"),
        *[_s(0.0, "B", WORKING, machine=m) for m in range(3)],
        _s(1.0, "A", DOWN, "jam"),
        _s(1.0, "B", DOWN, "belt", machine=2),
        _s(2.0, "B", STARVED),
        _s(2.0, "B", STARVED, machine=1),  # B: one down, two starved -> starved: A's stop is the cause
        _s(3.0, "B", WORKING, machine=1),
    ]
    stop = _only(attribute_stops(events, three, 0.0, 10.0, station="B"))
    assert (stop.cause_station, stop.cause_kind, stop.cause_reason) == ("A", CauseKind.DOWN, "jam")


def test_a_store_is_traced_through_while_empty_and_is_the_cause_while_dwelling() -> None:
    events = [
        *_up(0.0, "A", "C"),
        StoreOccupancy(0.0, "S", 3, 0, False),
        _s(1.0, "A", DOWN, "jam"),
        StoreOccupancy(2.0, "S", 0, 0, False),  # the store ran empty
        _s(2.5, "C", STARVED),
        _s(3.0, "A", WORKING),
        StoreOccupancy(3.5, "S", 1, 0, False),
        _s(6.0, "C", WORKING),
        _s(8.0, "C", STARVED),  # units dwell in the store, none ready: the store's dwell holds C up
        _s(9.0, "C", WORKING),
    ]
    empty, dwelling = attribute_stops(events, STORE, 0.0, 10.0).stops
    assert (empty.cause_station, empty.cause_kind) == ("A", CauseKind.DOWN)
    assert [(step.station, step.state) for step in empty.chain] == [("C", STARVED), ("S", STARVED), ("A", DOWN)]
    assert (dwelling.cause_station, dwelling.cause_kind) == ("S", CauseKind.SLOW)


def test_stops_are_clipped_to_the_window_and_events_before_it_set_its_first_state() -> None:
    events = [
        *_up(0.0, "A", "B", "C"),
        _s(1.0, "A", DOWN, "jam"),
        _s(1.5, "B", STARVED),
        _s(2.0, "C", STARVED),
        _s(4.0, "A", WORKING),
        _s(4.5, "B", WORKING),
        _s(5.0, "C", WORKING),
        _s(7.0, "C", STARVED),
        _s(7.0, "B", STARVED),
        _s(7.0, "A", DOWN, "jam"),
        _s(9.5, "A", WORKING),
    ]
    result = attribute_stops(events, SERIAL, 3.0, 8.0)
    running, last = result.stops
    assert (running.start_h, running.end_h, running.duration_h, running.cause_station) == (3.0, 5.0, 2.0, "A")
    assert _path(running)[0] == ("C", STARVED, 3.0, 3.0)  # traced from the window start
    assert (last.start_h, last.end_h, last.duration_h) == (7.0, 8.0, 1.0)
    assert result.stopped_h == 3.0
    assert attribute_stops(events, SERIAL, 3.0, 3.0).stops == ()


def test_bad_arguments_and_events_are_refused() -> None:
    with pytest.raises(ValueError, match="end_h"):
        attribute_stops([], SERIAL, 2.0, 1.0)
    with pytest.raises(ValueError, match="end_h"):
        downtime_pareto([], SERIAL, 2.0, 1.0)
    with pytest.raises(ValueError, match="'X' is not a station"):
        attribute_stops([], SERIAL, 0.0, 1.0, station="X")
    with pytest.raises(ValueError, match="time order"):
        attribute_stops([_s(1.0, "A", DOWN), _s(0.5, "A", WORKING)], SERIAL, 0.0, 2.0)
    for bad in (_s(0.5, "X", DOWN), _s(0.5, "B", DOWN, machine=1), _s(0.5, "S", DOWN), StoreOccupancy(0.5, "A", 1, 0, False)):
        with pytest.raises(ValueError, match="not a state event"):
            downtime_pareto([bad], STORE if bad.station == "S" else SERIAL, 0.0, 2.0)
    # other events are ignored
    assert downtime_pareto([UnitsCompleted(0.5, "A", 0, 1, 0)], SERIAL, 0.0, 2.0).hours == 0.0


# -- attribution on the engine's event stream, where the truth is known ----------------------------------------
def _one_failing(position: int, basis: str, stations: int = 4) -> Line:
    """A serial line of constant-time, reliable stations but one, the slowest, that fails at random."""
    specs: list[dict[str, Any]] = []
    for i in range(stations):
        spec: dict[str, Any] = {"id": f"S{i}", "cycle_time": 0.1}
        if i == position:
            spec["cycle_time"] = 0.15
            spec["failures"] = [
                {
                    "name": "jam",
                    "ttf": {"dist": "exponential", "mean": 2},
                    "ttr": {"dist": "exponential", "mean": 0.3},
                    "basis": basis,
                }
            ]
        if i < stations - 1:
            spec["buffer_after"] = 3
        specs.append(spec)
    return make_line(*specs)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("position", "basis"), [(0, "operating"), (1, "calendar"), (2, "operating"), (3, "calendar")])
def test_every_stop_of_the_output_goes_to_the_one_station_that_fails(position: int, basis: str, seed: int) -> None:
    line = _one_failing(position, basis)
    failing = f"S{position}"
    _, events = record(line, 60.0, seed)
    truth = _Truth(events, line)
    result = attribute_stops(events, line, 0.0, 60.0)
    fill, *stops = result.stops
    assert fill.start_h == 0.0  # the line starts empty: its first stop, while it fills, is nobody's fault
    kinds = {s.cause_kind for s in stops}
    assert len(stops) > 10
    # down when it was down, slow otherwise (the output itself is never starved by a faster line, only down)
    assert kinds == ({CauseKind.DOWN} if position == 3 else {CauseKind.DOWN, CauseKind.SLOW})
    for stop in stops:
        assert (stop.cause_station, stop.cause_reason) == (failing, "jam" if stop.cause_kind == CauseKind.DOWN else "")
        # the chain walks up the line through starved stations only, to the failing one
        assert [step.station for step in stop.chain] == [f"S{i}" for i in range(3, position - 1, -1)]
        for step in stop.chain[:-1]:
            assert step.state == STARVED
            assert truth.at(step.station, step.since_h) == (STARVED,)
        cause = stop.chain[-1]
        assert truth.at(failing, cause.since_h) == (cause.state,)
        assert cause.state == (DOWN if stop.cause_kind == CauseKind.DOWN else WORKING)
    assert result.stopped_h == pytest.approx(sum(b - a for a, b in truth.stops("S3", 0.0, 60.0)))
    assert math.fsum(c.hours for c in result.causes) == pytest.approx(result.stopped_h)


def _two_failing() -> Line:
    """Constant cycle times, the output the slowest, and two stations failing on fixed calendars, never together."""
    specs: list[dict[str, Any]] = []
    for i in range(5):
        spec: dict[str, Any] = {"id": f"S{i}", "cycle_time": 0.12 if i == 4 else 0.1}
        if i < 4:
            spec["buffer_after"] = 2
        specs.append(spec)
    specs[1]["failures"] = [{"name": "f1", "ttf": 5, "ttr": 1, "basis": "calendar"}]  # down [5, 6), [11, 12), ...
    specs[3]["failures"] = [{"name": "f3", "ttf": 7.5, "ttr": 1, "basis": "calendar"}]  # down [7.5, 8.5), [16, 17), ...
    return make_line(*specs)


def _downs(events: list[Event], station: str, end: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    since: float | None = None
    for ev in events:
        if isinstance(ev, StateChanged) and ev.station == station:
            if ev.state == DOWN and since is None:
                since = ev.t
            elif ev.state != DOWN and since is not None:
                out.append((since, ev.t))
                since = None
    return [*out, (since, end)] if since is not None else out


def test_with_two_failing_stations_each_stop_goes_to_the_one_that_went_down_last() -> None:
    line, hours = _two_failing(), 40.0
    _, events = record(line, hours, 0)
    downs = sorted((a, b, sid) for sid in ("S1", "S3") for a, b in _downs(events, sid, hours))
    assert all(b <= next_a for (_, b, _), (next_a, _, _) in pairwise(downs))  # never together
    result = attribute_stops(events, line, 0.0, hours)
    fill, *stops = result.stops
    assert fill.start_h == 0.0  # the line starts empty: its first stop, while it fills, is nobody's fault
    assert {s.cause_station for s in stops} == {"S1", "S3"}
    for stop in stops:
        truth = max((a, sid) for a, _, sid in downs if a <= stop.start_h)[1]
        assert (stop.cause_station, stop.cause_kind, stop.cause_reason) == (truth, CauseKind.DOWN, "f" + truth[1])
    # S1's stops reach the output after S1 is back: the trace goes back in time to its down stop
    assert any(s.chain[-1].t < s.start_h for s in stops if s.cause_station == "S1")
    assert math.fsum(c.hours for c in result.causes) == pytest.approx(result.stopped_h)
    assert result.stopped_h == pytest.approx(sum(b - a for a, b in _Truth(events, line).stops("S4", 0.0, hours)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_station_blocked_by_a_failing_station_downstream_is_attributed_to_it(seed: int) -> None:
    line = make_line(
        {"id": "U", "cycle_time": 0.1, "buffer_after": 2},
        {"id": "M", "cycle_time": 0.1, "buffer_after": 2},
        {
            "id": "F",
            "cycle_time": 0.15,
            "failures": [{"name": "jam", "ttf": {"dist": "exponential", "mean": 2}, "ttr": {"dist": "exponential", "mean": 0.3}}],
        },
    )
    _, events = record(line, 60.0, seed)
    truth = _Truth(events, line)
    result = attribute_stops(events, line, 0.0, 60.0, station="U")
    assert {s.cause_kind for s in result.stops} == {CauseKind.DOWN, CauseKind.SLOW}
    for stop in result.stops:
        assert stop.cause_station == "F"
        assert [(step.station, step.state) for step in stop.chain[:-1]] == [("U", BLOCKED), ("M", BLOCKED)]
        assert truth.at("M", stop.chain[1].since_h) == (BLOCKED,)
        cause = stop.chain[-1]
        assert truth.at("F", cause.since_h) == (DOWN if stop.cause_kind == CauseKind.DOWN else WORKING,)
    assert result.stopped_h == pytest.approx(sum(b - a for a, b in truth.stops("U", 0.0, 60.0)))


LIVE_LINE = make_line(
    {"id": "P", "cycle_time": 0.15},  # the slowest, never blocked: it reports WORKING once, at the start
    {"id": "Q", "cycle_time": 0.1, "buffer_after": 3, "failures": [{"name": "jam", "ttf": 3, "ttr": 0.4}]},
    {"id": "S", "kind": "delay", "capacity": 4, "dwell": 0.3, "buffer_after": 2},
    {
        "id": "R",
        "machines": 2,
        "cycle_time": {"dist": "exponential", "mean": 0.2},
        "failures": [{"name": "belt", "ttf": {"dist": "exponential", "mean": 4}, "ttr": 0.5, "basis": "calendar"}],
    },
)


def test_a_live_lines_state_events_give_the_same_answers_as_the_engines_events() -> None:
    _, events = record(LIVE_LINE, 60.0, 5)
    live = LiveLine(LIVE_LINE, begin_h=0.0, history_h=16.0)
    for ev in events:
        live(ev)
    cut = live.history_start_h
    assert cut is not None
    assert cut > 40.0  # pruned
    for w0, w1 in [(cut, 60.0), (cut + 3.3, 55.0)]:
        window = live.state_events(w0, w1)
        raw = [e for e in events if isinstance(e, StateChanged | StoreOccupancy)]
        inside = [e for e in raw if w0 <= e.t < w1]
        lead = window[: len(window) - len(inside)]
        assert window[len(lead) :] == inside
        latest: dict[tuple[str, int], Event] = {}
        for e in raw:
            if e.t < w0:
                latest[(e.station, e.machine if isinstance(e, StateChanged) else 0)] = e
        assert len(lead) == len(latest)
        assert set(lead) == set(latest.values())  # the latest report of each machine and store before w0
        assert [e.t for e in lead] == sorted(e.t for e in lead)
        assert min(e.t for e in lead) < cut  # P's only report was cut from the history long ago
        pareto = downtime_pareto(window, LIVE_LINE, w0, w1)
        assert pareto == downtime_pareto(events, LIVE_LINE, w0, w1)
        assert {e.station for e in pareto.line} == {"Q", "R"}
        for sid in ("Q", "S", "R"):
            assert attribute_stops(window, LIVE_LINE, w0, w1, station=sid) == attribute_stops(
                events, LIVE_LINE, w0, w1, station=sid
            )
    assert attribute_stops(live.state_events(cut, 60.0), LIVE_LINE, cut, 60.0).stops  # the comparison covers stops
    assert live.state_events(cut)[-1] == [e for e in events if isinstance(e, StateChanged | StoreOccupancy)][-1]


def test_a_live_line_refuses_state_events_outside_its_history() -> None:
    live = LiveLine(LIVE_LINE)
    with pytest.raises(ValueError, match="no events yet"):
        live.state_events(0.0, 1.0)
    live(StateChanged(10.0, "P", 0, WORKING, ""))
    with pytest.raises(ValueError, match=r"start_h \(9.0 h\) is before the retained history"):
        live.state_events(9.0, 11.0)
    with pytest.raises(ValueError, match=r"end_h \(10.5 h\) is before start_h"):
        live.state_events(11.0, 10.5)
    assert live.state_events(10.0, 10.0) == []
    assert live.state_events(11.0, 12.0) == [StateChanged(10.0, "P", 0, WORKING, "")]


# -- properties ------------------------------------------------------------------------------------------------
HORIZON = 30.0


@st.composite
def lines(draw: st.DrawFn) -> Line:
    n = draw(st.integers(1, 4))
    stations: list[dict[str, Any]] = []
    for i in range(n):
        if 0 < i < n - 1 and draw(st.booleans()):
            station: dict[str, Any] = {
                "id": f"S{i}",
                "kind": "delay",
                "capacity": draw(st.integers(1, 5)),
                "dwell": draw(st.sampled_from([0.5, {"dist": "exponential", "mean": 1.0}])),
            }
        else:
            mean = draw(st.sampled_from([0.3, 0.7, 1.0]))
            station = {
                "id": f"S{i}",
                "cycle_time": draw(st.sampled_from([mean, {"dist": "exponential", "mean": mean}])),
                "machines": draw(st.integers(1, 3)),
            }
            if draw(st.booleans()):
                station["batch_size"] = draw(st.integers(2, 4))
            station["failures"] = [
                {
                    "name": name,
                    "ttf": {"dist": "exponential", "mean": draw(st.sampled_from([2.0, 6.0]))},
                    "ttr": {"dist": "exponential", "mean": 0.5},
                    "basis": draw(st.sampled_from(["operating", "calendar"])),
                }
                for name in draw(st.sampled_from([(), ("jam",), ("jam", "motor")]))
            ]
        if i < n - 1:
            station["buffer_after"] = draw(st.sampled_from([0, 1, 3, None]))
        stations.append(station)
    if draw(st.booleans()):
        return make_line(*stations, arrival={"interarrival": {"dist": "exponential", "mean": draw(st.sampled_from([0.3, 1.0]))}})
    return make_line(*stations)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=lines(), seed=st.integers(0, 2**32 - 1), start=st.sampled_from([0.0, 4.25]), which=st.integers(0, 3))
def test_every_stop_has_one_cause_and_down_causes_were_down(line: Line, seed: int, start: float, which: int) -> None:
    _, events = record(line, HORIZON, seed)
    truth = _Truth(events, line)
    station = line.stations[which % len(line.stations)].id
    ids = [s.id for s in line.stations]
    result = attribute_stops(events, line, start, HORIZON, station=station)
    assert [(s.start_h, s.end_h) for s in result.stops] == truth.stops(station, start, HORIZON)
    assert math.fsum(c.hours for c in result.causes) == pytest.approx(result.stopped_h)
    assert sum(c.stops for c in result.causes) == len(result.stops)
    for stop in result.stops:
        assert stop.chain[0].station == station
        steps = [ids.index(step.station) for step in stop.chain]
        assert all(abs(b - a) == 1 for a, b in pairwise(steps))  # neighbour to neighbour
        assert len(set(steps)) == len(steps)  # each station at most once
        assert all(start <= step.since_h <= step.t <= stop.start_h for step in stop.chain)
        if stop.cause_kind == CauseKind.DOWN:
            assert stop.cause_station is not None
            assert DOWN in truth.at(stop.cause_station, stop.chain[-1].since_h)
        elif stop.cause_kind == CauseKind.SUPPLY:
            assert stop.chain[-1].station == ids[0]
    # the Pareto's down hours are the KPI reducer's down time
    pareto = downtime_pareto(events, line, start, HORIZON)
    reducer = KpiReducer(line, start, HORIZON)
    for e in events:
        reducer(e)
    kpis = reducer.result()
    for s in line.stations:
        down_h = kpis.stations[s.id].state_fractions["down"] * s.machines * (HORIZON - start)
        assert pareto.stations[s.id].hours == pytest.approx(down_h, abs=1e-9)
    assert pareto.hours == pytest.approx(sum(st.hours for st in pareto.stations.values()))
