"""The live state of a line, rebuilt from its events alone (the same events, simulated or from the plant).

:class:`LiveLine` takes every event of the vocabulary (``twin.events``) and answers what a plant engineer's
dashboard asks: what each station and machine is doing now and since when, the counts, buffer and store
levels, the latest process values, the output of the current shift against plan (:meth:`LiveLine.status`),
and the KPIs over any window of its retained history (:meth:`LiveLine.kpis`, :meth:`LiveLine.shift_kpis`),
and its state events, for the stop analyses of ``twin.stops`` (:meth:`LiveLine.state_events`).

Clocks. Times are float hours: the run's clock for the engine, hours since the Unix epoch (UTC) for plant
telemetry (``t = ts_ms / 3_600_000``). Shifts are consecutive blocks of ``shift_hours`` aligned at
``shift_origin_h`` (06:00, 14:00 and 22:00 UTC for 8-hour shifts with origin 6 on an epoch clock; on an
engine clock starting at 0, the first shift is ``[-2, 6)``).

One reducer. The KPIs are those of ``twin.kpis.KpiReducer``, fed the retained events in time order, so
``kpis(w0, w1)`` equals a reducer attached to the engine for that window exactly. The history keeps the
KPI events (not ``UnitsLoaded`` or ``ProcessValue``) of the last ``history_h`` hours (up to an eighth more,
as it is cut in steps) and a checkpoint reducer holding the line's state at its start, which every window
forks from; a second reducer follows the current shift, fed lazily, so "this shift so far" costs only the
events since it was last asked.

Taking an event in time order costs O(1) (a few list and dict updates, no validation models); a late one
costs a bisect and a list insert. Late events (older than the clock) are placed into the history by their
time, so window KPIs include them; they update a machine's, buffer's, store's or signal's current value only
if they are newer than it, and the counts always. A machine's "since" is when its current state began: a
repeated report (a heartbeat) keeps it, and a late report that falls inside the current state moves it (found
again from the history). Events at the same instant keep their order of arrival. Events older than the
retained history are counted in ``dropped_events`` and otherwise ignored. A late event older than the shift
reducer's progress makes it replay from the checkpoint at the next query.

Plan. ``plan_per_hour`` defaults to the constraint's ideal rate (the station with the lowest
``Station.ideal_rate``, the first in flow order on ties) times the yield from it to the end, the product of
``1 - scrap`` over it and every station after it: the good output per hour of a line that loses nothing
but scrap. The plan so far in a shift is ``plan_per_hour`` times the hours since the shift began (or since
the live state began, if later).

Line OEE (:func:`line_oee`), over a window of length T:
- OEE = good units shipped x (1 / ideal rate of the constraint station) / T: the hours the constraint
  would need to make the shipped good units, over the hours available;
- quality = shipped / (shipped + every unit scrapped anywhere on the line);
- availability = the constraint station's availability (1 - its down fraction; 1 for a delay station);
- performance = OEE / (availability x quality): what is left, so starving and blocking of the constraint,
  slow cycles and batching count as performance losses. Upstream stations count cell equivalents, so
  quality mixes units where the line does; it is the line's overall yield as the events report it.
Per-station OEE and its losses are in ``RunKpis.stations``.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from twin.events import (
    BufferLevel,
    Event,
    MachineState,
    ProcessValue,
    StateChanged,
    StoreOccupancy,
    UnitsCompleted,
    UnitsLoaded,
    UnitsReleased,
)
from twin.kpis import KpiReducer, RunKpis
from twin.schema import Line, Station

__all__ = [
    "LineOee",
    "LineStatus",
    "LiveLine",
    "MachineStatus",
    "ProcessReading",
    "ShiftStatus",
    "StationStatus",
    "StoreStatus",
    "line_oee",
]

_time = itemgetter(0)
_KPI_EVENTS = (StateChanged, BufferLevel, UnitsCompleted, StoreOccupancy, UnitsReleased)
# When no machine of a station works, the summary names the most common idle state; ties go to the one a
# plant engineer must act on first.
_IDLE_ORDER = (MachineState.DOWN, MachineState.BLOCKED, MachineState.STARVED, MachineState.SETUP, MachineState.PLANNED_STOP)


# -- what the live line returns -------------------------------------------------------------------------------
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
    """A delay station now: units in their dwell, units ready but held at its exit, whether its intake waits for room."""

    dwelling: int
    held: int
    intake_blocked: bool
    capacity: int
    t: float


@dataclass(frozen=True)
class StationStatus:
    """One station now.

    ``state`` summarises it: WORKING while at least one machine works (the station produces; the machine
    counts and ``down_share`` tell how much capacity is lost), otherwise the most common state of its machines
    (ties: DOWN, BLOCKED, STARVED, SETUP, PLANNED_STOP), None while no machine has reported. A delay station is
    BLOCKED while it holds ready units at its exit, STARVED while empty, WORKING otherwise.
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


