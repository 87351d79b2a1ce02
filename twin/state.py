"""The live state of a line, rebuilt from its events alone (the same events, simulated or from the plant).

:class:`LiveLine` takes every event of the vocabulary (``twin.events``) and answers what a plant engineer's
dashboard asks: what each station and machine is doing now and since when, the counts, buffer and store
levels, the latest process values, the output of the current shift against plan (:meth:`LiveLine.status`),
and the KPIs over any window of its retained history (:meth:`LiveLine.kpis`, :meth:`LiveLine.shift_kpis`),
and its state events, for the stop analyses of ``twin.stops`` (:meth:`LiveLine.state_events`).

It is split along its seams: the current values live here; the retained history, in compact columns with KPI
checkpoints, is ``twin.history``; shifts and the plan are ``twin.shifts``; what it returns (and the one
station-summary rule) is ``twin.status``. Those names are re-exported here.

Clocks. Times are float hours: the run's clock for the engine, hours since the Unix epoch (UTC) for plant
telemetry (``t = ts_ms / 3_600_000``). Shifts: see ``twin.shifts``: a line with a calendar has the calendar's
shifts (and, between them, the stretch until the next one, with no plan), and the plan so far counts only the
line's working time (no plan outside the shifts, in breaks, on holidays or in the line's planned stops).

Stores. A delay station's faults come as ``StateChanged`` of the store with the failure mode's index as the
machine (DOWN at the fault, WORKING at its repair): they are kept as the store's faults (``StoreStatus.faults``),
never as machines.

One reducer. The KPIs are those of ``twin.kpis.KpiReducer``, fed the retained events in time order, so
``kpis(w0, w1)`` equals a reducer attached to the engine for that window exactly. The history keeps the
KPI events (not ``UnitsLoaded`` or ``ProcessValue``) of the last ``history_h`` hours (up to an eighth more,
as it is cut in steps), at most ``max_events`` of them, and checkpoints every ``checkpoint_h`` hours that
windows fork from; a reducer follows the current shift, fed lazily, so "this shift so far" costs only the
events since it was last asked.

Taking an event in time order costs O(1) (a few array and dict updates, no validation models); a late one
costs a bisect and an array insert. Late events (older than the clock) are placed into the history by their
time, so window KPIs include them; they update a machine's, buffer's, store's or signal's current value only
if they are newer than it, and the counts always. A machine's "since" is when its current state began: a
repeated report (a heartbeat) keeps it, and a late report that falls inside the current state moves it (found
again from the history). Events at the same instant keep their order of arrival. Events older than the
retained history are counted in ``dropped_events`` and otherwise ignored. A late event invalidates only the
checkpoints after its time, and the shift reducer if it had taken later events.

Threads. One thread feeds the live line and asks its status; :meth:`LiveLine.view` hands any other thread an
immutable view of the history to query without a lock (see ``twin.history``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
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
from twin.history import KPI_EVENTS, EventHistory, HistoryView
from twin.kpis import RunKpis
from twin.schema import Line, Station
from twin.shifts import ShiftPlan, ShiftSpan, default_plan_per_hour
from twin.status import (
    LineOee,
    LineStatus,
    MachineStatus,
    ProcessReading,
    ShiftStatus,
    StationStatus,
    StoreStatus,
    constraint_of,
    line_oee,
    store_summary,
    summary_reason,
    summary_state,
)

DOWN = MachineState.DOWN

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


class _Live:
    """One station's current values: the latest event of each kind, and counts per machine."""

    __slots__ = (
        "dirty",
        "faults",
        "good",
        "level",
        "machines",
        "scrap",
        "ships",
        "since",
        "spec",
        "status",
        "store",
        "values",
    )

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
        self.faults: list[StateChanged | None] = [None] * len(spec.failures) if spec.kind == "delay" else []
        """A store: per failure mode, its latest report (DOWN: under repair since then)."""
        self.values: dict[str, ProcessValue] = {}
        self.status: StationStatus | None = None  # the last one built, reused by status() until something changes
        self.dirty = True


