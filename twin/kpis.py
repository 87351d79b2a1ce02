"""KPIs of a line over a time window, computed from the event stream alone.

The same reducer serves the simulator and the live state (``twin.state``), so equal events give equal KPIs.
A reducer can give its KPIs mid-stream (``result(until=...)``) and hand its line state on to a reducer over a
later window (``fork``), which is how the live state answers "this shift so far" without replaying its history.

Definitions (per station, over the window of length T), after ISO 22400-2:
- state fractions: machine-hours in each state over ``machines * T``; a delay station counts its
  capacity as positions: ``working`` = units dwelling, ``blocked`` = units held at its exit, ``down`` = positions
  a store fault has taken out of use and that hold no unit (the room the fault takes away; a unit already in a
  faulted position goes on dwelling), ``starved`` = the other empty positions.
- OEE: the planned busy time is the machine-hours not in a PLANNED_STOP (off shift, a break, a holiday, a planned
  stop of the line or the station: ISO 22400's planned operation time less its planned downtime), so a planned
  stop lowers the planned busy time and leaves availability alone. Availability = the share of the planned busy
  time neither DOWN nor in SETUP (breakdowns and changeovers are availability losses); performance = the ideal
  time of the work done inside the window over the time available (speed losses and micro-stops, during which a
  machine stays WORKING and makes less, and starving and blocking are performance losses); quality = good /
  (good + scrap) of the units finished in the window; OEE = their product. The work done inside the window is
  pro-rated: a job (a unit, a lot or a batch) earns its ideal time (units x cycle time / batch size) in the share
  of its working time that lies inside the window, so a batch of 18 h finished 2 h into the window earns 2/18 of
  its ideal time there; a job still under way at the window's end earns its working time inside, up to what is
  left of its ideal time. A job whose start was not seen (it began before the events did) earns no more than its
  working time inside. So performance exceeds 1 only when machines ran faster than their ideal cycle. A delay
  station's work is its dwelling: OEE = position-hours of units within their dwell over capacity x T (its
  occupancy), times its quality; its faults are its availability losses.
- store faults: a delay station reports each fault as ``StateChanged(t, store, j, DOWN, mode)`` and its repair as
  ``StateChanged(t, store, j, WORKING, "")``, ``j`` the failure mode's index (not a machine); they count only in
  the store's ``down`` positions above (and in its intake, which the fault blocks).
- bottleneck: the *average active period* method (Roser, Nakano and Tanaka, "A practical bottleneck
  detection method", Winter Simulation Conference 2001): a station is active while none of its machines
  is starved, blocked or stopped by the calendar or a planned stop of the whole line (a stop of the station's own,
  its preventive maintenance, is active, as a repair is: the station holds the line up); a delay station is
  active while it is full and nothing is held at its exit. The station with the longest mean active period limits
  the line. A merge station is starved while any of its inputs is short.
- scrap: ``scrapped`` counts the pieces scrapped in the window, each in its own station's unit; ``scrap_rate`` is in
  units the line ships: a piece scrapped before a merge counts as its share of what one unit made there takes (an
  anode sheet set of a cell made of one anode and one cathode set counts half a cell), through every merge after
  it. So ``1 - scrap_rate`` is the line's yield whether it is a chain or a tree.
- WIP and releases: ``started`` counts the units the line's supply released in the window, summed over every
  branch start (on a line with anode and cathode branches, both electrodes' units). WIP counts pieces of material
  in the line, each in its own station's unit: a unit waiting before a merge counts as one, as does the unit a
  merge station makes of several of them; the inputs a merge station has taken count as inputs until the unit it
  makes of them is finished (then its ``per_unit`` inputs become one unit).
- lead time: on a serial line, Little's law: mean WIP over the exit rate (good units shipped plus units
  scrapped). On a line with merges the time a unit of the longest branch spends from its release to shipping:
  the longest, over the paths from a branch start to the end, of the sum of Little's law over each *stretch* of
  the path (the stations from a branch start or a merge up to the next merge or the end): the stretch's mean
  units over the rate units leave it (taken by the merge, shipped or scrapped); a stretch holds a unit from the
  completion at its first station on. The time before that, in a branch start's own machines, is added to every
  path as one figure, Little's law over the units in the machines of all branch starts (WIP less the stretches'
  units) and their completions: the events do not say which branch start released a unit.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twin.events import (
    BufferLevel,
    Event,
    MachineState,
    StateChanged,
    StoreOccupancy,
    UnitsCompleted,
    UnitsReleased,
)
from twin.schema import Line
from twin.snapshot import LineSnapshot, StationSnapshot

if TYPE_CHECKING:
    from twin.engine import Engine

__all__ = ["ActivePeriods", "BufferKpis", "KpiReducer", "RunKpis", "StationKpis", "bottleneck_shares", "initial_wip"]

_STATE_KEYS = {s: s.value.lower() for s in MachineState}
WORKING, DOWN, PLANNED_STOP = MachineState.WORKING, MachineState.DOWN, MachineState.PLANNED_STOP
_WAITING = (MachineState.STARVED, MachineState.BLOCKED)


@dataclass(frozen=True)
class StationKpis:
    """One station's KPIs over a window."""

    state_fractions: dict[str, float]
    throughput_per_hour: float
    good: int
    scrapped: int
    availability: float
    performance: float
    quality: float
    oee: float
    active_period_mean_h: float