@dataclass(frozen=True)
class ShiftStatus:
    """The shift ``[start_h, end_h)``: good units shipped in it so far against the plan so far."""

    start_h: float
    end_h: float
    good: int
    plan: float


@dataclass(frozen=True)
class LineStatus:
    """The whole line at ``now_h``: its stations in flow order, the current shift, the counts and the clock.

    ``clock_h`` is the latest event time (None before the first event), ``history_start_h`` the start of the
    span :meth:`LiveLine.kpis` can cover and ``retained_events`` the events kept for it. ``good`` (shipped),
    ``scrapped`` and ``released`` count from the start of the live state; ``wip`` = ``wip0`` + released - scrapped
    - shipped. ``events`` counts every event taken, ``late_events`` those older than the clock when they came and
    ``dropped_events`` the late ones older than the retained history.
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


@dataclass(frozen=True)
class LineOee:
    """The line's OEE over a window and its split into availability, performance and quality (see the module docstring)."""

    constraint: str
    ideal_rate_per_hour: float
    availability: float
    performance: float
    quality: float
    oee: float


def _constraint(line: Line) -> tuple[int, Station]:
    return min(enumerate(line.stations), key=lambda pair: pair[1].ideal_rate)


def line_oee(line: Line, kpis: RunKpis) -> LineOee:
    """The line-level OEE of ``kpis`` (over its window), measured against the constraint station of ``line``."""
    _, constraint = _constraint(line)
    rate = constraint.ideal_rate
    oee = kpis.good / rate / (kpis.end_h - kpis.start_h)
    exits = kpis.good + kpis.scrapped
    quality = kpis.good / exits if exits else 1.0
    availability = kpis.stations[constraint.id].availability
    denom = availability * quality
    return LineOee(
        constraint=constraint.id,
        ideal_rate_per_hour=rate,
        availability=availability,
        performance=oee / denom if denom > 0 else 0.0,
        quality=quality,
        oee=oee,
    )


# -- the live line ---------------------------------------------------------------------------------------------
class _Live:
    """One station's current values: the latest event of each kind, and counts per machine."""

    __slots__ = ("good", "level", "machines", "scrap", "ships", "since", "spec", "store", "values")

    def __init__(self, spec: Station, ships: bool) -> None:
        n = spec.machines
        self.spec = spec
        self.ships = ships
        self.machines: list[StateChanged | None] = [None] * n  # each machine's latest report
        self.since = [math.nan] * n  # when its current state began: a repeated report (a heartbeat) keeps it
        self.good = [0] * n
        self.scrap = [0] * n
        self.level: BufferLevel | None = None
        self.store: StoreOccupancy | None = None
        self.values: dict[str, ProcessValue] = {}


