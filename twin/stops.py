"""Why a line stops: the downtime Pareto of its stations, and each stop of a station traced back to its cause.

Both answers are pure functions of the state events over a window ``[start_h, end_h)``: ``StateChanged`` of
process stations and of stores (a store's faults: the failure mode's index as the machine, DOWN at the fault and
WORKING at its repair), ``StoreOccupancy`` of delay stations and, on a line with merges, ``BufferLevel`` of the
buffers a merge station takes from (other events are ignored, so an engine's whole event stream will do). The
events come in time order, led by each machine's and store's state and each such buffer's level at the window
start: an event before ``start_h`` only sets the state the window begins in. ``LiveLine.state_events`` gives
exactly that for any window of a live line's history. A machine that has not reported counts as STARVED (as in
the engine's snapshot) and a store that has not reported as empty.

Downtime Pareto (:func:`downtime_pareto`). Per station, the machine-hours in the window spent DOWN, in SETUP or
in a PLANNED_STOP, per state and reason (an empty reason is reported as ``"unspecified"``), and the number of
stops: a machine's stretch in one state with one reason counts once if any of it lies in the window (one already
running at the window start counts; one reported and left at the same instant does not). A store's faults count
as DOWN with their failure mode as the reason, for the hours each lasted (one "machine" per failure mode, whatever
share of the positions it takes out of use). Entries are sorted by hours, largest first, with their share of the
station's total and the cumulative share; the line-wide Pareto ranks the same entries across stations against the
line's total.

Stop attribution (:func:`attribute_stops`). A station's summary state is that of ``LiveLine.status``
(one rule, ``twin.status.summary_state`` and ``twin.status.summary_reason``):

- a process station is WORKING while any of its machines works; otherwise it is in the most common state of its
  machines, ties going to DOWN, BLOCKED, STARVED, SETUP, PLANNED_STOP in that order. So a station is down only
  if its down machines are at least as many as those idle for any other reason: one broken machine among many
  starved ones is not why the station stands, the others would stand as well. Its reason is the one most of its
  machines in that state give (ties: the first in alphabetical order; machines that give none are not counted);
  a starved merge station's reason is the input its machines wait for (the engine names the first input short).
- a delay station (``twin.status.store_summary``) is BLOCKED while it holds ready units at its exit, DOWN while a
  fault has positions out of use and its intake waits for room (the reason: that fault's mode), WORKING while units
  dwell, STARVED while empty.

Several events at one instant leave the station in the state after the last of them. A station is *stopped*
while its summary is not WORKING, and a *stop* is a maximal stretch of that (never of zero length), clipped to
the window. Each stop of the chosen station (default: the last, the line's output) is traced from its start (a
stop running at the window start: from the window start), looking at one station at one instant at a time:

1. a station DOWN, in SETUP or in a PLANNED_STOP is the cause, with its reason (its failure mode, its changeover,
   ``off_shift``, ``break``, ``holiday`` or the planned stop's name): changeovers and planned stops are causes of
   their own, as breakdowns are;
2. a STARVED station leads to its input (``Line.inputs``): a branch start's cause is ``supply``, the line's input;
   a merge station leads to the input its starved state names; if it names none the line knows, to the input whose
   buffer (``BufferLevel``) held less than one unit's worth at that instant, else to its first input. A BLOCKED
   station leads to the station it feeds (``Line.consumer``; the last station: ``shipping``, the line's exit);
3. if that neighbour is stopped at the same instant, the trace goes on from it;
4. if it is working, the trace goes on from the neighbour's most recent stop that ended after the current
   station last began working (a stop whose effect still lasts through a buffer it emptied or filled), at the
   last instant of that stop; with no such stop the neighbour is the cause as a speed loss (``slow``).

A trace looks at each station at most once, so it takes at most one step per station. When the station it
would look at next is already on its chain, the two wait on each other: starved and blocked states naming each
other at one instant (which consistent data never shows), or a station that waits on a neighbour whose own wait,
ended only just before, was for this station (a batch machine and the machine feeding it one unit at a time).
The trace stops there and the station it has reached is the cause, as ``slow``: it kept the other waiting last.

Limitations. Nothing before the window is seen but the state it begins in: a stop running at the window start
is traced from there, and no trace follows a stop that ended before the window (start it earlier to see them).
A delay station that holds units still in their dwell counts as working, so a gap in its content left by an
upstream stop is traced to that stop only if the store ran empty; otherwise the store is the cause, as ``slow``.
A stop has the one cause found at its start, however long it lasts: a short wait for a slow station that runs on
into that station's breakdown counts as ``slow``.

Cost: one pass over the events with a constant amount of work per event, then per stop of the chosen station a
few binary searches per station of the line at most.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from twin.events import BufferLevel, Event, MachineState, StateChanged, StoreOccupancy
from twin.schema import Line
from twin.status import store_summary, summary_reason, summary_state

__all__ = [
    "UNSPECIFIED",
    "AttributedStop",
    "CauseKind",
    "CauseTotal",
    "DowntimeEntry",
    "DowntimePareto",
    "StationDowntime",
    "StopAttribution",
    "TraceStep",
    "attribute_stops",
    "downtime_pareto",
]

UNSPECIFIED = "unspecified"
"""The reason reported for a stop whose events gave none."""

WORKING, STARVED, BLOCKED = MachineState.WORKING, MachineState.STARVED, MachineState.BLOCKED
DOWN, SETUP, PLANNED_STOP = MachineState.DOWN, MachineState.SETUP, MachineState.PLANNED_STOP


class CauseKind(StrEnum):
    """What made a station stop."""

    DOWN = "down"
    """The cause station was down; the reason is its failure mode."""
    SETUP = "setup"
    """The cause station was in a setup (a changeover)."""
    PLANNED_STOP = "planned_stop"
    """The cause station was in a planned stop (a break, planned maintenance)."""
    SLOW = "slow"
    """The cause station was working, but too slowly to keep its neighbour going: a speed loss."""
    SUPPLY = "supply"
    """A branch start (the first station of a serial line) ran out of material: the line's input (no cause station)."""
    SHIPPING = "shipping"
    """The last station could not ship: the line's exit (no cause station)."""