@dataclass(frozen=True)
class BufferKpis:
    """One buffer's KPIs over a window."""

    mean_level: float
    capacity: int | None


@dataclass(frozen=True)
class RunKpis:
    """A run's KPIs over the window ``[start_h, end_h]``."""

    start_h: float
    end_h: float
    throughput_per_hour: float
    good: int
    scrapped: int
    started: int
    scrap_rate: float
    wip_mean: float
    lead_time_mean_h: float
    bottleneck: str
    stations: dict[str, StationKpis] = field(default_factory=dict)
    buffers: dict[str, BufferKpis] = field(default_factory=dict)
    bottleneck_shares: dict[str, float] = field(default_factory=dict)
    """Per station, the share of the window it was the momentary bottleneck (:func:`bottleneck_shares`; empty unless
    asked for: ``KpiReducer.result(shares=True)``)."""
    active_periods: int = 0
    """How many active periods (of all stations) the bottleneck is judged from: the method needs many."""


def bottleneck_shares(periods: dict[str, list[tuple[float, float]]], start_h: float, end_h: float) -> dict[str, float]:
    """Per station, the share of ``[start_h, end_h]`` it was the line's momentary bottleneck, by the shifting-bottleneck
    method (Roser, Nakano and Tanaka, "Shifting bottleneck detection", Winter Simulation Conference 2002): at each
    moment the station in the longest active period then is the bottleneck (where the periods of two stations
    overlap, the bottleneck is shifting from one to the other: the moment goes to the longer). Moments when no
    station is active belong to none, so the shares add up to at most 1."""
    spans = sorted((a, b, sid) for sid, ps in periods.items() for a, b in ps if b > a)
    cuts = sorted({start_h, end_h, *(a for a, _, _ in spans), *(b for _, b, _ in spans)})
    held = dict.fromkeys(periods, 0.0)
    longest: list[tuple[float, float, str]] = []  # (-length, end, station): the longest active period first
    i = 0
    for t0, t1 in itertools.pairwise(cuts):
        if t0 >= end_h:
            break
        while i < len(spans) and spans[i][0] <= t0:
            a, b, sid = spans[i]
            heapq.heappush(longest, (a - b, b, sid))
            i += 1
        while longest and longest[0][1] <= t0:
            heapq.heappop(longest)  # ended: the next longest, if still active, takes over
        if longest and t1 > start_h:
            held[longest[0][2]] += min(t1, end_h) - max(t0, start_h)
    span = end_h - start_h
    return {sid: h / span for sid, h in held.items()}


def _scrap_weights(line: Line) -> dict[str, float]:
    """Per station, the units the line ships that one piece scrapped there stands for (module docstring, scrap)."""
    inputs = line.inputs
    weights: dict[str, float] = {}
    for sid in (s.id for s in line.stations):
        w = 1.0
        for down in line.path_to_end(sid)[1:]:
            pieces = sum(inp.per_unit for inp in inputs[down])
            if pieces > 1:
                w /= pieces
        weights[sid] = w
    return weights


def initial_wip(snapshot: LineSnapshot | None, line: Line | None = None) -> int:
    """Units in the line in a starting state (buffers, machines and stores). Given ``line``, the pieces of material
    as the WIP counts them (module docstring): a merge machine working on units counts the inputs it took (its
    ``per_unit`` of each input per unit), as a live state starting from the snapshot must; the KPI reducer adds
    those itself (:meth:`KpiReducer.seed_buffers`)."""
    if snapshot is None:
        return 0
    total = sum(snapshot.buffers.values()) + snapshot.arrivals_queued
    for st in snapshot.stations.values():
        total += sum(m.units for m in st.machines) + sum(lot.units for lot in st.lots)
    if line is not None:
        for sid, ins in line.inputs.items():
            extra = sum(inp.per_unit for inp in ins) - 1
            snap = snapshot.stations.get(sid)
            if extra > 0 and snap is not None:
                total += extra * sum(m.units for m in snap.machines if not (m.finished or m.state is MachineState.BLOCKED))
    return total


