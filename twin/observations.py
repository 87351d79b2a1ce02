"""What a line's history shows of its failures, repairs and cycle times: the observations a calibration fits.

:class:`ObservationBuilder` takes a line's events in time order over a window ``[start_h, end_h]`` (``start_h`` at
construction, ``end_h`` when the result is asked) in one pass, with a few numbers of state per machine, and gives
per station and per failure mode the durations the engine draws, each either complete (observed) or
right-censored. The rules:

- **Modes.** A failure is a ``DOWN`` spell; its mode is the state's reason. A reason that is a failure mode of the
  station in the line file is that mode, on its basis; any other reason (the empty one included) becomes a mode of
  its own with ``known=False`` and the ``calendar`` basis (nothing says it depends on work), so that an engineer
  can add it to the line file.
- **Repairs (TTR).** A repair of a mode lasts from the machine's ``DOWN`` with that reason until it reports
  another state or another reason: complete. A repair still under way at ``end_h`` is right-censored at its length
  so far. A repair already under way when the machine's events begin (its first reported state is ``DOWN``) has an
  unknown start: it gives no TTR observation, but its end is known and starts the mode's clock. (A repair that
  waited for a crew counts its waiting: the events do not tell the two apart.)
- **Failures (TTF).** As the engine measures them, each mode's clock runs from the end of that mode's own last
  repair (another mode's failure does not reset it): an ``operating`` clock counts the machine's ``WORKING`` hours
  (not ``STARVED``, ``BLOCKED``, ``DOWN`` or any other state), a ``calendar`` clock counts calendar hours. A clock
  ends, complete, at the next ``DOWN`` with the mode's reason; a clock running at ``end_h`` is right-censored
  there (a mode under repair at ``end_h`` has no running clock, only its censored repair). **Left truncation:** a
  mode's first clock on a machine starts at the end of the first repair of it seen in the window; before that the
  clock's start is unknown (it began before the window), so the stretch up to the first failure seen is not an
  observation, neither complete nor censored. (Counting it as complete would bias the fit towards short times,
  counting it from the window's start would understate every one of them.) A calendar failure that falls due while
  the machine is down strikes when it is up again: its clock includes that wait, as the history shows it.
- **Machine states.** A machine's state is unknown until its first ``StateChanged``: nothing before it counts
  (no working hours, no clock, no repair), and completions reported before it do not count towards the cycle
  time (they do count as processed). A report that repeats the machine's state and reason (a heartbeat) changes
  nothing; the reason of a state other than ``DOWN`` is ignored. SETUP and PLANNED_STOP are not working: an
  ``operating`` clock stands still in them, as the engine's does.
- **Planned stops.** The engine (and a plant) goes on repairing a machine behind a planned stop and shows it DOWN
  again when the stop ends if the repair is not done: a ``DOWN`` with the same reason right after the stop is the
  same repair going on (not a new failure). A repair that a stop hid and that was done when it ended (the machine
  shows another state) ended some time in the stop: its TTR is right-censored at its length up to the stop's start,
  and the mode's next clock starts at the stop's end for an ``operating`` mode (the machine did not work in the
  stop) and is not observed for a ``calendar`` one (its start is not known). A ``DOWN`` that a machine shows when
  a stop ends, not under repair before it, is a failure that struck in the stop: it counts as a failure, its repair
  gives no TTR (its start is not known, only its end, which starts the mode's clock), and the mode's running clock
  is right-censored at the stop's start.
- **Store faults.** A store (delay station) reports its faults as ``StateChanged`` with the failure mode's index as
  the machine: ``DOWN`` at the fault, ``WORKING`` at its repair. Each mode is a "machine" of its own with a calendar
  clock (a store's failure clock always runs), observed by the same rules; a store has no working hours or cycle
  time.
- **Cycle time.** In the line file a process station's ``cycle_time`` is per unit (transfer lots included: a lot of
  ``n`` takes ``n`` unit cycles) or, with ``batch_size``, per batch (as ``twin.kpis`` reads it: ideal hours per
  unit = mean / (batch_size or 1)). So ``cycle_time_h`` = working machine-hours x (batch_size or 1) / units
  processed (good + scrap). To count only work whose units are counted, each machine's working hours are taken
  between its first and its last completion seen after its state is known, and the units of its completions after
  the first: the work on the first counted completion's units may have begun before the machine's state was known,
  and the work at ``end_h`` is on units not yet completed. (A batch station that starts partial batches on its
  timeout takes one batch cycle for fewer units: its estimate is then high by the ratio of full to mean fill.)
  ``working_h``, ``good``, ``scrap`` and ``processed`` are the totals over the whole window (working hours from each
  machine's first state on, up to ``end_h``). Delay stations (stores) have no machines' states: only their counts.

The durations of a mode come out in two arrays each (``durations`` in hours, ``observed``: True = complete, False =
right-censored): the complete ones in the order they ended, then the censored ones (those a planned stop censored,
in the order it ended, then those running at ``end_h`` in machine order). Events must
come in time order, within the window, from the line's own stations and machines; anything else is an
:class:`ObservationError` that names it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from twin.errors import TwinError
from twin.events import Event, MachineState, StateChanged, UnitsCompleted
from twin.schema import Line

__all__ = ["LineObservations", "ModeObservations", "ObservationBuilder", "ObservationError", "StationObservations"]

WORKING, DOWN, PLANNED_STOP = MachineState.WORKING, MachineState.DOWN, MachineState.PLANNED_STOP
NAN = math.nan

Basis = Literal["operating", "calendar"]


class ObservationError(TwinError, ValueError):
    """Events that cannot be observations of the line: out of time order, outside the window, or from a station or
    machine the line file does not have (the message names it)."""


def _frozen(values: list[float] | list[bool], dtype: type[np.float64] | type[np.bool_]) -> npt.NDArray[Any]:
    a: npt.NDArray[Any] = np.asarray(values, dtype=dtype)
    a.setflags(write=False)  # the records are immutable: so are their arrays
    return a


@dataclass(frozen=True, eq=False)
class ModeObservations:
    """One failure mode of one station (all its machines pooled): its times to failure and to repair.

    ``*_durations`` are hours (TTF on the mode's basis), ``*_observed`` says which are complete (True) and which
    right-censored (False); see the module docstring for the rules.
    """

    station: str
    mode: str
    """The failure mode's name: the ``DOWN`` reason."""
    basis: Basis
    known: bool
    """Whether the mode is in the line file (False: a reason seen only in the history; its basis is ``calendar``)."""
    ttf_durations: npt.NDArray[np.float64]
    ttf_observed: npt.NDArray[np.bool_]
    ttr_durations: npt.NDArray[np.float64]
    ttr_observed: npt.NDArray[np.bool_]
    failures: int
    """Failures (``DOWN`` spells of the mode) seen to begin in the window, including those whose TTF is not an
    observation (the first on each machine: left-truncated)."""
    censored: int
    """Right-censored TTF observations: the mode's clocks running at the window's end, or cut by a planned stop."""

    @property
    def ttf_complete(self) -> int:
        """Complete TTF observations."""
        return int(self.ttf_observed.sum())

    @property
    def ttr_complete(self) -> int:
        """Complete TTR observations."""
        return int(self.ttr_observed.sum())

    @property
    def ttr_censored(self) -> int:
        """Repairs under way at the window's end (right-censored TTR observations)."""
        return int(self.ttr_observed.size - self.ttr_observed.sum())


@dataclass(frozen=True)
class StationObservations:
    """One station over the window: its counts, working hours, cycle time and failure modes."""

    station: str
    good: int
    scrap: int
    processed: int
    """good + scrap: every unit the station finished in the window."""
    working_h: float
    """Machine-hours in ``WORKING`` over the window (from each machine's first reported state)."""
    cycle_working_h: float
    """Machine-hours of work on ``cycle_units``: per machine, between its first and last completion seen."""
    cycle_units: int
    """Units (good + scrap) of each machine's completions after its first one seen (with its state known)."""
    cycle_time_h: float | None
    """Estimated mean of the line file's ``cycle_time``: per unit, or per batch with ``batch_size`` (None: no units
    counted, or a store)."""
    modes: tuple[ModeObservations, ...]
    """The line file's modes in its order (those never seen too), then the unknown ones in the order first seen."""


@dataclass(frozen=True)
class LineObservations:
    """A line's observations over ``[start_h, end_h]``, per station in the line file's order."""

    start_h: float
    end_h: float
    stations: dict[str, StationObservations]

    def mode(self, station: str, mode: str) -> ModeObservations:
        """The observations of failure mode ``mode`` of ``station``."""
        for m in self.stations[station].modes:
            if m.mode == mode:
                return m
        raise KeyError(f"station {station!r} has no failure mode {mode!r} in the line file or the history")


class _Mode:
    """A station's failure mode, pooled over its machines: the complete observations so far."""

    __slots__ = ("basis", "failures", "known", "name", "ttf", "ttf_censored", "ttr", "ttr_censored")

    def __init__(self, name: str, basis: Basis, known: bool) -> None:
        self.name = name
        self.basis: Basis = basis
        self.known = known
        self.ttf: list[float] = []
        self.ttr: list[float] = []
        self.ttf_censored: list[float] = []  # right-censored by a planned stop (module docstring)
        self.ttr_censored: list[float] = []
        self.failures = 0


class _Machine:
    __slots__ = (
        "clocks",
        "down_since",
        "first_done",
        "hidden",
        "last_done",
        "reason",
        "state",
        "stop_since",
        "units",
        "worked",
        "working_since",
    )

    def __init__(self) -> None:
        self.state: MachineState | None = None
        self.reason = ""
        self.worked = 0.0  # working hours booked since the first state (the running spell not included)
        self.working_since = NAN  # the start of the running working spell (NaN: not working)
        self.down_since = NAN  # the start of the repair under way (NaN: none, or its start is unknown)
        # per mode whose repair was seen to end: where its clock started (working hours booked, or the time)
        self.clocks: dict[str, float] = {}
        self.first_done = NAN  # working hours at its first counted completion (NaN: none yet)
        self.last_done = NAN  # ... and at its last
        self.units = 0  # units of its completions after the first
        self.hidden = ""  # in a planned stop: the mode whose repair the stop hides ("": none)
        self.stop_since = NAN  # in a planned stop: when it began


class _Station:
    __slots__ = ("batch", "faults", "good", "machines", "modes", "scrap")

    def __init__(self, machines: int, modes: dict[str, _Mode], batch: int, faults: int = 0) -> None:
        self.machines = [_Machine() for _ in range(machines)]
        self.faults = [_Machine() for _ in range(faults)]
        """A store: one "machine" per failure mode, its faults (module docstring)."""
        self.modes = modes
        self.batch = batch
        self.good = 0
        self.scrap = 0


class ObservationBuilder:
    """Takes a line's events in time order from ``start_h`` on (an observer: call it with each event, or
    :meth:`attach` it to an engine) and gives the observations up to an instant (:meth:`result`); see the module
    docstring for the rules."""

    def __init__(self, line: Line, start_h: float) -> None:
        self.line = line
        self.start_h = float(start_h)
        self._clock = self.start_h
        self._stations: dict[str, _Station] = {}
        self._store_modes: dict[str, list[str]] = {}
        for s in line.stations:
            if s.kind == "process":
                modes = {f.name: _Mode(f.name, f.basis, True) for f in s.failures}
                self._stations[s.id] = _Station(s.machines, modes, s.batch_size or 1)
            else:  # a store's failure clock always runs; it reports counts and faults, no machine's states
                modes = {f.name: _Mode(f.name, "calendar", True) for f in s.failures}
                self._stations[s.id] = _Station(0, modes, 1, faults=len(s.failures))
                self._store_modes[s.id] = [f.name for f in s.failures]
        self._handlers: dict[type, Callable[..., None]] = {StateChanged: self._state, UnitsCompleted: self._completed}

    def __call__(self, ev: Event) -> None:
        """Take one event (others than ``StateChanged`` and ``UnitsCompleted`` are ignored)."""
        handler = self._handlers.get(type(ev))
        if handler is not None:
            handler(*ev)

    def attach(self, engine: Any) -> None:
        """Take ``engine``'s state changes and completions as fields, before it runs
        (``twin.engine.Engine.subscribe_fields``: no event objects are made)."""
        for kind, handler in self._handlers.items():
            engine.subscribe_fields(kind, handler)

    # -- events ---------------------------------------------------------------------------------------------
    def _tick(self, t: float) -> None:
        if t < self._clock:
            where = "before the window's start" if t < self.start_h else f"after one at t={self._clock} h"
            raise ObservationError(f"an event at t={t} h came {where}: give the events in time order from start_h")
        self._clock = t

    def _machine(self, sid: str, idx: int) -> _Machine:
        st = self._stations.get(sid)
        if st is None:
            raise ObservationError(f"station {sid!r} is not in line {self.line.name!r}")
        if not 0 <= idx < len(st.machines):
            raise ObservationError(f"station {sid!r} has {len(st.machines)} machine(s) in the line file: no machine {idx}")
        return st.machines[idx]

    def _mode(self, sid: str, reason: str) -> _Mode:
        modes = self._stations[sid].modes
        mode = modes.get(reason)
        if mode is None:
            mode = modes[reason] = _Mode(reason, "calendar", False)
        return mode

    def _state(self, t: float, sid: str, idx: int, state: MachineState, reason: str) -> None:
        self._tick(t)
        store = self._store_modes.get(sid)
        if store is not None:
            if not 0 <= idx < len(store):
                raise ObservationError(f"store {sid!r} has {len(store)} failure mode(s) in the line file: no mode {idx}")
            # a store's fault: its mode is the one of that index; any other state is its repair
            m = self._stations[sid].faults[idx]
            state, reason = (DOWN, store[idx]) if state is DOWN else (WORKING, "")
        else:
            m = self._machine(sid, idx)
        if state is not DOWN:
            reason = ""  # only a DOWN's reason names a failure mode
        if state is m.state and reason == m.reason:
            return  # a heartbeat
        prev = m.state
        if prev is PLANNED_STOP:
            self._stop_ends(sid, m, t, state, reason)
        if prev is WORKING:
            m.worked += t - m.working_since
            m.working_since = NAN
        elif prev is DOWN and state is PLANNED_STOP:
            m.hidden, m.stop_since = m.reason, t  # the repair goes on behind the stop
        elif prev is DOWN:
            # the repair of m.reason ends: its length if its start was seen, and the mode's clock starts again
            mode = self._mode(sid, m.reason)
            if m.down_since == m.down_since:
                mode.ttr.append(t - m.down_since)
            m.clocks[m.reason] = m.worked if mode.basis == "operating" else t
            m.down_since = NAN
        if state is PLANNED_STOP and prev is not PLANNED_STOP and prev is not DOWN:
            m.stop_since = t
        resumed = prev is PLANNED_STOP and state is DOWN and reason == m.hidden
        if state is DOWN and not resumed:
            mode = self._mode(sid, reason)
            if prev is not None:
                # a failure seen to begin (a first state DOWN is a repair of unknown start; one shown as a stop ends
                # struck in the stop: its start is not known either)
                mode.failures += 1
                m.down_since = t if prev is not PLANNED_STOP else NAN
            start = m.clocks.pop(reason, NAN)  # under repair, the mode has no running clock
            if start == start:
                if prev is PLANNED_STOP:  # it ran at least until the stop began
                    mode.ttf_censored.append((m.worked if mode.basis == "operating" else m.stop_since) - start)
                else:
                    mode.ttf.append((m.worked if mode.basis == "operating" else t) - start)
        elif state is WORKING:
            m.working_since = t
        if state is not PLANNED_STOP:
            m.hidden = ""
        m.state, m.reason = state, reason

    def _stop_ends(self, sid: str, m: _Machine, t: float, state: MachineState, reason: str) -> None:
        """A planned stop of machine ``m`` ends at ``t`` (it shows ``state``): a repair it hid that is done has ended
        some time in the stop (module docstring)."""
        if not m.hidden or (state is DOWN and reason == m.hidden):
            return  # nothing hidden, or the same repair goes on
        mode = self._mode(sid, m.hidden)
        if m.down_since == m.down_since:
            mode.ttr_censored.append(m.stop_since - m.down_since)
        if mode.basis == "operating":
            m.clocks[m.hidden] = m.worked  # the machine did not work in the stop: its clock starts now
        m.down_since = NAN
        m.hidden = ""

    def _completed(self, t: float, sid: str, idx: int, good: int, scrap: int) -> None:
        self._tick(t)
        st = self._stations.get(sid)
        if st is None:
            raise ObservationError(f"station {sid!r} is not in line {self.line.name!r}")
        st.good += good
        st.scrap += scrap
        if not st.machines:
            return  # a store: counts only
        m = self._machine(sid, idx)
        if m.state is None:
            return  # its state is not known yet: neither is the work on these units
        worked = m.worked + (t - m.working_since if m.state is WORKING else 0.0)
        if m.first_done != m.first_done:
            m.first_done = worked  # the work on these units may have begun before the state was known
        else:
            m.units += good + scrap
        m.last_done = worked

    # -- result ---------------------------------------------------------------------------------------------
    def result(self, end_h: float) -> LineObservations:
        """The observations of the window ``[start_h, end_h]`` from the events taken so far (none may come after
        ``end_h``); the running clocks and repairs are censored at ``end_h``. The builder can go on taking events."""
        if end_h < self._clock:
            raise ObservationError(f"the window's end {end_h} h is before the last event taken, at {self._clock} h")
        stations: dict[str, StationObservations] = {}
        for s in self.line.stations:
            st = self._stations[s.id]
            # the censored observations at end_h, per mode: clocks running, repairs under way
            ttf_cens: dict[str, list[float]] = {name: [] for name in st.modes}
            ttr_cens: dict[str, list[float]] = {name: [] for name in st.modes}
            working = cycle_working = 0.0
            units = 0
            for name, mode in st.modes.items():
                ttf_cens[name] += mode.ttf_censored
                ttr_cens[name] += mode.ttr_censored
            for k, m in enumerate((*st.machines, *st.faults)):
                worked = m.worked + (end_h - m.working_since if m.state is WORKING else 0.0)
                if k < len(st.machines):  # a store's faults are no work
                    working += worked
                for name, start in m.clocks.items():
                    ttf_cens[name].append((worked if st.modes[name].basis == "operating" else end_h) - start)
                repairing = m.reason if m.state is DOWN else m.hidden if m.state is PLANNED_STOP else ""
                if repairing and m.down_since == m.down_since:
                    ttr_cens[repairing].append(end_h - m.down_since)
                if m.units:
                    cycle_working += m.last_done - m.first_done
                    units += m.units
            modes = tuple(
                ModeObservations(
                    station=s.id,
                    mode=mode.name,
                    basis=mode.basis,
                    known=mode.known,
                    ttf_durations=_frozen(mode.ttf + ttf_cens[name], np.float64),
                    ttf_observed=_frozen([True] * len(mode.ttf) + [False] * len(ttf_cens[name]), np.bool_),
                    ttr_durations=_frozen(mode.ttr + ttr_cens[name], np.float64),
                    ttr_observed=_frozen([True] * len(mode.ttr) + [False] * len(ttr_cens[name]), np.bool_),
                    failures=mode.failures,
                    censored=len(ttf_cens[name]),
                )
                for name, mode in st.modes.items()
            )
            cycle = cycle_working * st.batch / units if units and st.machines else None
            stations[s.id] = StationObservations(
                station=s.id,
                good=st.good,
                scrap=st.scrap,
                processed=st.good + st.scrap,
                working_h=working,
                cycle_working_h=cycle_working,
                cycle_units=units,
                cycle_time_h=cycle,
                modes=modes,
            )
        return LineObservations(start_h=self.start_h, end_h=float(end_h), stations=stations)