_OWN_KIND = {DOWN: CauseKind.DOWN, SETUP: CauseKind.SETUP, PLANNED_STOP: CauseKind.PLANNED_STOP}
_REASONED = (DOWN, SETUP, PLANNED_STOP, STARVED)
"""The states whose reasons a station summary gives (a starved merge station names its short input)."""


# -- results ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DowntimeEntry:
    """Machine-hours ``station`` spent in ``state`` for ``reason`` in a window, over how many stops, and its share.

    ``share`` is of the total of the Pareto the entry belongs to (its station's, or the line's) and
    ``cumulative_share`` that of this entry and every larger one before it.
    """

    station: str
    state: MachineState
    reason: str
    hours: float
    stops: int
    share: float
    cumulative_share: float


@dataclass(frozen=True)
class StationDowntime:
    """One station's downtime Pareto: its machine-hours down, in setup or in planned stops, and the entries, largest first."""

    station: str
    hours: float
    entries: tuple[DowntimeEntry, ...]


@dataclass(frozen=True)
class DowntimePareto:
    """The downtime Pareto of a line over ``[start_h, end_h)``: per station (every station, in flow order) and line-wide."""

    start_h: float
    end_h: float
    hours: float
    stations: dict[str, StationDowntime]
    line: tuple[DowntimeEntry, ...]


@dataclass(frozen=True)
class TraceStep:
    """A station a trace looked at: its summary ``state`` at instant ``t``, a state it had been in since ``since_h``.

    On a stop the trace went back to, ``t`` is that stop's end and ``state`` the state it ended in (held up to,
    not at, ``t``).
    """

    station: str
    state: MachineState
    t: float
    since_h: float


@dataclass(frozen=True)
class AttributedStop:
    """One stop of ``station`` over ``[start_h, end_h)`` (clipped to the window) and its cause.

    ``cause_station`` is None for ``supply`` and ``shipping``. ``cause_reason`` is the failure mode or stop
    reason for ``down``, ``setup`` and ``planned_stop`` (``"unspecified"`` when none was given) and empty for the
    other kinds. ``chain`` holds the steps of the trace, the stopped station first and the cause (or, for supply
    and shipping, the station at the line's edge) last.
    """

    station: str
    start_h: float
    end_h: float
    duration_h: float
    cause_station: str | None
    cause_kind: CauseKind
    cause_reason: str
    chain: tuple[TraceStep, ...]


@dataclass(frozen=True)
class CauseTotal:
    """The stops one cause explains: their hours and count, with the share of the stopped time and the cumulative share."""

    station: str | None
    kind: CauseKind
    reason: str
    hours: float
    stops: int
    share: float
    cumulative_share: float