class _Integral:
    """The time integral of a step function, clipped to a window."""

    __slots__ = ("area", "since", "value", "w0", "w1")

    def __init__(self, value: float, since: float, w0: float, w1: float) -> None:
        self.value, self.since, self.area, self.w0, self.w1 = value, since, 0.0, w0, w1

    def step(self, t: float, value: float) -> None:
        a = self.since if self.since > self.w0 else self.w0
        b = t if t < self.w1 else self.w1
        if b > a:
            self.area += self.value * (b - a)
        self.value, self.since = value, t

    def area_to(self, t: float) -> float:
        """The area up to ``t`` (clipped to the window), without stepping: the same arithmetic as :meth:`step`."""
        a = self.since if self.since > self.w0 else self.w0
        b = t if t < self.w1 else self.w1
        return self.area + self.value * (b - a) if b > a else self.area

    def carry(self, other: _Integral) -> None:
        """Continue ``other``'s step function (its value and since when) into this window."""
        self.value, self.since = other.value, other.since


class _Station:
    __slots__ = (
        "active",
        "active_since",
        "capacity",
        "credit",
        "durations",
        "faulted",
        "good",
        "id",
        "idle",
        "is_store",
        "job",
        "known",
        "last_state",
        "lost",
        "machines",
        "merges",
        "occupancy",
        "own_stops",
        "per_unit",
        "periods",
        "positions",
        "scrap",
        "since",
        "waiting",
        "wmark",
        "work_all",
        "work_in",
    )

    def __init__(self, sid: str, machines: int, per_unit: float, job: int, is_store: bool, capacity: int) -> None:
        self.id = sid
        self.machines = machines
        self.merges = 0
        """Pieces a unit made here takes from its inputs, less one (0 but for merge stations and ``per_unit`` > 1)."""
        self.own_stops: frozenset[str] = frozenset()
        """The names of the station's own planned stops: while in one a machine is active (module docstring)."""
        self.idle = [True] * machines  # per machine: whether it counts as not active (a machine not yet reported does)
        # a store's faults: positions each failure mode takes out of use, which are faulted now, how many are out
        self.positions: list[int] = []
        self.faulted: list[bool] = []
        self.lost = 0
        self.occupancy = 0
        self.per_unit = per_unit
        """Ideal machine-hours per unit (a store: none; its work is its dwelling)."""
        self.job = job
        """Units a machine works on at once (its batch or lot)."""
        self.is_store = is_store
        self.capacity = capacity
        self.last_state: list[MachineState | None] = [None] * machines
        self.since = [0.0] * machines
        # The work on each machine's current job: working hours since the job began (``work_all``), the part of them
        # inside the window (``work_in``), counted up to ``wmark``; ``known``: whether the job's start was seen.
        self.work_all = [0.0] * machines
        self.work_in = [0.0] * machines
        self.wmark = [0.0] * machines
        self.known = [False] * machines
        self.credit = 0.0
        """Ideal machine-hours of the jobs finished in the window, for the part of their work inside it."""
        self.durations: dict[MachineState, float] = dict.fromkeys(MachineState, 0.0)
        self.waiting = machines  # machines not known to be active
        self.active = False
        self.active_since = 0.0
        self.periods: list[tuple[float, float]] = []
        """The station's active periods in the window, clipped to it: (start, end)."""
        self.good = 0
        self.scrap = 0


def _activity(st: _Station, t: float, active: bool, w0: float, w1: float) -> None:
    """The station becomes ``active`` (or not) at ``t``: an active period that ends is kept, clipped to the window."""
    if active == st.active:
        return
    if st.active:
        a = st.active_since if st.active_since > w0 else w0
        b = t if t < w1 else w1
        if b > a:
            st.periods.append((a, b))
    st.active = active
    st.active_since = t


def _stations(line: Line) -> dict[str, _Station]:
    out: dict[str, _Station] = {}
    inputs = line.inputs
    for s in line.stations:
        if s.kind == "delay":
            assert s.capacity is not None
            st = _Station(s.id, 1, 0.0, 1, True, s.capacity)
            st.positions = [f.positions or s.capacity for f in s.failures]
            st.faulted = [False] * len(s.failures)
        else:
            assert s.cycle_time is not None and not isinstance(s.cycle_time, int | float)
            per_unit = s.cycle_time.mean_value / (s.batch_size or 1)
            st = _Station(s.id, s.machines, per_unit, s.batch_size or s.lot, False, 0)
            # a stop named by the station and by the line is the station's own (its planned stops come first)
            st.own_stops = frozenset(ps.name for ps in s.planned_stops)
        ins = inputs[s.id]
        st.merges = max(sum(inp.per_unit for inp in ins) - 1, 0)
        out[s.id] = st
    return out


