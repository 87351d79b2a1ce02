"""What the live state returns: the line, its stations and machines now, the shift, and the line's OEE.

One station-summary rule (:func:`summary_state`, :func:`summary_reason`) serves the live status, the API's
station views and the stop analyses of ``twin.stops``: a process station is WORKING while at least one of its
machines works; otherwise it is in the most common state of its machines, ties going to the state a plant
engineer must act on first (DOWN, BLOCKED, STARVED, SETUP, PLANNED_STOP); its reason is the most common reason
among the machines in that state, ties going to the first in alphabetical order. A delay station (a store) is
summarised by :func:`store_summary`: BLOCKED while it holds ready units at its exit; DOWN (the reason: its fault)
while a fault has taken positions out of use and its intake waits for room; WORKING while units dwell; STARVED
when empty.

Line OEE (:func:`line_oee`) is the OEE of the line's constraint station (the lowest ideal rate in the line file,
counted in units the line ships: a station of a branch that feeds a merge taking ``per_unit`` of its units per
unit made counts its rate divided by them, :func:`units_per_shipped`), with that station's availability,
performance and quality, so the headline, ``/oee`` and the station table agree: a line makes what its constraint
makes. Every station's OEE (``twin.kpis``), over a window:
- planned busy time = machine-hours in the window not in a planned stop (off shift, a break, a holiday, a planned
  stop of the line or the station): a planned stop lowers it and leaves availability alone;
- availability = the share of it neither down nor in setup (breakdowns and changeovers);
- performance = the ideal time of the work done inside the window (a job under way at either edge counts for its
  work inside) over the time available; starving, blocking, slow cycles (a speed factor below 1), micro-stops and
  half-filled batches are performance losses, and it exceeds 1 only if machines ran faster than their ideal cycle;
- quality = good over finished units of the station; OEE = availability x performance x quality.
The line's good output (units shipped by the last station) is reported beside it, not mixed into it: units leave
the line days after the constraint made them (the aging store), so line-end output over a window measures another
window's work.
Per-station OEE and its losses are in ``RunKpis.stations``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from twin.events import MachineState
from twin.kpis import RunKpis
from twin.schema import Line, Station

__all__ = [
    "IDLE_ORDER",
    "LineOee",
    "LineStatus",
    "MachineStatus",
    "ProcessReading",
    "ShiftStatus",
    "StationStatus",
    "StoreStatus",
    "constraint_of",
    "line_oee",
    "store_summary",
    "summary_reason",
    "summary_state",
    "units_per_shipped",
]

IDLE_ORDER = (MachineState.DOWN, MachineState.BLOCKED, MachineState.STARVED, MachineState.SETUP, MachineState.PLANNED_STOP)
"""The order a station summary breaks ties in when no machine works: the state a plant engineer must act on first wins."""


def summary_state(counts: Mapping[MachineState, int]) -> MachineState | None:
    """A process station's summary state from how many of its machines are in each state (None: no machine counted).

    WORKING while any machine works, otherwise the most common state, ties broken by :data:`IDLE_ORDER`."""
    if counts.get(MachineState.WORKING, 0):
        return MachineState.WORKING
    best: MachineState | None = None
    most = 0
    for state in IDLE_ORDER:
        n = counts.get(state, 0)
        if n > most:
            best, most = state, n
    return best


def summary_reason(reasons: Mapping[str, int]) -> str:
    """The reason a station gives for its summary state: the most common among its machines in that state (ties: the
    first in alphabetical order); empty when none gave one."""
    given = {r: n for r, n in reasons.items() if r and n > 0}
    if not given:
        return ""
    return min(given, key=lambda r: (-given[r], r))


def store_summary(
    dwelling: int, held: int, intake_blocked: bool, faults: Mapping[str, float] | None = None
) -> tuple[MachineState, str]:
    """A delay station's summary state and reason from its occupancy and its faults under repair (mode -> since when):
    BLOCKED while it holds ready units at its exit; DOWN while a fault has positions out of use and its intake waits
    for room (the reason: the mode that faulted first, ties alphabetical); WORKING while units dwell; STARVED when
    empty."""
    if held:
        return MachineState.BLOCKED, ""
    if faults and intake_blocked:
        return MachineState.DOWN, min(faults, key=lambda mode: (faults[mode], mode))
    if dwelling:
        return MachineState.WORKING, ""
    return MachineState.STARVED, ""


@dataclass(frozen=True)
class ProcessReading:
    """The latest value of a process signal at a station: which machine measured it, and when."""

    value: float
    unit: str
    t: float
    machine: int


@dataclass(frozen=True)
class MachineStatus:
    """One machine now: its state (None before its first report), since when, why, and its counts since the live state began."""

    machine: int
    state: MachineState | None
    since_h: float | None
    reason: str
    good: int
    scrapped: int


@dataclass(frozen=True)
class StoreStatus:
    """A delay station now: units in their dwell, units ready but held at its exit, whether its intake waits for room,
    and its faults under repair (failure mode -> since when) with the positions they take out of use."""

    dwelling: int
    held: int
    intake_blocked: bool
    capacity: int
    t: float
    faults: dict[str, float] = field(default_factory=dict)
    positions_out: int = 0


@dataclass(frozen=True)
class StationStatus:
    """One station now.

    ``state`` summarises it: WORKING while at least one machine works (the station produces; the machine
    counts and ``down_share`` tell how much capacity is lost), otherwise the most common state of its machines
    (ties: DOWN, BLOCKED, STARVED, SETUP, PLANNED_STOP), None while no machine has reported. A delay station is
    summarised by :func:`store_summary` (DOWN only while a fault keeps its intake waiting).
    ``since_h`` is when the station entered that state (the latest ``since`` of its machines in it; a store's last
    report, or its fault's start) and ``reason`` the most common reason among those machines (ties: the first in
    alphabetical order; a merge station starved names the input it waits for).
    ``machine_counts`` has every ``MachineState`` value and ``UNKNOWN``. ``good``/``scrapped`` count from the
    start of the live state; ``buffer_level`` is the buffer after the station (None: not reported yet, or the
    last station), ``buffer_level_h`` when it was reported.
    """

    id: str
    kind: str
    state: MachineState | None
    machine_counts: dict[str, int]
    down_share: float
    machines: tuple[MachineStatus, ...]
    good: int
    scrapped: int
    buffer_level: int | None
    buffer_level_h: float | None
    buffer_capacity: int | None
    store: StoreStatus | None
    process_values: dict[str, ProcessReading]
    since_h: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class ShiftStatus:
    """The shift ``[start_h, end_h)``: good units shipped in it so far against the plan so far (``twin.shifts``: the
    plan counts only the working time of the line). ``name`` is the calendar's name of the shift, or, between two
    shifts, why the line is not working (``off_shift``, ``holiday``); empty for a line without a calendar."""

    start_h: float
    end_h: float
    good: int
    plan: float
    name: str = ""


@dataclass(frozen=True)
class LineStatus:
    """The whole line at ``now_h``: its stations in flow order, the current shift, the counts and the clock.

    ``clock_h`` is the latest event time (None before the first event), ``history_start_h`` the start of the
    span :meth:`LiveLine.kpis` can cover and ``retained_events`` the events kept for it. ``good`` (shipped),
    ``scrapped`` and ``released`` count from the start of the live state (``released``: the units every branch start
    took from the line's supply); ``wip`` = ``wip0`` + released - scrapped - shipped - the inputs merged away (each
    unit a merge station finished took ``per_unit`` units of each input: they became one), so it counts pieces of
    material as ``twin.kpis`` does. ``events`` counts every event taken, ``late_events`` those older than the clock
    when they came and ``dropped_events`` the late ones older than the retained history; ``trimmed_events`` the
    events the history let go early (rolled into its checkpoint) to stay within its event bound.
    """

    line: str
    now_h: float | None
    clock_h: float | None
    history_start_h: float | None
    retained_events: int
    shift: ShiftStatus | None
    good: int
    scrapped: int
    released: int
    wip: int
    events: int
    late_events: int
    dropped_events: int
    stations: dict[str, StationStatus]
    trimmed_events: int = 0


@dataclass(frozen=True)
class LineOee:
    """The line's OEE over a window and its split into availability, performance and quality (see the module docstring)."""

    constraint: str
    ideal_rate_per_hour: float
    availability: float
    performance: float
    quality: float
    oee: float