class LiveLine:
    """The live state of ``line``, rebuilt from its events: call it with each event, ask :meth:`status` and :meth:`kpis`.

    ``begin_h`` is when the state begins (None: at the first event; earlier events are dropped) and ``wip0``
    the units in the line then. ``history_h`` (at least one shift) is how far back :meth:`kpis` can look.
    ``plan_per_hour`` defaults to the constraint's ideal rate times the yield from it to the end; it is asked of
    working time only. ``shift_hours`` and ``shift_origin_h`` shape the shifts of a line without a calendar (a
    calendar's shifts override them).
    ``max_events`` bounds the retained history by count (past it the oldest eighth is let go early, counted in
    ``LineStatus.trimmed_events``); ``checkpoint_h`` is the spacing of its KPI checkpoints.
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
        max_events: int = 2_000_000,
        checkpoint_h: float = 1.0,
    ) -> None:
        if not shift_hours > 0:
            raise ValueError(f"shift_hours must be positive, got {shift_hours}")
        if plan_per_hour is not None and plan_per_hour < 0:
            raise ValueError(f"plan_per_hour cannot be negative, got {plan_per_hour}")
        plan = default_plan_per_hour(line) if plan_per_hour is None else plan_per_hour
        self._plan = ShiftPlan(line, plan, shift_hours=shift_hours, origin_h=shift_origin_h)
        longest = self._plan.longest_shift_h
        if not history_h >= longest:
            raise ValueError(f"history_h ({history_h}) must cover at least one shift ({longest} h)")
        self.line = line
        self.shift_hours = shift_hours
        self.shift_origin_h = shift_origin_h
        self.history_h = history_h
        self.max_events = max_events
        self.checkpoint_h = checkpoint_h
        self.constraint = constraint_of(line)[1].id  # the station with the lowest ideal rate (in units shipped)
        self.wip0 = wip0
        inputs = line.inputs
        # per station, the units of its inputs each unit it makes takes beyond one (merges): they become one unit
        self._merges = {s.id: k for s in line.stations if (k := sum(i.per_unit for i in inputs[s.id]) - 1) > 0}
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
        self._history: EventHistory | None = None  # from the live state's beginning on
        self._keep: Callable[[Event], None] = _not_begun  # the history's append, once it exists
        self._begin = math.nan
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
        self._begin = self._clock = t
        self._history = EventHistory(self.line, t, wip0=self.wip0, max_events=self.max_events, checkpoint_h=self.checkpoint_h)
        self._keep = self._history.append
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

    @property
    def plan_per_hour(self) -> float:
        """The good output per hour the line is planned to make in its working time."""
        return self._plan.plan_per_hour

    @plan_per_hour.setter
    def plan_per_hour(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"plan_per_hour cannot be negative, got {value}")
        self._plan.plan_per_hour = value

    def _refuse(self, event: object) -> ValueError:
        return ValueError(f"not an event of line {self.line.name!r} (unknown kind, station, buffer or machine): {event!r}")

    # In-order handlers: validate by looking up (KeyError, IndexError) before changing anything, unpack the tuple.
    def _on_state(self, ev: StateChanged) -> None:
        t, station, machine, state, reason = ev
        st = self._process.get(station)
        if st is None:
            self._on_fault(ev)
            return
        machines = st.machines
        if machine < 0:
            raise IndexError(machine)
        prev = machines[machine]
        if prev is None or prev[3] != state or prev[4] != reason:
            st.since[machine] = t
        machines[machine] = ev
        st.dirty = True
        self._keep(ev)

    def _on_fault(self, ev: StateChanged) -> None:
        st = self._stores[ev[1]]
        if not 0 <= ev[2] < len(st.faults):
            raise IndexError(ev[2])
        st.faults[ev[2]] = ev
        st.dirty = True
        self._keep(ev)

    def _on_completed(self, ev: UnitsCompleted) -> None:
        t, station, machine, good, scrap = ev
        st = self._live[station]
        if machine < 0:
            raise IndexError(machine)
        st.good[machine] += good
        st.scrap[machine] += scrap
        st.dirty = True
        if st.ships:
            if t >= self._shift_end:
                self._next_shift(t)
            self._shift_good += good
        self._keep(ev)

    def _on_buffer(self, ev: BufferLevel) -> None:
        st = self._buffered[ev[1]]
        st.level = ev
        st.dirty = True
        self._keep(ev)

    def _on_store(self, ev: StoreOccupancy) -> None:
        st = self._stores[ev[1]]
        st.store = ev
        st.dirty = True
        self._keep(ev)

    def _on_released(self, ev: UnitsReleased) -> None:
        self._released += ev[1]
        self._keep(ev)

    def _on_loaded(self, ev: UnitsLoaded) -> None:
        # loads feed no state or KPI; the station is checked all the same
        if ev[1] not in self._live:
            raise KeyError(ev[1])

    def _on_value(self, ev: ProcessValue) -> None:
        st = self._live[ev[1]]
        st.values[ev[3]] = ev
        st.dirty = True

    def _next_shift(self, t: float) -> None:
        self._shift_start, self._shift_end = self.shift_of(t)
        self._shift_good = 0

    def _take_late(self, ev: Event) -> None:
        t = ev[0]
        history = self._history
        if history is None:
            self._start(t)
            self(ev)
            return
        if t < history.start_h:
            self._events += 1
            self._late += 1
            self._dropped += 1
            return
        try:
            self._apply_late(ev)
        except (KeyError, IndexError):
            raise self._refuse(ev) from None
        if type(ev) is not UnitsReleased:
            self._live[ev[1]].dirty = True  # type: ignore[index]  # every other kind names its station
        self._events += 1
        self._late += 1
        if isinstance(ev, KPI_EVENTS):
            i = history.insert(ev)
            if isinstance(ev, StateChanged) and ev.station in self._process:
                self._late_state(ev, i)

    def _apply_late(self, ev: Event) -> None:
        # Current values change only if the late event is newer than them; counts change whatever its time.
        t = ev[0]
        if isinstance(ev, StateChanged):
            store = self._stores.get(ev.station)
            if store is not None:  # a store fault: its latest report is the newest
                if not 0 <= ev.machine < len(store.faults):
                    raise IndexError(ev.machine)
                cur = store.faults[ev.machine]
                if cur is None or t >= cur.t:
                    store.faults[ev.machine] = ev
            # only checked here: _late_state applies it once it is in the history
            elif not 0 <= ev.machine < self._process[ev.station].spec.machines:
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

    def _late_state(self, ev: StateChanged, i: int) -> None:
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
        # Every report from the current state's beginning on is of that state, so the walk back starts there (it
        # extends) or at the first report after the late one (it splits), not at the newest.
        history = self._history
        assert history is not None
        # (when it splits, the current report is after the late one: there is a next report)
        stop = history.index_after(st.since[m]) if same else history.next_report(station, m, i + 1) + 1
        since = math.nan
        for old_t, old_state, old_reason in history.reports_back(station, m, stop):
            if old_state != cur.state or old_reason != cur.reason:
                break
            since = old_t
        else:
            since = min(since, st.since[m])  # no other state in the history: it may have begun before it
        st.since[m] = since

    def _prune(self, t: float) -> None:
        """Let go of the events older than ``t - history_h``, rolling the history's base checkpoint over them."""
        assert self._history is not None
        self._history.cut_to(t - self.history_h)
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
        return None if self._history is None else self._history.start_h

    def shift_of(self, t: float) -> tuple[float, float]:
        """The shift ``[start, end)`` that time ``t`` falls in (between a calendar's shifts: the stretch between them)."""
        span = self._plan.shift_at(t)
        return span.start_h, span.end_h

    def shift_at(self, t: float) -> ShiftSpan:
        """The shift (or the stretch between a calendar's shifts) that time ``t`` falls in, with its name."""
        return self._plan.shift_at(t)

    def plan_between(self, start_h: float, end_h: float) -> float:
        """The good units planned in ``[start_h, end_h)``: the plan per hour times the line's working hours in it."""
        return self._plan.plan_between(start_h, end_h)

    # -- status ----------------------------------------------------------------------------------------------
    def status(self, now_h: float | None = None) -> LineStatus:
        """The line now: every station's and machine's state, counts, levels and latest process values, and the
        current shift's output against plan. ``now_h`` (default: the clock) is taken as the later of it and the
        clock, as plant clocks may run ahead of the caller's."""
        clock = self.clock_h
        now = clock if now_h is None else (now_h if clock is None else max(now_h, clock))
        stations: dict[str, StationStatus] = {}
        shipped = scrapped = merged = 0
        for sid, st in self._live.items():
            built = st.status
            if built is None or st.dirty:  # only the stations that changed are built again
                built = st.status = self._station_status(st, sum(st.good), sum(st.scrap))
                st.dirty = False
            scrapped += built.scrapped
            if st.ships:
                shipped = built.good
            if sid in self._merges:
                merged += self._merges[sid] * (built.good + built.scrapped)
            stations[sid] = built
        shift = None
        if now is not None:
            span = self._plan.shift_at(now)
            start, end = span.start_h, span.end_h
            good = self._shift_good if start == self._shift_start else 0
            since = max(start, self._begin) if self._history is not None else start
            plan = self._plan.plan_between(since, now) if now > since else 0.0
            shift = ShiftStatus(start_h=start, end_h=end, good=good, plan=plan, name=span.name)
        return LineStatus(
            line=self.line.name,
            now_h=now,
            clock_h=clock,
            history_start_h=self.history_start_h,
            retained_events=0 if self._history is None else len(self._history),
            shift=shift,
            good=shipped,
            scrapped=scrapped,
            released=self._released,
            wip=self.wip0 + self._released - scrapped - shipped - merged,
            events=self._events,
            late_events=self._late,
            dropped_events=self._dropped,
            stations=stations,
            trimmed_events=0 if self._history is None else self._history.trimmed,
        )

    def _station_status(self, st: _Live, good: int, scrap: int) -> StationStatus:
        spec = st.spec
        counts = {s.value: 0 for s in MachineState}
        counts["UNKNOWN"] = 0
        machines: list[MachineStatus] = []
        store = None
        summary: MachineState | None = None
        since: float | None = None
        reason = ""
        if spec.kind == "delay":
            occ = st.store
            down = [(j, ev.t) for j, ev in enumerate(st.faults) if ev is not None and ev.state is DOWN]
            faults = {spec.failures[j].name: t for j, t in down}
            if occ is not None:
                assert spec.capacity is not None
                out = sum(spec.failures[j].positions or spec.capacity for j, _t in down)
                store = StoreStatus(
                    dwelling=occ.dwelling,
                    held=occ.held,
                    intake_blocked=occ.intake_blocked,
                    capacity=spec.capacity,
                    t=occ.t,
                    faults=faults,
                    positions_out=min(out, spec.capacity),
                )
                summary, reason = store_summary(occ.dwelling, occ.held, occ.intake_blocked, faults)
                since = max(occ.t, faults[reason]) if summary is DOWN else occ.t
        else:
            for i, ev in enumerate(st.machines):
                if ev is None:
                    counts["UNKNOWN"] += 1
                    machines.append(MachineStatus(i, None, None, "", st.good[i], st.scrap[i]))
                else:
                    counts[ev.state.value] += 1
                    machines.append(MachineStatus(i, ev.state, st.since[i], ev.reason, st.good[i], st.scrap[i]))
            summary = summary_state({state: counts[state.value] for state in MachineState})
            if summary is not None:
                # the station has been in its state at least since its latest machine joined it
                in_state = [m for m in machines if m.state == summary]
                since = max(m.since_h for m in in_state if m.since_h is not None)
                reason = summary_reason(Counter(m.reason for m in in_state))
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
            since_h=since,
            reason=reason,
        )

    # -- KPIs ------------------------------------------------------------------------------------------------
    def build_checkpoints(self) -> None:
        """Bring the history's KPI checkpoints up to the clock (the feeding thread; queries use those there are)."""
        if self._history is not None:
            self._history.build_checkpoints(self._clock)

    def view(self) -> HistoryView:
        """The retained history now, to query from any thread without a lock (:meth:`HistoryView.kpis`,
        :meth:`HistoryView.state_events`). Raises ``ValueError`` before the live state has begun."""
        if self._history is None:
            raise ValueError("no events yet: the live state has not begun")
        return self._history.view(self._clock)

    def kpis(self, start_h: float, end_h: float | None = None) -> RunKpis:
        """The KPIs over ``[start_h, end_h]`` (end: the clock): a ``KpiReducer`` for the window, fed the retained
        events up to its end, equal to one attached to the source for that window.

        The window must start inside the retained history (:attr:`history_start_h`); it may end after the clock,
        taking the last reported states to hold until then. (A reducer that goes on taking events past its
        window's end adds up the same state durations in another order, so its fractions can differ in the last
        bits from these.)
        """
        self.build_checkpoints()
        return self.view().kpis(start_h, end_h)

    def state_events(self, start_h: float, end_h: float | None = None) -> list[StateChanged | StoreOccupancy | BufferLevel]:
        """The state events of the window ``[start_h, end_h)`` (no end: up to the clock), led by the state at ``start_h``.

        In time order: first each machine's latest ``StateChanged`` and each store's latest ``StoreOccupancy``
        before ``start_h``, at their own times, then every such event of the window (store faults included; on a
        line with merges, the levels of the buffers merge stations take from too). This is the input
        ``twin.stops.downtime_pareto`` and ``twin.stops.attribute_stops`` take for that window. The window must
        start inside the retained history (:attr:`history_start_h`); a machine or store that never reported has no
        leading event.
        """
        self.build_checkpoints()
        return self.view().state_events(start_h, end_h)

    def shift_kpis(self, now_h: float | None = None) -> RunKpis | None:
        """The KPIs of the current shift so far (from its start, or the live state's if later, to ``now_h``,
        default the clock); None before the first event or at the very start of a shift. A shift that began before
        the retained history (cut early by ``max_events``) is counted from the history's start."""
        clock = self.clock_h
        history = self._history
        if clock is None or history is None:
            return None
        now = clock if now_h is None else max(now_h, clock)
        start, end = self.shift_of(now)
        w0 = max(start, self._begin, history.start_h)
        if not now > w0:
            return None
        history.build_checkpoints(self._clock)
        return history.running_kpis(w0, end, now)


def _not_begun(ev: Event) -> None:
    raise AssertionError(f"an event was kept before the live state began: {ev!r}")