def _store_down(st: _Station) -> int:
    """The positions of a store out of use for its faults and holding no unit."""
    room = st.capacity - st.occupancy
    return st.lost if st.lost < room else max(room, 0)


def _mean_period(periods: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in periods) / len(periods) if periods else 0.0


class ActivePeriods:
    """The bottleneck over ``[start_h, end_h]`` by the average active period method, exactly as
    :class:`KpiReducer` judges it, from the machine states and store reports alone: for runs that need nothing
    else of the KPIs (a forecast's replications), at a fraction of the reducer's cost."""

    def __init__(self, line: Line, start_h: float, end_h: float) -> None:
        if end_h <= start_h:
            raise ValueError(f"the window must have end_h > start_h, got [{start_h}, {end_h}]")
        self.w0, self.w1 = start_h, end_h
        self._st = _stations(line)

    def attach(self, engine: Engine) -> None:
        """Take ``engine``'s machine states and store reports as fields."""
        engine.subscribe_fields(StateChanged, self._on_state)
        engine.subscribe_fields(StoreOccupancy, self._on_store)

    def _on_state(self, t: float, station: str, machine: int, state: MachineState, reason: str) -> None:
        st = self._st[station]
        if st.is_store:
            return  # a store fault: the store's activity comes from its occupancy reports
        st.last_state[machine] = state
        was_waiting = st.idle[machine]
        now_waiting = state in _WAITING or (state is PLANNED_STOP and reason not in st.own_stops)
        if was_waiting != now_waiting:
            st.idle[machine] = now_waiting
            st.waiting += 1 if now_waiting else -1
            _activity(st, t, st.waiting == 0, self.w0, self.w1)

    def _on_store(self, t: float, station: str, dwelling: int, held: int, intake_blocked: bool) -> None:
        _activity(self._st[station], t, intake_blocked and held == 0, self.w0, self.w1)

    def means(self) -> dict[str, float]:
        """Per station, its mean active period in the window, hours (the periods under way end at its end)."""
        means = {}
        for sid, st in self._st.items():
            periods = list(st.periods)
            if st.active:
                a = st.active_since if st.active_since > self.w0 else self.w0
                if self.w1 > a:
                    periods.append((a, self.w1))
            means[sid] = _mean_period(periods)
        return means

    def bottleneck(self) -> str:
        """The station with the longest mean active period in the window."""
        means = self.means()
        return max(means, key=lambda k: means[k])


class _Stretches:
    """A line with merges cut into stretches (module docstring, lead time): the stations from a branch start or a
    merge (any station whose units are not one-for-one its single input's) up to the next such station, and how
    each station's completions move units into and out of them."""

    def __init__(self, line: Line) -> None:
        inputs = line.inputs
        self.of: dict[str, int] = {}
        self.first: list[str] = []
        for s in line.stations:
            ins = inputs[s.id]
            if len(ins) == 1 and ins[0].per_unit == 1:
                self.of[s.id] = self.of[ins[0].station]
            else:
                self.of[s.id] = len(self.first)
                self.first.append(s.id)
        last = line.stations[-1].id
        # per station: (stretch, units in per good, per scrap, units out per good, per scrap) of its completions
        moves: dict[str, dict[int, list[int]]] = {s.id: {} for s in line.stations}
        for s in line.stations:
            sid, g = s.id, self.of[s.id]
            mine = moves[sid].setdefault(g, [0, 0, 0, 0])
            if self.first[g] == sid:
                mine[0] += 1  # its good units enter the stretch (its scrap never did)
            else:
                mine[1] -= 1  # its scrap leaves the stretch
                mine[3] += 1
            if sid == last:
                mine[0] -= 1  # shipped
                mine[2] += 1
            if self.first[g] == sid:
                for inp in inputs[sid]:  # a merge: each unit made takes per_unit of each input from its stretch
                    theirs = moves[sid].setdefault(self.of[inp.station], [0, 0, 0, 0])
                    theirs[0] -= inp.per_unit
                    theirs[1] -= inp.per_unit
                    theirs[2] += inp.per_unit
                    theirs[3] += inp.per_unit
        self.moves: dict[str, list[tuple[int, int, int, int, int]]] = {
            sid: [(g, m[0], m[1], m[2], m[3]) for g, m in per.items() if any(m)] for sid, per in moves.items()
        }
        # the paths from each branch start to the end, as the stretches they pass
        self.paths: list[list[int]] = []
        for b in line.branch_starts:
            path: list[int] = []
            for sid in line.path_to_end(b):
                if not path or path[-1] != self.of[sid]:
                    path.append(self.of[sid])
            self.paths.append(path)
        self._starts = set(self.first)
        self._inputs = inputs
        self.branch = frozenset(line.branch_starts)

    def seed(self, sid: str, snap: StationSnapshot, units: list[float]) -> None:
        """Add what station ``sid`` holds in a snapshot to its stretch's units (or, for a merge's machines working,
        to its inputs' stretches); a branch start's machines at work hold units no stretch has yet."""
        g = self.of[sid]
        starts = sid in self._starts
        units[g] += sum(lot.units for lot in snap.lots) if not (starts and sid in self.branch) else 0
        for m in snap.machines:
            if m.finished or m.state is MachineState.BLOCKED:
                units[g] += m.units  # completed: in its stretch already
            elif not starts:
                units[g] += m.units
            elif sid not in self.branch:
                for inp in self._inputs[sid]:
                    units[self.of[inp.station]] += inp.per_unit * m.units

    def lead_time(self, areas: list[float], exits: list[int], wip_area: float, started_exits: int) -> float:
        """The longest path's sum of Little's law over its stretches, plus the time in the branch starts' machines
        (NaN if a stretch or the branch starts let no unit go): ``areas`` are unit-hours in the window."""
        if started_exits == 0 or any(n == 0 for n in exits):
            return float("nan")
        before = max(wip_area - math.fsum(areas), 0.0) / started_exits
        return before + max(math.fsum(areas[g] / exits[g] for g in path) for path in self.paths)