@dataclass(frozen=True)
class StopAttribution:
    """Every stop of ``station`` in ``[start_h, end_h)`` with its cause, and the causes ranked by the hours they explain.

    ``stopped_h`` is the station's stopped time in the window: the sum of the stops' durations and of the
    causes' hours (each stop has exactly one cause).
    """

    station: str
    start_h: float
    end_h: float
    stopped_h: float
    stops: tuple[AttributedStop, ...]
    causes: tuple[CauseTotal, ...]


# -- the replay ------------------------------------------------------------------------------------------------
class _Timeline:
    """A station's summary state as a step function: entry k holds from ``times[k]`` until ``times[k + 1]``."""

    __slots__ = ("reasons", "states", "stop_ends", "stop_starts", "times")

    def __init__(self, t: float, state: MachineState, reason: str) -> None:
        self.times = [t]
        self.states = [state]
        self.reasons = [reason]
        self.stop_starts: list[float] = []
        self.stop_ends: list[float] = []

    def push(self, t: float, state: MachineState, reason: str) -> None:
        times, states, reasons = self.times, self.states, self.reasons
        if times[-1] == t:
            # Another event at the same instant: only the state after the last one holds for any time.
            times.pop()
            states.pop()
            reasons.pop()
            if not times:
                times.append(t)
                states.append(state)
                reasons.append(reason)
                return
        if states[-1] == state and reasons[-1] == reason:
            return
        times.append(t)
        states.append(state)
        reasons.append(reason)

    def close(self, end: float) -> None:
        """Find the stops: maximal runs of entries not WORKING (the last one running to ``end``)."""
        starts, ends = self.stop_starts, self.stop_ends
        stopped = False
        for t, state in zip(self.times, self.states, strict=True):
            if state == WORKING:
                if stopped:
                    ends.append(t)
                    stopped = False
            elif not stopped:
                starts.append(t)
                stopped = True
        if stopped:
            ends.append(end)
        if starts and starts[-1] >= end:  # an empty window: its only entry is no stop
            starts.pop()
            ends.pop()

    def at(self, t: float, just_before: bool) -> int:
        """The entry holding at ``t``, or just before ``t``."""
        return (bisect_left(self.times, t) if just_before else bisect_right(self.times, t)) - 1

    def stop_of(self, k: int) -> int:
        """The stop entry ``k`` lies in (a stopped entry), or the last one before it (a working entry); -1: none."""
        return bisect_right(self.stop_starts, self.times[k]) - 1


class _Machines:
    """A process station's machines as the replay follows them, with counts that give its summary without a scan."""

    __slots__ = ("counts", "reasons", "since", "states", "why")

    def __init__(self, n: int) -> None:
        self.states = [STARVED] * n  # a machine that has not reported counts as starved
        self.why = [""] * n
        self.since = [-math.inf] * n
        self.counts = dict.fromkeys(MachineState, 0)
        self.counts[STARVED] = n
        self.reasons: dict[MachineState, dict[str, int]] = {s: {} for s in _REASONED}
        self.reasons[STARVED][""] = n

    def summary(self) -> tuple[MachineState, str]:
        # the one station-summary rule of the live status (twin.status)
        best = summary_state(self.counts)
        assert best is not None  # every machine counts, one that has not reported as STARVED
        if best not in self.reasons:
            return best, ""
        return best, summary_reason(self.reasons[best])


class _Store:
    """A store as the replay follows it: its latest occupancy and its faults under repair (mode -> since)."""

    __slots__ = ("faults", "occupancy")

    def __init__(self) -> None:
        self.occupancy = (0, 0, False)  # dwelling, held, intake blocked: a store that has not reported is empty
        self.faults: dict[str, float] = {}

    def summary(self) -> tuple[MachineState, str]:
        return store_summary(*self.occupancy, self.faults)