class LiveLine:
    """The live state of ``line``, rebuilt from its events: call it with each event, ask :meth:`status` and :meth:`kpis`.

    ``begin_h`` is when the state begins (None: at the first event; earlier events are dropped) and ``wip0``
    the units in the line then. ``history_h`` (at least one shift) is how far back :meth:`kpis` can look.
    ``plan_per_hour`` defaults to the constraint's ideal rate times the yield from it to the end.
    """

    def __init__(
        self,
        line: Line,
        *,
        shift_hours: float = 8.0,
        shift_origin_h: float = 6.0,
        history_h: float = 48.0,
        plan_per_hour: float | None = None,
        begin_h: float | None = None,
        wip0: int = 0,
    ) -> None:
        if not shift_hours > 0:
            raise ValueError(f"shift_hours must be positive, got {shift_hours}")
        if not history_h >= shift_hours:
            raise ValueError(f"history_h ({history_h}) must cover at least one shift ({shift_hours} h)")
        if plan_per_hour is not None and plan_per_hour < 0:
            raise ValueError(f"plan_per_hour cannot be negative, got {plan_per_hour}")
        self.line = line
        self.shift_hours = shift_hours
        self.shift_origin_h = shift_origin_h
        self.history_h = history_h
        index, constraint = _constraint(line)
        self.constraint = constraint.id  # the station with the lowest ideal rate
        if plan_per_hour is None:
            plan_per_hour = constraint.ideal_rate * math.prod(1.0 - s.scrap for s in line.stations[index:])
        self.plan_per_hour = plan_per_hour
        self.wip0 = wip0
        last = line.stations[-1].id
        self._live = {s.id: _Live(s, s.id == last) for s in line.stations}
        # Per event kind, the stations an event may name: a bad event is refused before it reaches the history,
        # where it would break every later replay.
        self._process = {sid: st for sid, st in self._live.items() if st.spec.kind == "process"}
        self._stores = {sid: st for sid, st in self._live.items() if st.spec.kind == "delay"}
        self._buffered = {sid: st for sid, st in self._live.items() if not st.ships}
        self._on: dict[type, Callable[[Any], None]] = {
            StateChanged: self._on_state,
            UnitsCompleted: self._on_completed,
            BufferLevel: self._on_buffer,
            StoreOccupancy: self._on_store,
            UnitsReleased: self._on_released,
            UnitsLoaded: self._on_loaded,
            ProcessValue: self._on_value,
        }
        self._history: list[Event] = []
        self._base: KpiReducer | None = None  # the line's state at the history's start
        # The latest report of each machine and store among the events cut from the history (the checkpoint keeps
        # no reasons): what leads the state events of a window that starts before any report in the history.
        self._cut_states: dict[tuple[str, int], StateChanged] = {}
        self._cut_stores: dict[str, StoreOccupancy] = {}
        self._cursor: KpiReducer | None = None  # follows the current shift, fed history[:_cursor_pos]
        self._cursor_pos = 0
        self._begin = math.nan
        self._cut = math.nan  # the history's start: it holds every kept event at or after it
        # Until the first event the clock is +inf, so that the first event takes the slow path, which starts the
        # history at its time; with begin_h the history starts there and older events are dropped.
        self._clock = math.inf
        self._prune_at = math.inf
        self._events = 0
        self._late = 0
        self._dropped = 0
        self._released = 0
        self._shift_start = -math.inf  # the shift whose good output _shift_good counts (moved on by shipments)
        self._shift_end = -math.inf
        self._shift_good = 0
        if begin_h is not None:
            self._start(begin_h)

    def _start(self, t: float) -> None:
        self._begin = self._cut = self._clock = t
        # A window before the stream: the checkpoint only keeps the line's state, it accumulates nothing.
        self._base = KpiReducer(self.line, t - 2.0, t - 1.0, begin_h=t, wip0=self.wip0)
        self._prune_at = t + self.history_h * 1.125

    # -- events ----------------------------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        """Take one event of any kind; an event older than the clock is a late one (see the module docstring).

        Raises ``ValueError`` for an event naming a station, buffer, store or machine the line does not have.
        """
        t = event[0]
        if t < self._clock:
            self._take_late(event)
            return
        try:
            self._on[type(event)](event)
        except (KeyError, IndexError):
            raise self._refuse(event) from None
        self._clock = t
        self._events += 1
        if t >= self._prune_at:
            self._prune(t)

    def _refuse(self, event: object) -> ValueError:
        return ValueError(f"not an event of line {self.line.name!r} (unknown kind, station, buffer or machine): {event!r}")

    # In-order handlers: validate by looking up (KeyError, IndexError) before changing anything, unpack the tuple.
    def _on_state(self, ev: StateChanged) -> None:
        t, station, machine, state, reason = ev
        st = self._process[station]
        machines = st.machines
        if machine < 0:
            raise IndexError(machine)
        prev = machines[machine]
        if prev is None or prev[3] != state or prev[4] != reason:
            st.since[machine] = t
        machines[machine] = ev
        self._history.append(ev)

    def _on_completed(self, ev: UnitsCompleted) -> None:
        t, station, machine, good, scrap = ev
        st = self._live[station]
        if machine < 0:
            raise IndexError(machine)
        st.good[machine] += good
        st.scrap[machine] += scrap
        if st.ships:
            if t >= self._shift_end:
                self._next_shift(t)
            self._shift_good += good
        self._history.append(ev)

    def _on_buffer(self, ev: BufferLevel) -> None:
        self._buffered[ev[1]].level = ev
        self._history.append(ev)

    def _on_store(self, ev: StoreOccupancy) -> None:
        self._stores[ev[1]].store = ev
        self._history.append(ev)

    def _on_released(self, ev: UnitsReleased) -> None:
        self._released += ev[1]
        self._history.append(ev)

    def _on_loaded(self, ev: UnitsLoaded) -> None:
        # loads feed no state or KPI; the station is checked all the same
        if ev[1] not in self._live:
            raise KeyError(ev[1])

    def _on_value(self, ev: ProcessValue) -> None:
        self._live[ev[1]].values[ev[3]] = ev

    def _next_shift(self, t: float) -> None:
        self._shift_start, self._shift_end = self.shift_of(t)
        self._shift_good = 0

    def _take_late(self, ev: Event) -> None:
        t = ev[0]
        if self._base is None:
            self._start(t)
            self(ev)
            return
        if t < self._cut:
            self._events += 1
            self._late += 1
            self._dropped += 1
            return
        try:
            self._apply_late(ev)
        except (KeyError, IndexError):
            raise self._refuse(ev) from None
        self._events += 1
        self._late += 1
        if isinstance(ev, _KPI_EVENTS):
            history = self._history
            i = bisect_right(history, t, key=_time)
            history.insert(i, ev)
            if i < self._cursor_pos:
                self._cursor = None  # it has taken events after this one: replay from the checkpoint when asked
            if isinstance(ev, StateChanged):
                self._late_state(ev)

    def _apply_late(self, ev: Event) -> None:
        # Current values change only if the late event is newer than them; counts change whatever its time.
        t = ev[0]
        if isinstance(ev, StateChanged):
            # only checked here: _late_state applies it once it is in the history
            if not 0 <= ev.machine < self._process[ev.station].spec.machines:
                raise IndexError(ev.machine)
        elif isinstance(ev, UnitsCompleted):
            st = self._live[ev.station]
            if ev.machine < 0:
                raise IndexError(ev.machine)
            st.good[ev.machine] += ev.good
            st.scrap[ev.machine] += ev.scrap
            if st.ships:
                if t >= self._shift_end:
                    self._next_shift(t)
                if t >= self._shift_start:
                    self._shift_good += ev.good
        elif isinstance(ev, BufferLevel):
            st = self._buffered[ev.station]
            if st.level is None or t >= st.level.t:
                st.level = ev
        elif isinstance(ev, StoreOccupancy):
            st = self._stores[ev.station]
            if st.store is None or t >= st.store.t:
                st.store = ev
        elif isinstance(ev, UnitsReleased):
            self._released += ev.units
        elif isinstance(ev, ProcessValue):
            values = self._live[ev.station].values
            prev_value = values.get(ev.name)
            if prev_value is None or t >= prev_value.t:
                values[ev.name] = ev
        else:
            self._on[type(ev)](ev)  # UnitsLoaded: only the check

    def _late_state(self, ev: StateChanged) -> None:
        t, station, m, state, reason = ev
        st = self._process[station]
        cur = st.machines[m]
        if cur is None or t >= cur.t:  # the machine's newest report after all
            if cur is None or cur.state != state or cur.reason != reason:
                st.since[m] = t
            st.machines[m] = ev
            return
        same = state == cur.state and reason == cur.reason
        if (t < st.since[m]) != same:
            return  # a different state before the current one began, or the same state within it: no change
        # The report extends the current state back, or splits it: find where the current state began again from
        # the machine's reports in the history (they are all there, in time order, from the history's start on).
        since = math.nan
        for old in reversed(self._history):
            if type(old) is StateChanged and old.machine == m and old.station == station:
                if old.state != cur.state or old.reason != cur.reason:
                    break
                since = old.t
        else:
            since = min(since, st.since[m])  # no other state in the history: it may have begun before it
        st.since[m] = since

    def _prune(self, t: float) -> None:
        """Drop the events older than ``t - history_h``, rolling the checkpoint forward over them."""
        base = self._base
        assert base is not None
        cut = t - self.history_h
        history = self._history
        k = bisect_left(history, cut, key=_time)
        if self._cursor is not None and self._cursor_pos < k:
            self._advance(k)
        states, stores = self._cut_states, self._cut_stores
        for ev in history[:k]:
            base(ev)
            if isinstance(ev, StateChanged):
                states[ev[1], ev[2]] = ev
            elif isinstance(ev, StoreOccupancy):
                stores[ev[1]] = ev
        del history[:k]
        self._cursor_pos -= k
        self._cut = cut
        # Cut in steps of an eighth of the history, so that pruning costs O(1) per event.
        self._prune_at = t + self.history_h / 8

    # -- the clock and shifts --------------------------------------------------------------------------------
    @property
    def clock_h(self) -> float | None:
        """The latest event time (None before the first event)."""
        return self._clock if self._events else None

    @property
    def history_start_h(self) -> float | None:
        """The earliest time a KPI window may start (None before the live state has begun)."""
        return None if self._base is None else self._cut

    def shift_of(self, t: float) -> tuple[float, float]:
        """The shift ``[start, end)`` that time ``t`` falls in."""
        length, origin = self.shift_hours, self.shift_origin_h
        start = origin + math.floor((t - origin) / length) * length
        # floor of a quotient can land one shift off by rounding; the interval must hold t
        if start > t:
            start -= length
        elif start + length <= t:
            start += length
        return start, start + length

    # -- status ----------------------------------------------------------------------------------------------
    def status(self, now_h: float | None = None) -> LineStatus:
        """The line now: every station's and machine's state, counts, levels and latest process values, and the
        current shift's output against plan. ``now_h`` (default: the clock) is taken as the later of it and the
        clock, as plant clocks may run ahead of the caller's."""
        clock = self.clock_h
        now = clock if now_h is None else (now_h if clock is None else max(now_h, clock))
        stations: dict[str, StationStatus] = {}
        shipped = scrapped = 0
        for sid, st in self._live.items():
            good, scrap = sum(st.good), sum(st.scrap)
            scrapped += scrap
            if st.ships:
                shipped = good
            stations[sid] = self._station_status(st, good, scrap)
        shift = None
        if now is not None:
            start, end = self.shift_of(now)
            good = self._shift_good if start == self._shift_start else 0
            since = max(start, self._begin) if self._base is not None else start
            shift = ShiftStatus(start_h=start, end_h=end, good=good, plan=self.plan_per_hour * max(now - since, 0.0))
        return LineStatus(
            line=self.line.name,
            now_h=now,
            clock_h=clock,
            history_start_h=self.history_start_h,
            retained_events=len(self._history),
            shift=shift,
            good=shipped,
            scrapped=scrapped,
            released=self._released,
            wip=self.wip0 + self._released - scrapped - shipped,
            events=self._events,
            late_events=self._late,
            dropped_events=self._dropped,
            stations=stations,
        )

    def _station_status(self, st: _Live, good: int, scrap: int) -> StationStatus:
        spec = st.spec
        counts = {s.value: 0 for s in MachineState}
        counts["UNKNOWN"] = 0
        machines: list[MachineStatus] = []
        store = None
        summary: MachineState | None = None
        if spec.kind == "delay":
            occ = st.store
            if occ is not None:
                assert spec.capacity is not None
                store = StoreStatus(
                    dwelling=occ.dwelling, held=occ.held, intake_blocked=occ.intake_blocked, capacity=spec.capacity, t=occ.t
                )
                if occ.held:
                    summary = MachineState.BLOCKED
                elif occ.dwelling:
                    summary = MachineState.WORKING
                else:
                    summary = MachineState.STARVED
        else:
            for i, ev in enumerate(st.machines):
                if ev is None:
                    counts["UNKNOWN"] += 1
                    machines.append(MachineStatus(i, None, None, "", st.good[i], st.scrap[i]))
                else:
                    counts[ev.state.value] += 1
                    machines.append(MachineStatus(i, ev.state, st.since[i], ev.reason, st.good[i], st.scrap[i]))
            summary = _summary(counts)
        level = st.level
        return StationStatus(
            id=spec.id,
            kind=spec.kind,
            state=summary,
            machine_counts=counts,
            down_share=counts[MachineState.DOWN.value] / spec.machines if spec.kind == "process" else 0.0,
            machines=tuple(machines),
            good=good,
            scrapped=scrap,
            buffer_level=None if level is None else level.level,
            buffer_level_h=None if level is None else level.t,
            buffer_capacity=spec.buffer_after,
            store=store,
            process_values={
                name: ProcessReading(value=v.value, unit=v.unit, t=v.t, machine=v.machine) for name, v in st.values.items()
            },
        )

    # -- KPIs ------------------------------------------------------------------------------------------------
    def kpis(self, start_h: float, end_h: float | None = None) -> RunKpis:
        """The KPIs over ``[start_h, end_h]`` (end: the clock): a ``KpiReducer`` for the window, fed the retained
        events up to its end, equal to one attached to the source for that window.

        The window must start inside the retained history (:attr:`history_start_h`); it may end after the clock,
        taking the last reported states to hold until then. (A reducer that goes on taking events past its
        window's end adds up the same state durations in another order, so its fractions can differ in the last
        bits from these.)
        """
        base = self._base
        if base is None:
            raise ValueError("no events yet: the live state has not begun")
        end = self._clock if end_h is None else end_h
        if start_h < self._cut:
            raise ValueError(f"the window starts at {start_h} h, before the retained history (from {self._cut} h)")
        if not end > start_h:
            raise ValueError(f"the KPI window must have end_h > start_h, got [{start_h}, {end}]")
        history = self._history
        k = bisect_left(history, start_h, key=_time)
        stop = bisect_right(history, end, key=_time)
        if self._cursor is not None and self._cursor_pos <= k:
            # the shift reducer reaches start_h on its way anyway: fork from it rather than from the checkpoint
            self._advance(k)
            reducer = self._cursor.fork(start_h, end)
            first = k
        else:
            reducer = base.fork(start_h, end)
            first = 0
        for ev in history[first:stop]:
            reducer(ev)
        return reducer.result()

    def state_events(self, start_h: float, end_h: float | None = None) -> list[StateChanged | StoreOccupancy]:
        """The state events of the window ``[start_h, end_h)`` (no end: up to the clock), led by the state at ``start_h``.

        In time order: first each machine's latest ``StateChanged`` and each store's latest ``StoreOccupancy``
        before ``start_h``, at their own times, then every such event of the window. This is the input
        ``twin.stops.downtime_pareto`` and ``twin.stops.attribute_stops`` take for that window. The window must
        start inside the retained history (:attr:`history_start_h`); a machine or store that never reported has no
        leading event.
        """
        if self._base is None:
            raise ValueError("no events yet: the live state has not begun")
        if start_h < self._cut:
            raise ValueError(f"start_h ({start_h} h) is before the retained history (from {self._cut} h)")
        if end_h is not None and end_h < start_h:
            raise ValueError(f"end_h ({end_h} h) is before start_h ({start_h} h)")
        history = self._history
        k = bisect_left(history, start_h, key=_time)
        stop = len(history) if end_h is None else bisect_left(history, end_h, key=_time)
        states, stores = dict(self._cut_states), dict(self._cut_stores)
        for ev in history[:k]:
            if isinstance(ev, StateChanged):
                states[ev.station, ev.machine] = ev
            elif isinstance(ev, StoreOccupancy):
                stores[ev.station] = ev
        lead: list[StateChanged | StoreOccupancy] = sorted([*states.values(), *stores.values()], key=_time)
        return lead + [ev for ev in history[k:stop] if isinstance(ev, StateChanged | StoreOccupancy)]

    def shift_kpis(self, now_h: float | None = None) -> RunKpis | None:
        """The KPIs of the current shift so far (from its start, or the live state's if later, to ``now_h``,
        default the clock); None before the first event or at the very start of a shift."""
        clock = self.clock_h
        if clock is None:
            return None
        now = clock if now_h is None else max(now_h, clock)
        start, end = self.shift_of(now)
        w0 = max(start, self._begin)
        if not now > w0:
            return None
        reducer = self._shift_reducer(w0, end)
        self._advance(len(self._history))
        return reducer.result(until=now)

    def _shift_reducer(self, w0: float, w1: float) -> KpiReducer:
        cur = self._cursor
        if cur is not None and cur.w0 == w0 and cur.w1 == w1:
            return cur
        base = self._base
        assert base is not None
        k = bisect_left(self._history, w0, key=_time)
        if cur is not None and self._cursor_pos <= k:
            self._advance(k)
            self._cursor = cur.fork(w0, w1)
        else:
            self._cursor, self._cursor_pos = base.fork(w0, w1), 0
        return self._cursor

    def _advance(self, to: int) -> None:
        cur = self._cursor
        assert cur is not None
        for ev in self._history[self._cursor_pos : to]:
            cur(ev)
        self._cursor_pos = max(to, self._cursor_pos)


def _summary(counts: dict[str, int]) -> MachineState | None:
    if counts[MachineState.WORKING.value]:
        return MachineState.WORKING
    best: MachineState | None = None
    most = 0
    for state in _IDLE_ORDER:
        if counts[state.value] > most:
            best, most = state, counts[state.value]
    return best