class KpiReducer:
    """Folds events into KPIs over the window ``[start_h, end_h]``; call it with each event, then :meth:`result`.

    ``begin_h`` is when the event stream begins and ``wip0`` how many units the line held then.
    """

    def __init__(self, line: Line, start_h: float, end_h: float, begin_h: float = 0.0, wip0: int = 0) -> None:
        if end_h <= start_h:
            raise ValueError(f"the KPI window must have end_h > start_h, got [{start_h}, {end_h}]")
        self.line = line
        self.w0, self.w1 = start_h, end_h
        self.first = line.stations[0].id
        self.last = line.stations[-1].id
        self._st = _stations(line)
        self._buffers = {s.id: _Integral(0.0, begin_h, start_h, end_h) for s in line.stations[:-1]}
        self._dwell = {s.id: _Integral(0.0, begin_h, start_h, end_h) for s in line.stations if s.kind == "delay"}
        self._held = {s.id: _Integral(0.0, begin_h, start_h, end_h) for s in line.stations if s.kind == "delay"}
        self._wip = _Integral(float(wip0), begin_h, start_h, end_h)
        self._store_down = {
            s.id: _Integral(0.0, begin_h, start_h, end_h) for s in line.stations if s.kind == "delay" and s.failures
        }
        self.started = 0
        self.shipped = 0
        self.scrapped = 0
        self._scrapped_shipped_units = 0.0
        self._scrap_weight = _scrap_weights(line)
        self.time = begin_h
        self._stretches = _Stretches(line) if any(st.merges for st in self._st.values()) else None
        self._stretch_units = [_Integral(0.0, begin_h, start_h, end_h) for _ in self._stretches.first] if self._stretches else []
        self._stretch_exits = [0] * len(self._stretch_units)
        self._started_exits = 0  # units finished by branch starts in the window (lines with merges)
        # field handlers by event type: the engine calls them with an event's fields (no event objects)
        self._dispatch: dict[type, Callable[..., None]] = {
            StateChanged: self._on_state,
            BufferLevel: self._on_buffer,
            UnitsCompleted: self._on_completed if self._stretches is None else self._on_completed_stretches,
            StoreOccupancy: self._on_store,
            UnitsReleased: self._on_released,
        }

    def seed_buffers(self, snapshot: LineSnapshot | None) -> None:
        """Start from a snapshot what its events will not tell: buffer levels (a buffer emits no event until it
        changes) and, on lines with merges, where its units are (the inputs a merge machine is working on count as
        inputs: ``wip0`` from :func:`initial_wip` counts them as the units they become)."""
        if snapshot is None:
            return
        for sid, level in snapshot.buffers.items():
            self._buffers[sid].value = float(level)
        stretches = self._stretches
        units = [0.0] * len(self._stretch_units)
        for sid, snap in snapshot.stations.items():
            st = self._st[sid]
            for m in snap.machines:
                finished = m.finished or m.state is MachineState.BLOCKED
                if st.merges and not finished:
                    self._wip.value += st.merges * m.units
            if stretches is not None:
                stretches.seed(sid, snap, units)
        if stretches is not None:
            for sid, level in snapshot.buffers.items():
                units[stretches.of[sid]] += level
            for g, u in enumerate(units):
                self._stretch_units[g].value = u

    def _scrap_rate(self) -> float:
        lost = self._scrapped_shipped_units
        return lost / (self.shipped + lost) if self.shipped + lost else 0.0

    def buffer_level(self, station: str) -> tuple[float, float]:
        """The buffer after ``station`` as the events taken so far left it: since when, and its level."""
        b = self._buffers[station]
        return b.since, b.value

    def fork(self, start_h: float, end_h: float) -> KpiReducer:
        """A reducer over the window ``[start_h, end_h]`` that starts from this one's line state (machine states,
        activity, buffer and store levels, WIP) as if it had taken the same events; its own counts start at zero.

        Equal to a reducer fed every event from the beginning, provided ``start_h`` is not before the events
        taken so far (units counted at ``start_h`` by an event already taken would be missed). The live state
        forks its checkpoints into windows this way instead of replaying from the beginning.
        """
        if start_h < self.time:
            raise ValueError(f"cannot fork a window starting at {start_h} h from a reducer already at {self.time} h")
        new = KpiReducer(self.line, start_h, end_h, begin_h=self.time)
        for sid, st in self._st.items():
            to = new._st[sid]
            to.last_state = list(st.last_state)
            to.since = list(st.since)
            to.work_all, to.wmark, to.known = list(st.work_all), list(st.wmark), list(st.known)
            to.waiting, to.active, to.active_since = st.waiting, st.active, st.active_since
            to.idle = list(st.idle)
            to.faulted, to.lost, to.occupancy = list(st.faulted), st.lost, st.occupancy
        for mine, theirs in (
            (self._buffers, new._buffers),
            (self._dwell, new._dwell),
            (self._held, new._held),
            (self._store_down, new._store_down),
        ):
            for sid, integral in mine.items():
                theirs[sid].carry(integral)
        new._wip.carry(self._wip)
        for g, integral in enumerate(self._stretch_units):
            new._stretch_units[g].carry(integral)
        return new

    # -- events ---------------------------------------------------------------------------------------------
    KINDS: tuple[type, ...] = (StateChanged, BufferLevel, UnitsCompleted, StoreOccupancy, UnitsReleased)
    """The event types the KPIs need."""

    def attach(self, engine: Engine) -> None:
        """Take ``engine``'s events straight into the handler of each type, as fields (no event objects, no
        dispatch; the engine emits in time order by construction, so the check of :meth:`__call__` is not repeated)."""
        for kind in self.KINDS:
            engine.subscribe_fields(kind, self._dispatch[kind])

    def __call__(self, ev: Event) -> None:
        """Take one event of any type, refusing one older than the last (telemetry must be put in order first)."""
        t = ev.t
        if t < self.time:
            raise ValueError(f"event at t={t} h arrived after t={self.time} h: {ev!r}")
        self.time = t
        handler = self._dispatch.get(type(ev))
        if handler is not None:
            handler(*ev)

    # Field handlers: the engine calls them for every event of a run, with the event's fields in order.
    def _on_state(self, t: float, station: str, machine: int, state: MachineState, reason: str) -> None:
        st = self._st[station]
        if st.is_store:
            self._store_fault(st, machine, t, state)
        else:
            self._state(st, machine, t, state, reason)

    def _store_fault(self, st: _Station, j: int, t: float, state: MachineState) -> None:
        """Failure mode ``j`` of store ``st`` faulted (DOWN) or was repaired (any other state) at ``t``."""
        if not 0 <= j < len(st.faulted):
            raise IndexError(f"store {st.id!r} has {len(st.faulted)} failure mode(s): no mode {j}")
        down = state is DOWN
        if st.faulted[j] == down:
            return  # a repeated report
        st.faulted[j] = down
        st.lost += st.positions[j] if down else -st.positions[j]
        self._store_down[st.id].step(t, _store_down(st))

    def _on_buffer(self, t: float, station: str, level: int) -> None:
        # _Integral.step, inlined: a buffer level changes with most units moved
        b = self._buffers[station]
        w0 = self.w0
        a = b.since if b.since > w0 else w0
        w1 = self.w1
        end = t if t < w1 else w1
        if end > a:
            b.area += b.value * (end - a)
        b.value = level
        b.since = t

    def _on_completed(self, t: float, station: str, machine: int, good: int, scrap: int) -> None:
        last = station == self.last
        gone = scrap + good if last else scrap
        st = self._st[station]
        if st.merges:
            gone += st.merges * (good + scrap)  # the inputs of the units made become those units
        if gone:
            wip = self._wip
            wip.step(t, wip.value - gone)
        if not st.is_store:
            self._job_done(st, machine, t, good + scrap)
        if self.w0 <= t <= self.w1:
            st.good += good
            st.scrap += scrap
            if scrap:
                self.scrapped += scrap
                self._scrapped_shipped_units += scrap * self._scrap_weight[station]
            if last:
                self.shipped += good

    def _on_completed_stretches(self, t: float, station: str, machine: int, good: int, scrap: int) -> None:
        """:meth:`_on_completed`, and the units entering and leaving the stretches of a line with merges."""
        self._on_completed(t, station, machine, good, scrap)
        inside = self.w0 <= t <= self.w1
        stretches = self._stretches
        assert stretches is not None
        if inside and station in stretches.branch:
            self._started_exits += good + scrap
        for g, in_good, in_scrap, out_good, out_scrap in stretches.moves[station]:
            units = self._stretch_units[g]
            units.step(t, units.value + in_good * good + in_scrap * scrap)
            if inside:
                self._stretch_exits[g] += out_good * good + out_scrap * scrap

    def _on_released(self, t: float, units: int) -> None:
        self._wip.step(t, self._wip.value + units)
        if self.w0 <= t <= self.w1:
            self.started += units

    def _on_store(self, t: float, station: str, dwelling: int, held: int, intake_blocked: bool) -> None:
        self._dwell[station].step(t, dwelling)
        self._held[station].step(t, held)
        st = self._st[station]
        st.occupancy = dwelling + held
        if st.lost:
            self._store_down[station].step(t, _store_down(st))
        elif st.faulted:
            down = self._store_down[station]
            if down.value:
                down.step(t, 0.0)
        self._activity(st, t, intake_blocked and held == 0)

    def _work(self, st: _Station, m: int, t: float) -> None:
        """Book machine ``m``'s working time from its mark to ``t`` on its current job."""
        a = st.wmark[m]
        if t > a:
            st.work_all[m] += t - a
            lo = a if a > self.w0 else self.w0
            hi = t if t < self.w1 else self.w1
            if hi > lo:
                st.work_in[m] += hi - lo
        st.wmark[m] = t

    def _job_done(self, st: _Station, m: int, t: float, units: int) -> None:
        """Machine ``m`` finished a job of ``units``: the window earns their ideal time in the share of the job's work
        done inside it (work before a start that was not seen is unknown: then no more than the work inside)."""
        # _work inlined: this runs for every job the engine finishes
        total, inside = st.work_all[m], st.work_in[m]
        if st.last_state[m] is WORKING:
            a = st.wmark[m]
            if t > a:
                total += t - a
                w0, w1 = self.w0, self.w1
                lo = a if a > w0 else w0
                hi = t if t < w1 else w1
                if hi > lo:
                    inside += hi - lo
        if inside > 0:
            earned = st.per_unit * units * inside / total
            st.credit += earned if st.known[m] else min(earned, inside)
            st.work_in[m] = 0.0
        st.work_all[m] = 0.0
        st.wmark[m] = t
        st.known[m] = True

    def _state(self, st: _Station, m: int, t: float, state: MachineState, reason: str) -> None:
        prev = st.last_state[m]
        if prev is WORKING:
            self._work(st, m, t)
        elif state is WORKING:
            st.wmark[m] = t
            if prev is MachineState.STARVED:
                st.known[m] = True  # an idle machine begins a new job
        if prev is not None:
            a = st.since[m] if st.since[m] > self.w0 else self.w0
            b = t if t < self.w1 else self.w1
            if b > a:
                st.durations[prev] += b - a
        st.last_state[m] = state
        st.since[m] = t
        was_waiting = st.idle[m]
        now_waiting = state in _WAITING or (state is PLANNED_STOP and reason not in st.own_stops)
        if was_waiting != now_waiting:
            st.idle[m] = now_waiting
            st.waiting += 1 if now_waiting else -1
            self._activity(st, t, st.waiting == 0)

    def _activity(self, st: _Station, t: float, active: bool) -> None:
        _activity(st, t, active, self.w0, self.w1)

    # -- results --------------------------------------------------------------------------------------------
    def _in_progress(self, st: _Station, w1: float) -> float:
        """Ideal machine-hours of the jobs still under way at ``w1``, for their work inside the window: that work, but
        no more than what is left of the job's ideal time."""
        total = 0.0
        for m, state in enumerate(st.last_state):
            inside, before = st.work_in[m], st.work_all[m] - st.work_in[m]
            if state is WORKING:
                lo = st.wmark[m] if st.wmark[m] > self.w0 else self.w0
                if w1 > lo:
                    inside += w1 - lo
            if inside > 0:
                left = st.per_unit * st.job - (before if st.known[m] else 0.0)
                total += min(inside, left) if left > 0 else 0.0
        return total

    @staticmethod
    def _station_kpis(
        st: _Station,
        fractions: dict[str, float],
        whole: float,
        effective: float,
        quality: float,
        span: float,
        periods: list[tuple[float, float]],
    ) -> StationKpis:
        """ISO 22400's split of the work done in ``whole`` machine-hours (a store: position-hours): over the planned
        busy time (those not in a planned stop), availability = the share neither down nor in setup, performance =
        the ideal time of the work done (``effective``) over the time available, quality = good over finished; OEE =
        their product = effective x quality / planned busy time."""
        planned = whole * (1.0 - fractions.get("planned_stop", 0.0))
        if planned <= 1e-12 * whole:  # a window spent wholly in a planned stop: nothing was asked of the station
            availability = performance = oee = float("nan")
        else:
            available = planned - whole * (fractions["down"] + fractions.get("setup", 0.0))
            availability = max(0.0, available) / planned
            performance = effective / available if available > 0 else 0.0
            oee = effective * quality / planned
        return StationKpis(
            state_fractions=fractions,
            throughput_per_hour=st.good / span,
            good=st.good,
            scrapped=st.scrap,
            availability=availability,
            performance=performance,
            quality=quality,
            oee=oee,
            active_period_mean_h=_mean_period(periods),
        )

    def result(self, until: float | None = None, shares: bool = False) -> RunKpis:
        """The KPIs over the window, or over ``[start_h, until]`` when ``until`` is before its end; with ``shares``, each
        station's share of it as the bottleneck too (a sweep over every active period: for window queries, not for
        every publication of the live state).

        The event stream must have reached the window's end (or ``until``) and not gone past it; the state
        since the last event is taken to hold until then. The reducer is not changed: it can take more events
        and give results again.
        """
        w0 = self.w0
        w1 = self.w1 if until is None or until > self.w1 else until
        if w1 <= w0:
            raise ValueError(f"the KPI window must have end_h > start_h, got [{w0}, {w1}]")
        if until is not None and until < self.time:
            raise ValueError(f"the events have passed t={until} h (at t={self.time} h): its counts would include later events")
        span = w1 - w0
        stations: dict[str, StationKpis] = {}
        all_periods: dict[str, list[tuple[float, float]]] = {}
        for sid, st in self._st.items():
            if st.is_store:
                working = self._dwell[sid].area_to(w1) / (st.capacity * span)
                blocked = self._held[sid].area_to(w1) / (st.capacity * span)
                down_area = self._store_down[sid].area_to(w1) if sid in self._store_down else 0.0
                down = down_area / (st.capacity * span)
                fractions = {
                    "working": working,
                    "starved": max(0.0, 1.0 - working - blocked - down),
                    "blocked": blocked,
                    "down": down,
                }
            else:
                durations = dict(st.durations)
                for m, state in enumerate(st.last_state):
                    if state is not None:
                        a = st.since[m] if st.since[m] > w0 else w0
                        if w1 > a:
                            durations[state] += w1 - a
                total = st.machines * span
                fractions = {"working": 0.0, "starved": 0.0, "blocked": 0.0, "down": 0.0}
                for state, d in durations.items():
                    if d > 0 or _STATE_KEYS[state] in fractions:
                        fractions[_STATE_KEYS[state]] = d / total
            periods = list(st.periods)
            if st.active:
                a = st.active_since if st.active_since > w0 else w0
                if w1 > a:
                    periods.append((a, w1))
            done = st.good + st.scrap
            quality = st.good / done if done else 1.0
            if st.is_store:
                # a store's work is its dwelling: the unit-hours of units in their dwell, out of its positions
                whole = st.capacity * span
                effective = fractions["working"] * whole
            else:
                whole = st.machines * span
                effective = st.credit + self._in_progress(st, w1)
            stations[sid] = self._station_kpis(st, fractions, whole, effective, quality, span, periods)
            all_periods[sid] = periods
        buffers = {}
        for s in self.line.stations[:-1]:
            buffers[s.id] = BufferKpis(mean_level=self._buffers[s.id].area_to(w1) / span, capacity=s.buffer_after)
        wip_mean = self._wip.area_to(w1) / span
        exits = self.shipped + self.scrapped
        if self._stretches is None:
            lead_time = wip_mean * span / exits if exits else float("nan")
        else:
            areas = [u.area_to(w1) for u in self._stretch_units]
            lead_time = self._stretches.lead_time(areas, self._stretch_exits, wip_mean * span, self._started_exits)
        bottleneck = max(stations, key=lambda k: stations[k].active_period_mean_h)
        return RunKpis(
            start_h=w0,
            end_h=w1,
            throughput_per_hour=self.shipped / span,
            good=self.shipped,
            scrapped=self.scrapped,
            started=self.started,
            scrap_rate=self._scrap_rate(),
            wip_mean=wip_mean,
            lead_time_mean_h=lead_time,
            bottleneck=bottleneck,
            stations=stations,
            buffers=buffers,
            bottleneck_shares=bottleneck_shares(all_periods, w0, w1) if shares else {},
            active_periods=sum(len(p) for p in all_periods.values()),
        )
