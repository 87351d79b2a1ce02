"""What the telemetry of a line tells about its state at one instant, and no more: the known part of a snapshot.

A forecast starts the engine from the live plant, but the wire carries only machine states (with the failure mode
under repair), cumulative counts, buffer levels and store occupancies. :class:`KnowledgeBuilder` takes those events
in time order (from the live state's history, or replayed from the store for a longer look back) and says, at an
instant (:meth:`KnowledgeBuilder.at`):

- per machine: its state and since when, the failure mode under repair, the working hours of its current cycle
  (from its last completion or the start of its working spell, whichever is later: a machine that finds its next
  lot waiting loads it at once and reports no new state; a repair mid-cycle pauses the cycle, it does not end
  it), and per failure mode its **age**: the hours since that mode's last
  repair ended, counted on the mode's basis (working hours for ``operating`` modes, calendar hours for
  ``calendar`` ones), or None when no repair of that mode was seen. A repair is a ``DOWN`` spell with the mode as
  its reason; it ends when the machine reports another state or another reason. (A repair that waited for a crew
  counts its waiting as repair time: the wire does not tell them apart.)
- per machine, the units it holds, inferred (units are not on the wire, only counters): a working, blocked or
  down machine holds a lot the size of its last completed one (good and scrap; a full lot or batch before its
  first); a starved batch machine's partial fill comes from conservation at its input's buffer (``Line.inputs``:
  a batch station with one input taking one unit per unit). The units its station took from that buffer are the
  input station's good output less what the input holds finished (blocked machines, a store's units held at its
  exit) less the buffer's level; machines load first come, first served, so all the units taken since the later
  of the oldest starving machine's start of loading and the last batch completed loading are that machine's fill,
  and the other starving machines hold none. A merge station (or one taking several units of its input per unit)
  takes its inputs all at once when every one is there: its starved machines hold none;
- per machine in SETUP or a planned stop: for a planned stop, what it was doing when the stop came
  (``stopped_from``: a machine stopped mid-cycle holds its lot and its cycle pauses; one stopped while blocked holds
  its finished lot; one stopped while down or in a changeover goes on being repaired or changed over behind the
  stop, as the engine does, and shows it again when the stop ends if it is not done); when the repair or the
  changeover began; and per machine the units it finished since its last changeover ended (None: none seen). A
  stop that comes at the instant a unit is finished finds the machine between units (idle);
- per buffer: its level;
- per machine of a station with condition signals (``Signal.condition``: vibration, drive current), its recent
  condition features, level and trend (``twin.condition``), from the ``ProcessValue`` events; and, fitted from the
  same events, the condition-signal hazard model (:attr:`LineKnowledge.condition_fit`): every 15 min each machine
  that is up with recent features gives a training sample, labelled once its window has passed
  (:class:`~twin.condition.ConditionMonitor`). The model is refitted when :meth:`KnowledgeBuilder.at` is asked and
  enough new samples have been labelled since the last fit;
- per store (a delay station): its occupancy and when its units entered, as far back as the events go. Entries are
  not on the wire: a store's intake is the growth of its occupancy plus what it released (its completions), taken
  at each occupancy report. The units in a store are its newest entries (stores release first in, first out), so
  only the latest entries covering the occupancy are kept; the units that entered before the events began are
  counted as ``unknown_units``. And its faults: each failure mode under repair since when (``StateChanged`` of the
  store with the mode's index as the machine), and each other mode's age, the calendar hours since its last repair
  ended (None: none seen).

What the wire does not tell (work left on the units in a machine, the repair time left, the time to the next
failure, dwell left of units whose entry was not seen) is drawn per replication by ``twin.sampler``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from twin.condition import REFIT_EVERY, AgeOnlyHazard, ConditionFeatures, ConditionFit, ConditionMonitor
from twin.events import BufferLevel, Event, MachineState, ProcessValue, StateChanged, StoreOccupancy, UnitsCompleted
from twin.schema import Line

__all__ = ["KnowledgeBuilder", "LineKnowledge", "MachineKnowledge", "StoreKnowledge"]

WORKING, STARVED, BLOCKED, DOWN = MachineState.WORKING, MachineState.STARVED, MachineState.BLOCKED, MachineState.DOWN
SETUP, PLANNED_STOP = MachineState.SETUP, MachineState.PLANNED_STOP


@dataclass(frozen=True)
class MachineKnowledge:
    """One machine as the telemetry shows it at an instant."""

    state: MachineState | None
    """Its latest reported state (None: it never reported)."""
    since_h: float
    """When its current state began (NaN: never reported)."""
    reason: str
    """DOWN: the failure mode under repair."""
    cycle_worked_h: float
    """WORKING, or DOWN after working: the working hours of the current cycle so far (0 otherwise). A cycle under
    way when the events began counts from their beginning."""
    ages_h: dict[str, float | None]
    """Per failure mode, its age on its basis since its last repair ended; None: no repair of it was seen."""
    down_from: MachineState | None = None
    """DOWN: the state it broke down from (WORKING: mid-cycle; BLOCKED: holding finished units)."""
    units: int | None = None
    """The units it holds, inferred (see the module docstring); None: not known (a starved batch machine whose
    upstream is the line's supply, a machine idle before it ever finished a lot)."""
    condition: ConditionFeatures | None = None
    """Its recent condition-signal features (``twin.condition``); None: it has none (no condition signals, none
    recent, or it is down)."""
    stopped_from: MachineState | None = None
    """PLANNED_STOP: the state the planned stop found it in (WORKING: mid-cycle; BLOCKED: holding finished units;
    DOWN or SETUP: repaired or changed over behind the stop; STARVED: idle)."""
    stopped_since_h: float = math.nan
    """PLANNED_STOP: when the planned stop began."""
    began_h: float = math.nan
    """DOWN or SETUP (or a planned stop that found it so): when the repair or the changeover began (NaN: not seen)."""
    repair_mode: str = ""
    """DOWN, or a planned stop that found it down: the failure mode under repair."""
    since_changeover: int | None = None
    """Units it finished since its last changeover ended; None: no changeover seen."""

    def now_elapsed(self, now_h: float) -> float:
        """Hours in its current state at ``now_h`` (0 when it never reported)."""
        return now_h - self.since_h if math.isfinite(self.since_h) else 0.0


@dataclass(frozen=True)
class StoreKnowledge:
    """A store (delay station): what it holds and when its units entered."""

    occupancy: int
    """Units in the store: dwelling and ready."""
    ready: int
    """Of them, units whose dwell is over, held at its exit (the oldest)."""
    entries: tuple[tuple[float, int], ...]
    """(time, units) of the entries still in the store, oldest first: they add up to at most ``occupancy``."""
    unknown_units: int
    """Units in the store whose entry came before the events began (``occupancy`` less the entries')."""
    known_since_h: float
    """Entries are known from this instant on (when the events began)."""
    faults: dict[str, float] = field(default_factory=dict)
    """Failure modes under repair, and since when."""
    fault_ages_h: dict[str, float | None] = field(default_factory=dict)
    """Per failure mode not under repair: the calendar hours since its last repair ended (None: none seen)."""


@dataclass(frozen=True)
class LineKnowledge:
    """What the telemetry tells about a line at ``time_h``: see the module docstring."""

    time_h: float
    observed_since_h: float
    """The first event's time: states, ages and store entries before it are unknown."""
    machines: dict[str, tuple[MachineKnowledge, ...]] = field(default_factory=dict)
    buffers: dict[str, int] = field(default_factory=dict)
    stores: dict[str, StoreKnowledge] = field(default_factory=dict)
    condition_fit: ConditionFit | None = None
    """The condition-signal hazard model fitted from the events so far, or why there is none (None: never fitted)."""


class _Machine:
    __slots__ = (
        "began",
        "changed",
        "cycle_worked",
        "done_at",
        "down_from",
        "last_good",
        "last_lot",
        "mark",
        "mode",
        "reason",
        "repaired",
        "since",
        "state",
        "stop_since",
        "stopped_from",
        "worked",
        "working_since",
    )

    def __init__(self, modes: tuple[str, ...]) -> None:
        self.state: MachineState | None = None
        self.reason = ""
        self.since = math.nan
        self.cycle_worked = 0.0  # working hours of the current cycle booked so far (the running spell not included)
        self.working_since = math.nan  # the start of the current working spell (NaN: not working)
        self.down_from: MachineState | None = None
        self.repaired: dict[str, float] = {}  # per mode seen repaired: when its last repair ended
        self.worked: dict[str, float] = dict.fromkeys(modes, 0.0)  # working hours since then (modes seen repaired)
        self.last_lot = 0  # good + scrap of its last completion (0: none seen)
        self.last_good = 0
        self.mark = math.nan  # batch machines: units its station had taken when it began loading (NaN: not loading)
        self.stopped_from: MachineState | None = None  # PLANNED_STOP: the state the stop found it in
        self.stop_since = math.nan  # PLANNED_STOP: when the stop began
        self.mode = ""  # the failure mode of the repair under way (DOWN, or hidden by a planned stop)
        self.began = math.nan  # when the repair or changeover under way began
        self.changed: int | None = None  # units finished since its last changeover ended (None: none seen)
        self.done_at = math.nan  # when it last finished a lot


class _Store:
    __slots__ = ("entries", "faults", "held", "high", "occupancy", "ready", "released", "repaired")

    def __init__(self) -> None:
        self.faults: dict[str, float] = {}  # failure modes under repair: since when
        self.repaired: dict[str, float] = {}  # failure modes seen repaired: when the last repair ended
        self.occupancy: int | None = None  # None until the first report: the baseline of the intake
        self.ready = 0  # units whose dwell is over, held at the exit
        self.released = 0
        self.high = 0  # the highest "units taken in" so far (reports at one instant may come in either order)
        self.entries: deque[list[float | int]] = deque()  # [time, units], newest last
        self.held = 0  # the units of the entries kept


def _was(m: _Machine) -> MachineState | None:
    """What the machine was doing before its repair or planned stop (through both: a stop that found it down)."""
    state = m.state
    if state is PLANNED_STOP:
        state = m.stopped_from
    if state is DOWN:
        state = m.down_from
    return state


def _holding(m: _Machine) -> bool:
    """Whether the machine holds finished units not handed over: blocked, or broken down or stopped while blocked."""
    return m.state is BLOCKED or (m.state in (DOWN, PLANNED_STOP) and _was(m) is BLOCKED)


def _mid_cycle(m: _Machine) -> bool:
    """Whether the machine is working, or holds a cycle that a repair or a planned stop paused."""
    return m.state is WORKING or (m.state in (DOWN, PLANNED_STOP) and _was(m) is WORKING)


def _hidden(m: _Machine) -> MachineState | None:
    """The repair (DOWN) or changeover (SETUP) the machine is in, shown or behind a planned stop (None: neither)."""
    state = m.stopped_from if m.state is PLANNED_STOP else m.state
    return state if state in (DOWN, SETUP) else None


class KnowledgeBuilder:
    """Takes a line's events in time order (an observer, like ``twin.state.LiveLine``) and says what they tell about
    the line at an instant (:meth:`at`); see the module docstring."""

    def __init__(
        self, line: Line, start_h: float | None = None, *, skip_late: bool = False, refit_every: int | None = REFIT_EVERY
    ) -> None:
        self.line = line
        self.skip_late = skip_late
        self.late_events = 0
        """Events older than the last one taken, skipped (``skip_late``: live telemetry, whose late readings the
        live state places by time; here a state is what the latest report says)."""
        self._start = start_h
        self._clock = -math.inf
        process = [s for s in line.stations if s.kind == "process"]
        self._specs = {s.id: s for s in process}
        self._modes = {s.id: tuple(f.name for f in s.failures) for s in process}
        self._basis = {s.id: {f.name: f.basis for f in s.failures} for s in process}
        self._machines = {s.id: [_Machine(self._modes[s.id]) for _ in range(s.machines)] for s in process}
        self._buffers: dict[str, int] = {}
        self._stores = {s.id: _Store() for s in line.stations if s.kind == "delay"}
        self._pending: dict[str, StoreOccupancy] = {}  # the latest store reports of the current instant
        # Conservation at the buffers before batch stations: per station, good output so far, and what its blocked
        # machines hold finished; per batch station, its upstream, the units taken as of the end of the last
        # instant, and when its last batch completed loading.
        self._good: dict[str, int] = {s.id: 0 for s in line.stations}
        self._blocked: dict[str, int] = {s.id: 0 for s in line.stations}
        inputs = line.inputs
        # batch stations loading one by one from one input's buffer (a merge takes all its inputs at once)
        self._upstream = {
            s.id: inputs[s.id][0].station
            for s in process
            if s.batch_size is not None and len(inputs[s.id]) == 1 and inputs[s.id][0].per_unit == 1
        }
        self._merging = {s.id for s in process if sum(i.per_unit for i in inputs[s.id]) > 1}
        self._store_modes = {s.id: [f.name for f in s.failures] for s in line.stations if s.kind == "delay"}
        self._taken_before = dict.fromkeys(self._upstream, 0.0)
        self._loaded_at = dict.fromkeys(self._upstream, -math.inf)
        self._handlers: dict[type, Callable[..., None]] = {
            StateChanged: self._state,
            UnitsCompleted: self._completed,
            BufferLevel: self._buffer,
            StoreOccupancy: self._occupancy,
            ProcessValue: self._value,
        }
        self.condition = ConditionMonitor(line, refit_every=refit_every)
        """The condition signals' features and training samples (``refit_every``: labelled samples between the
        fits :meth:`at` makes; None: none, fit with ``condition.fit()``)."""
        self._hazard = AgeOnlyHazard(self.condition.window_h)
        self._sampling = bool(self.condition.stations)

    def __call__(self, ev: Event) -> None:
        """Take one event (in time order; an older one than the last is refused, or skipped with ``skip_late``)."""
        handler = self._handlers.get(type(ev))
        if handler is not None:
            if ev[0] < self._clock and self.skip_late:
                self.late_events += 1
                return
            handler(*ev)

    def attach(self, engine: Any) -> None:
        """Take ``engine``'s events as fields, before it runs (``twin.engine.Engine.subscribe_fields``: no event
        objects are made)."""
        for kind, handler in self._handlers.items():
            engine.subscribe_fields(kind, handler)

    def _tick(self, t: float) -> None:
        if t < self._clock:
            raise ValueError(f"an event at t={t} h came after one at t={self._clock} h: take them in time order")
        if t > self._clock:
            if self._pending:
                self._flush()
            for sid in self._upstream:
                self._taken_before[sid] = self._taken(sid)
            if self._sampling:
                instant = self.condition.instant_before(t)
                if instant is not None:
                    self._sample(instant)
        self._clock = t
        if self._start is None:
            self._start = t

    def _sample(self, instant: float) -> None:
        """Label the samples whose window has passed and take one of every machine that is up with recent
        condition features (the events up to ``instant`` are all in)."""
        monitor = self.condition
        monitor.expire(instant)
        for sid in monitor.stations:
            spec = self._specs[sid]
            for i, m in enumerate(self._machines[sid]):
                if m.state is None or m.state is DOWN:
                    continue
                features = monitor.features(sid, i, instant)
                if features is not None:
                    monitor.take(instant, sid, i, self._hazard.p_within(spec, self._ages(sid, m, instant)), features)

    def _value(self, t: float, station: str, machine: int, name: str, value: float, unit: str) -> None:
        self._tick(t)
        machines = self._machines.get(station)
        if machines is None or not 0 <= machine < len(machines) or machines[machine].state is DOWN:
            return  # a store's or an unknown machine's value, or a stopped machine's (it says nothing of its health)
        self.condition.value(t, station, machine, name, value)

    def _completed(self, t: float, station: str, machine: int, good: int, scrap: int) -> None:
        self._tick(t)
        self._good[station] += good
        store = self._stores.get(station)
        if store is not None:
            store.released += good + scrap
            return
        m = self._machines[station][machine]
        m.last_lot, m.last_good = good + scrap, good
        m.done_at = t
        if m.changed is not None:
            m.changed += good + scrap
        if m.state is WORKING:  # the next lot, if one waits, starts now without a state report
            self._book_work(m, t)
            m.working_since = t
        m.cycle_worked = 0.0

    def _buffer(self, t: float, station: str, level: int) -> None:
        self._tick(t)
        self._buffers[station] = level

    def _occupancy(self, t: float, station: str, dwelling: int, held: int, intake_blocked: bool) -> None:
        self._tick(t)
        if station not in self._stores:
            raise KeyError(station)
        # Taken at the end of its instant: a release reports its units as completed before the store's occupancy
        # drops, so only the last report of an instant squares with the completions.
        self._pending[station] = StoreOccupancy(t, station, dwelling, held, intake_blocked)

    def _taken(self, sid: str) -> float:
        """Units batch station ``sid`` has taken from its upstream buffer, up to a constant (conservation)."""
        up = self._upstream[sid]
        store = self._stores.get(up)
        held = store.ready if store is not None else self._blocked[up]
        return self._good[up] - held - self._buffers.get(up, 0)

    def _fills(self, sid: str, ms: list[_Machine]) -> dict[int, int]:
        """The partial fill of each starving machine of batch station ``sid`` (first come, first served)."""
        spec = self._specs[sid]
        assert spec.batch_size is not None
        loading = sorted((m.mark, m.since, i) for i, m in enumerate(ms) if m.mark == m.mark and _was(m) is STARVED)
        fills = dict.fromkeys((i for _, _, i in loading), 0)
        if loading:
            head = loading[0][2]
            got = self._taken(sid) - max(ms[head].mark, self._loaded_at[sid])
            fills[head] = int(min(max(got, 0), spec.batch_size - 1))
        return fills

    def _flush(self) -> None:
        for ev in self._pending.values():
            self._on_store(ev)
        self._pending.clear()

    def _fault(self, sid: str, j: int, t: float, state: MachineState) -> None:
        """Store ``sid``'s failure mode ``j`` faulted (DOWN) or was repaired (any other state)."""
        store = self._stores[sid]
        mode = self._store_modes[sid][j]  # IndexError: a mode the store does not have
        if state is DOWN:
            store.faults.setdefault(mode, t)
        elif mode in store.faults:
            del store.faults[mode]
            store.repaired[mode] = t

    def _state(self, t: float, sid: str, idx: int, state: MachineState, reason: str) -> None:
        self._tick(t)
        machines = self._machines.get(sid)
        if machines is None:
            self._fault(sid, idx, t, state)  # KeyError: not a station of the line
            return
        m = machines[idx]
        prev = m.state
        if prev == state and m.reason == reason:
            return  # a repeated report (a heartbeat)
        hidden = _hidden(m)
        # a repair or changeover a planned stop hid, shown again when the stop ends: it goes on
        resumed = prev is PLANNED_STOP and hidden is state and (state is SETUP or reason == m.mode)
        if state is DOWN and prev is not DOWN and not resumed:
            self.condition.failed(t, sid, idx)  # a new failure: it labels the machine's samples of the last window
        if prev is WORKING:
            self._book_work(m, t)
        was_holding = _holding(m)
        was_mid_cycle = _mid_cycle(m)
        if sid in self._upstream:
            if state is STARVED and m.mark != m.mark:
                m.mark = self._taken_before[sid]  # it takes what waits at this instant: count from before it
            elif state is WORKING and _was(m) is STARVED:
                self._loaded_at[sid] = self._taken(sid)  # a batch completed loading: later units go to the next
                m.mark = math.nan
        if hidden is not None and state is not PLANNED_STOP and not resumed and (state is not DOWN or reason != m.mode):
            # the repair (or changeover) ended, now or behind the stop that ends now
            if hidden is DOWN and m.mode:
                m.repaired[m.mode] = t  # that mode's age starts again
                if m.mode in m.worked:
                    m.worked[m.mode] = 0.0
                m.mode = ""
            if hidden is SETUP:
                m.changed = 0
            m.began = math.nan
        if state is PLANNED_STOP and prev is not PLANNED_STOP:
            # a stop at the instant a lot was finished finds the machine between lots
            m.stopped_from = STARVED if prev is WORKING and m.done_at == t else prev
            m.stop_since = t
        if not resumed and state in (DOWN, SETUP):
            if state is DOWN:
                m.down_from = _was(m) if prev is not DOWN else m.down_from
                m.mode = reason
            m.began = t
        if state is WORKING:
            m.working_since = t
            if not was_mid_cycle:
                m.cycle_worked = 0.0  # a new cycle (after a repair or a stop mid-cycle, the paused one goes on)
        if state is not PLANNED_STOP:
            m.stopped_from = None
        m.state, m.reason = state, reason
        m.since = m.began if resumed and m.began == m.began else t
        self._blocked[sid] += (_holding(m) - was_holding) * m.last_good

    @staticmethod
    def _book_work(m: _Machine, t: float) -> None:
        spell = t - m.working_since
        if spell > 0:
            for mode in m.worked:
                m.worked[mode] += spell
            m.cycle_worked += spell
        m.working_since = math.nan

    def _on_store(self, ev: StoreOccupancy) -> None:
        s = self._stores[ev.station]
        s.ready = ev.held
        units = ev.dwelling + ev.held
        # Units held at the exit were counted as released (completed) already: the intake is what dwells plus
        # what was released.
        taken_in = ev.dwelling + s.released
        if s.occupancy is None:
            s.occupancy = units
            s.high = taken_in  # the baseline: what it held and released before is not intake
            return
        s.occupancy = units
        if taken_in > s.high:
            s.entries.append([ev.t, taken_in - s.high])
            s.held += taken_in - s.high
            s.high = taken_in
        # keep only the newest entries that the store can still hold (first in, first out)
        while s.entries and s.held - int(s.entries[0][1]) >= units:
            s.held -= int(s.entries.popleft()[1])

    def seed_store(self, station: str, entries: Sequence[tuple[float, int]]) -> None:
        """Give store ``station`` the entries it holds from before the events begin: (time entered, units), oldest
        first, what a look-back at its telemetry as long as its dwell would have said. Before its first report only
        (the demo takes them from its warm-up, whose past is the virtual plant's)."""
        s = self._stores[station]
        if s.occupancy is not None:
            raise ValueError(f"store {station!r} has reported already: seed it before its first report")
        kept = [[float(t), int(u)] for t, u in entries if u > 0]
        if any(a[0] > b[0] for a, b in pairwise(kept)):
            raise ValueError(f"store {station!r}: entries must come oldest first")
        s.entries.extend(kept)
        s.held = sum(int(u) for _, u in kept)
        s.occupancy = s.high = s.held  # all of it dwells; its intake is counted from here on

    @property
    def clock_h(self) -> float | None:
        """The newest event's time (None before the first)."""
        return None if self._start is None else self._clock

    def at(self, now_h: float | None = None) -> LineKnowledge:
        """What the events taken so far tell about the line at ``now_h`` (default: the last event's time; never
        before it)."""
        if self._start is None:
            raise ValueError("no events yet: nothing is known about the line")
        self._flush()
        now = self._clock if now_h is None else now_h
        if now < self._clock:
            raise ValueError(f"knowledge at {now} h asked after events up to {self._clock} h")
        machines: dict[str, tuple[MachineKnowledge, ...]] = {}
        for sid, ms in self._machines.items():
            spec = self._specs[sid]
            full = spec.batch_size or spec.lot
            fills = self._fills(sid, ms) if sid in self._upstream else {}
            out = []
            for i, m in enumerate(ms):
                if _mid_cycle(m):
                    units: int | None = m.last_lot or full
                elif _holding(m):
                    units = m.last_good or full
                elif i in fills:
                    units = fills[i]
                elif sid in self._merging and m.state is not None:
                    units = 0  # a merge takes its inputs all at once: idle, it holds none
                elif spec.batch_size is not None and m.state is not None and _hidden(m) is not SETUP:
                    units = None  # loading from the line's supply, or never seen to load: not known
                else:
                    units = 0 if m.state is not None else None
                working = now - m.working_since if m.state is WORKING and m.working_since == m.working_since else 0.0
                out.append(
                    MachineKnowledge(
                        state=m.state,
                        since_h=m.since,
                        reason=m.reason if m.state in (DOWN, SETUP, PLANNED_STOP) else "",
                        cycle_worked_h=m.cycle_worked + working if _mid_cycle(m) else 0.0,
                        ages_h=self._ages(sid, m, now),
                        down_from=m.down_from if _hidden(m) is DOWN else None,
                        units=units,
                        condition=None if _hidden(m) is DOWN else self.condition.features(sid, i, now),
                        stopped_from=m.stopped_from if m.state is PLANNED_STOP else None,
                        stopped_since_h=m.stop_since if m.state is PLANNED_STOP else math.nan,
                        began_h=m.began if _hidden(m) is not None else math.nan,
                        repair_mode=m.mode if _hidden(m) is DOWN else "",
                        since_changeover=m.changed,
                    )
                )
            machines[sid] = tuple(out)
        stores = {}
        for sid, s in self._stores.items():
            occupancy = s.occupancy or 0
            entries = [(float(e[0]), int(e[1])) for e in s.entries]
            held = sum(u for _, u in entries)
            if held > occupancy and entries:  # the oldest kept entry is partly released already
                t0, u0 = entries[0]
                entries[0] = (t0, u0 - (held - occupancy))
                held = occupancy
            ages: dict[str, float | None] = {
                mode: (now - s.repaired[mode]) if mode in s.repaired else None
                for mode in self._store_modes[sid]
                if mode not in s.faults
            }
            stores[sid] = StoreKnowledge(occupancy, s.ready, tuple(entries), occupancy - held, self._start, dict(s.faults), ages)
        return LineKnowledge(
            time_h=now,
            observed_since_h=self._start,
            machines=machines,
            buffers=dict(self._buffers),
            stores=stores,
            condition_fit=self.condition.fit_if_due(),
        )

    def _ages(self, sid: str, m: _Machine, now: float) -> dict[str, float | None]:
        """Per failure mode of the machine, its age on its basis at ``now`` (None: no repair of it seen)."""
        basis = self._basis[sid]
        working = now - m.working_since if m.state is WORKING and m.working_since == m.working_since else 0.0
        ages: dict[str, float | None] = {}
        for mode in self._modes[sid]:
            end = m.repaired.get(mode)
            if end is None:
                ages[mode] = None
            elif basis[mode] == "calendar":
                ages[mode] = now - end
            else:
                ages[mode] = m.worked[mode] + working
        return ages