def units_per_shipped(line: Line) -> dict[str, int]:
    """Per station, how many of its units one unit the line ships holds: 1 on the path of the final station's own
    units, the product of the ``per_unit`` of the merges on the way to the end on a branch (a stacker taking two
    anode sheets per stack: 2 for the anode branch's stations)."""
    consumer = line.consumer
    per = {inp.station: inp.per_unit for ins in line.inputs.values() for inp in ins}
    out: dict[str, int] = {}
    for s in reversed(line.stations):  # flow order: every consumer is listed after what it takes from
        out[s.id] = per[s.id] * out[consumer[s.id]] if s.id in consumer else 1
    return out


def constraint_of(line: Line) -> tuple[int, Station]:
    """The constraint station and its index in ``line.stations``: the lowest ideal rate counted in units the line
    ships (``Station.ideal_rate`` over :func:`units_per_shipped`), the first in flow order on ties."""
    per = units_per_shipped(line)
    return min(enumerate(line.stations), key=lambda pair: pair[1].ideal_rate / per[pair[1].id])


def line_oee(line: Line, kpis: RunKpis) -> LineOee:
    """The line-level OEE of ``kpis`` (over its window): its constraint station's (see the module docstring)."""
    _, constraint = constraint_of(line)
    at = kpis.stations[constraint.id]
    return LineOee(
        constraint=constraint.id,
        ideal_rate_per_hour=constraint.ideal_rate,
        availability=at.availability,
        performance=at.performance,
        quality=at.quality,
        oee=at.oee,
    )