class _Levels:
    """A buffer's level as a step function (the buffers merge stations take from)."""

    __slots__ = ("levels", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.levels: list[int] = []

    def push(self, t: float, level: int) -> None:
        if self.times and self.times[-1] == t:
            self.levels[-1] = level
        else:
            self.times.append(t)
            self.levels.append(level)

    def at(self, t: float) -> int | None:
        """The level at ``t`` (None: not reported yet)."""
        k = bisect_right(self.times, t) - 1
        return self.levels[k] if k >= 0 else None


class _Replay:
    """One pass over the events: per-machine stop hours (the Pareto) and per-station summary timelines (the trace)."""

    def __init__(self, line: Line, start_h: float, end_h: float) -> None:
        if not end_h >= start_h:
            raise ValueError(f"end_h ({end_h} h) is before start_h ({start_h} h)")
        self.line = line
        self.start, self.end = start_h, end_h
        self.ids = [s.id for s in line.stations]
        self.index = {sid: i for i, sid in enumerate(self.ids)}
        self.machines: dict[str, tuple[int, _Machines]] = {
            s.id: (i, _Machines(s.machines)) for i, s in enumerate(line.stations) if s.kind == "process"
        }
        self.stores = {
            s.id: (i, _Store(), [f.name for f in s.failures]) for i, s in enumerate(line.stations) if s.kind == "delay"
        }
        # the buffers merge stations take from: their levels tell which input ran short when the state does not
        merging = [s.id for s in line.stations if len(line.inputs[s.id]) > 1]
        self.levels = {inp.station: _Levels() for sid in merging for inp in line.inputs[sid]}
        self.timelines: list[_Timeline] = []
        for s in line.stations:
            initial = self.machines[s.id][1].summary() if s.kind == "process" else (STARVED, "")
            self.timelines.append(_Timeline(start_h, *initial))
        # (station index, state, reason) -> [machine-hours, stops]
        self.downtime: dict[tuple[int, MachineState, str], list[float]] = {}

    def _refuse(self, ev: object) -> ValueError:
        return ValueError(f"not a state event of line {self.line.name!r} (unknown station, store, machine or state): {ev!r}")

    def run(self, events: Iterable[Event]) -> None:
        start, end = self.start, self.end
        last = -math.inf
        dispatch: dict[type, Callable[[Any, float], None]] = {
            StateChanged: self._on_state,
            StoreOccupancy: self._on_store,
            BufferLevel: self._on_level,
        }
        for ev in events:
            on = dispatch.get(type(ev))
            if on is None:
                continue
            t = ev[0]
            if t < last:
                raise ValueError(f"events must come in time order: t={t} h after t={last} h: {ev!r}")
            last = t
            if t >= end:
                break
            on(ev, t if t > start else start)  # before the window, events only set the state it begins in
        for i, st in self.machines.values():
            for m, state in enumerate(st.states):
                if state in _OWN_KIND:
                    self._stopped(i, st, m, end)
        for i, store, _modes in self.stores.values():
            for mode, since in store.faults.items():
                self._repaired(i, mode, since, end)
        for timeline in self.timelines:
            timeline.close(end)

    def _on_state(self, ev: StateChanged, tc: float) -> None:
        t, sid, m, state, reason = ev
        found = self.machines.get(sid)
        if found is None:
            self._on_fault(ev, tc)
            return
        i, st = found
        if not 0 <= m < len(st.states) or state not in st.counts:
            raise self._refuse(ev)
        prev, prev_reason = st.states[m], st.why[m]
        if prev == state and prev_reason == reason:
            return  # a repeated report: the state goes on
        if prev in _OWN_KIND:
            self._stopped(i, st, m, t)
        if prev in st.reasons:
            left = st.reasons[prev]
            left[prev_reason] -= 1
            if not left[prev_reason]:
                del left[prev_reason]
        if state in st.reasons:
            entered = st.reasons[state]
            entered[reason] = entered.get(reason, 0) + 1
        st.counts[prev] -= 1
        st.counts[state] += 1
        st.states[m], st.why[m], st.since[m] = state, reason, t
        self.timelines[i].push(tc, *st.summary())

    def _stopped(self, i: int, st: _Machines, m: int, t: float) -> None:
        """Machine ``m`` leaves its stop state at ``t`` (or the window ends): count its part in the window."""
        since = st.since[m]
        a = since if since > self.start else self.start
        if t > a:
            acc = self.downtime.setdefault((i, st.states[m], st.why[m]), [0.0, 0])
            acc[0] += t - a
            acc[1] += 1

    def _on_fault(self, ev: StateChanged, tc: float) -> None:
        """A store's failure mode ``ev.machine`` faulted (DOWN) or was repaired (any other state)."""
        t, sid, j, state, _reason = ev
        found = self.stores.get(sid)
        if found is None or not 0 <= j < len(found[2]):
            raise self._refuse(ev)
        i, store, modes = found
        mode = modes[j]
        if state is DOWN:
            if mode in store.faults:
                return  # a repeated report
            store.faults[mode] = t
        else:
            since = store.faults.pop(mode, None)
            if since is None:
                return
            self._repaired(i, mode, since, t)
        self.timelines[i].push(tc, *store.summary())

    def _repaired(self, i: int, mode: str, since: float, t: float) -> None:
        """A store's fault of ``mode`` since ``since`` ends at ``t`` (or the window ends): count its part in the window."""
        a = since if since > self.start else self.start
        if t > a:
            acc = self.downtime.setdefault((i, DOWN, mode), [0.0, 0])
            acc[0] += t - a
            acc[1] += 1

    def _on_store(self, ev: StoreOccupancy, tc: float) -> None:
        _t, sid, dwelling, held, intake = ev
        found = self.stores.get(sid)
        if found is None:
            raise self._refuse(ev)
        i, store, _modes = found
        store.occupancy = (dwelling, held, intake)
        self.timelines[i].push(tc, *store.summary())

    def _on_level(self, ev: BufferLevel, tc: float) -> None:
        levels = self.levels.get(ev.station)
        if levels is not None:  # only the buffers merge stations take from are followed
            levels.push(tc, ev.level)


# -- the Pareto ------------------------------------------------------------------------------------------------
def _ranked(items: list[tuple[int, MachineState, str, float, int]], ids: list[str]) -> tuple[tuple[DowntimeEntry, ...], float]:
    items.sort(key=lambda x: (-x[3], -x[4], x[0], x[1], x[2]))
    total = math.fsum(x[3] for x in items)
    entries: list[DowntimeEntry] = []
    running = 0.0
    for i, state, reason, hours, stops in items:
        running += hours
        entries.append(
            DowntimeEntry(
                station=ids[i],
                state=state,
                reason=reason or UNSPECIFIED,
                hours=hours,
                stops=stops,
                share=hours / total if total > 0 else 0.0,
                cumulative_share=min(running / total, 1.0) if total > 0 else 0.0,
            )
        )
    return tuple(entries), total


def downtime_pareto(events: Iterable[Event], line: Line, start_h: float, end_h: float) -> DowntimePareto:
    """The downtime Pareto of ``line`` over ``[start_h, end_h)``: machine-hours and stops per station, state and reason.

    ``events`` in time order, led by each machine's state at ``start_h`` (see the module docstring). Raises
    ``ValueError`` if ``end_h < start_h``, for events out of order, or for one naming a station or machine
    ``line`` does not have.
    """
    replay = _Replay(line, start_h, end_h)
    replay.run(events)
    ids = replay.ids
    per_station: dict[int, list[tuple[int, MachineState, str, float, int]]] = {i: [] for i in range(len(ids))}
    everything: list[tuple[int, MachineState, str, float, int]] = []
    for (i, state, reason), (hours, stops) in replay.downtime.items():
        item = (i, state, reason, hours, int(stops))
        per_station[i].append(item)
        everything.append(item)
    stations: dict[str, StationDowntime] = {}
    for i, items in per_station.items():
        entries, total = _ranked(items, ids)
        stations[ids[i]] = StationDowntime(station=ids[i], hours=total, entries=entries)
    line_entries, line_total = _ranked(everything, ids)
    return DowntimePareto(start_h=start_h, end_h=end_h, hours=line_total, stations=stations, line=line_entries)


# -- the attribution -------------------------------------------------------------------------------------------
class _Flow:
    """Where a trace goes from a station: its inputs (index, units a job takes from it) and the station it feeds."""

    def __init__(self, line: Line, index: dict[str, int], levels: dict[str, _Levels]) -> None:
        inputs, consumer = line.inputs, line.consumer
        self.inputs: list[list[tuple[int, int]]] = []
        self.consumer: list[int | None] = []
        for s in line.stations:
            job = s.batch_size or s.lot
            self.inputs.append([(index[inp.station], inp.per_unit * job) for inp in inputs[s.id]])
            self.consumer.append(index[consumer[s.id]] if s.id in consumer else None)
        self.index = index
        self.ids = list(index)
        self.levels = levels

    def starved_by(self, i: int, reason: str, t: float) -> int | None:
        """The input station a starved station ``i`` waits for at ``t`` (None: the line's supply)."""
        ins = self.inputs[i]
        if not ins:
            return None
        if len(ins) == 1:
            return ins[0][0]
        named = self.index.get(reason)
        if named is not None and any(j == named for j, _need in ins):
            return named
        for j, need in ins:
            levels = self.levels.get(self.ids[j])
            level = levels.at(t) if levels is not None else None
            if level is not None and level < need:
                return j
        return ins[0][0]


def _trace(
    timelines: list[_Timeline], ids: list[str], i: int, t: float, flow: _Flow
) -> tuple[int | None, CauseKind, str, tuple[TraceStep, ...]]:
    """The cause of the stop of station ``i`` that holds at ``t`` (see the module docstring)."""
    just_before = False
    tl = timelines[i]
    k = tl.at(t, just_before)
    chain = [TraceStep(ids[i], tl.states[k], t, tl.times[k])]
    seen = {i}
    while True:
        state = tl.states[k]
        own = _OWN_KIND.get(state)
        if own is not None:
            return i, own, tl.reasons[k] or UNSPECIFIED, tuple(chain)
        nxt = flow.starved_by(i, tl.reasons[k], t) if state == STARVED else flow.consumer[i]
        if nxt is None:
            kind = CauseKind.SUPPLY if state == STARVED else CauseKind.SHIPPING
            return None, kind, "", tuple(chain)
        j = nxt
        if j in seen:
            return i, CauseKind.SLOW, "", tuple(chain)  # they wait on each other: see the module docstring
        near = timelines[j]
        kj = near.at(t, just_before)
        if near.states[kj] == WORKING:
            # Working now: an earlier stop of it may still be felt through the buffer between them, if it ended
            # after this station last began working (the end of this station's previous stop).
            p = tl.stop_of(k)
            began = tl.stop_ends[p - 1] if p > 0 else -math.inf
            q = near.stop_of(kj)
            if q < 0 or not near.stop_ends[q] > began:
                chain.append(TraceStep(ids[j], WORKING, t, near.times[kj]))
                return j, CauseKind.SLOW, "", tuple(chain)
            t, just_before = near.stop_ends[q], True
            kj = near.at(t, just_before)
        seen.add(j)
        i, tl, k = j, near, kj
        chain.append(TraceStep(ids[i], tl.states[k], t, tl.times[k]))


def attribute_stops(
    events: Iterable[Event], line: Line, start_h: float, end_h: float, station: str | None = None
) -> StopAttribution:
    """Every stop of ``station`` (default: the last, the line's output) in ``[start_h, end_h)`` traced to its cause.

    ``events`` in time order, led by each machine's and store's state at ``start_h``; the rules are in the module
    docstring. Raises ``ValueError`` if ``end_h < start_h``, for a station ``line`` does not have, for events out
    of order, or for one naming a station or machine ``line`` does not have.
    """
    sid = line.stations[-1].id if station is None else station
    replay = _Replay(line, start_h, end_h)
    if sid not in replay.index:
        raise ValueError(f"station {sid!r} is not a station of line {line.name!r}")
    replay.run(events)
    i = replay.index[sid]
    timelines, ids = replay.timelines, replay.ids
    flow = _Flow(line, replay.index, replay.levels)
    tl = timelines[i]
    stops: list[AttributedStop] = []
    totals: dict[tuple[int | None, CauseKind, str], list[float]] = {}
    for a, b in zip(tl.stop_starts, tl.stop_ends, strict=True):
        cause, kind, reason, chain = _trace(timelines, ids, i, a, flow)
        stops.append(
            AttributedStop(
                station=sid,
                start_h=a,
                end_h=b,
                duration_h=b - a,
                cause_station=None if cause is None else ids[cause],
                cause_kind=kind,
                cause_reason=reason,
                chain=chain,
            )
        )
        acc = totals.setdefault((cause, kind, reason), [])
        acc.append(b - a)
    stopped = math.fsum(s.duration_h for s in stops)
    edge = {CauseKind.SUPPLY: -1, CauseKind.SHIPPING: len(ids)}
    ranked = sorted(
        ((key, math.fsum(hours), len(hours)) for key, hours in totals.items()),
        key=lambda x: (-x[1], -x[2], edge.get(x[0][1], -1) if x[0][0] is None else x[0][0], x[0][1], x[0][2]),
    )
    causes: list[CauseTotal] = []
    running = 0.0
    for (cause, kind, reason), hours, count in ranked:
        running += hours
        causes.append(
            CauseTotal(
                station=None if cause is None else ids[cause],
                kind=kind,
                reason=reason,
                hours=hours,
                stops=count,
                share=hours / stopped if stopped > 0 else 0.0,
                cumulative_share=min(running / stopped, 1.0) if stopped > 0 else 0.0,
            )
        )
    return StopAttribution(station=sid, start_h=start_h, end_h=end_h, stopped_h=stopped, stops=tuple(stops), causes=tuple(causes))
