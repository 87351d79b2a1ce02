"""The retained history of a live line: its KPI events in compact columns, with KPI checkpoints.

:class:`EventHistory` keeps the events the KPIs need (``StateChanged``, ``UnitsCompleted``, ``BufferLevel``,
``StoreOccupancy``, ``UnitsReleased``) in time order, as columns of machine numbers (``array.array``: times,
kinds, station codes and three integers; the reasons are interned in a table), so a long history is a few
arrays rather than millions of small objects for the garbage collector to walk. It is bounded by time (the
owner cuts it, :meth:`EventHistory.cut_to`) and by a number of events (``max_events``: past it the oldest
eighth is let go, counted in ``trimmed``).

Checkpoints. Every ``checkpoint_h`` hours of history (aligned to multiples of it, skipping stretches without
events) a :class:`Checkpoint` keeps a ``twin.kpis.KpiReducer`` holding the line's state after every event before
its time, with the latest report of each machine and store. A window's KPIs fork the nearest checkpoint at or
before its start and replay only from there; a late event invalidates only the checkpoints after its time, and
the next :meth:`EventHistory.build_checkpoints` rebuilds them from the one before it.

Readers never wait for the writer. One thread (the pipeline) writes; any thread may take a
:class:`HistoryView` (:meth:`EventHistory.view`), an O(1) hand-over of the columns, their length and the
checkpoints under a lock that the writer holds only for O(1) updates and for late inserts. Appends never
disturb a view (it reads only up to its length); a late insert into columns a view holds, or a cut, first
copies them (copy-on-write), so a view stays exactly what it was while its queries run without any lock.
"""

from __future__ import annotations

import copy
import math
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from twin.events import (
    BufferLevel,
    Event,
    MachineState,
    StateChanged,
    StoreOccupancy,
    UnitsCompleted,
    UnitsReleased,
)
from twin.kpis import KpiReducer, RunKpis
from twin.schema import Line

__all__ = ["KPI_EVENTS", "Checkpoint", "EventHistory", "HistoryView"]

KPI_EVENTS = (StateChanged, BufferLevel, UnitsCompleted, StoreOccupancy, UnitsReleased)
"""The event kinds the history keeps."""

_STATE, _DONE, _BUFFER, _STORE, _RELEASED = range(5)
_STATES = tuple(MachineState)
_STATE_CODE = {s: i for i, s in enumerate(_STATES)}


class Checkpoint(NamedTuple):
    """The line's state after every retained event before ``t``: events ``[0, pos)`` of the columns it was made for."""

    t: float
    pos: int
    reducer: KpiReducer
    """Never fed again once made: windows fork it."""
    states: Mapping[tuple[str, int], StateChanged]
    """Each machine's latest report before ``t`` (also from events cut from the history)."""
    stores: Mapping[str, StoreOccupancy]
    """Each store's latest report before ``t``."""


class _Columns:
    """The events as parallel arrays (a: machine, level, dwelling or units; b: state code, good or held; c: reason code,
    scrap or intake blocked)."""

    __slots__ = ("a", "b", "c", "kind", "station", "t")

    def __init__(self, src: _Columns | None = None, start: int = 0, stop: int = 0) -> None:
        if src is None:
            self.t, self.kind, self.station = array("d"), array("b"), array("H")
            self.a, self.b, self.c = array("q"), array("q"), array("q")
        else:
            self.t, self.kind, self.station = src.t[start:stop], src.kind[start:stop], src.station[start:stop]
            self.a, self.b, self.c = src.a[start:stop], src.b[start:stop], src.c[start:stop]

    def nbytes(self) -> int:
        return sum(arr.itemsize * len(arr) for arr in (self.t, self.kind, self.station, self.a, self.b, self.c))


class _Cursor:
    """A reducer following a window as the history grows (the current shift), fed events ``[0, pos)``."""

    __slots__ = ("pos", "reducer")

    def __init__(self, reducer: KpiReducer, pos: int) -> None:
        self.reducer, self.pos = reducer, pos


def _event_at(cols: _Columns, k: int, stations: list[str], reasons: list[str]) -> Event:
    """Event ``k`` of ``cols``."""
    return next(_events(cols, k, k + 1, stations, reasons))


def _events(cols: _Columns, i: int, j: int, stations: list[str], reasons: list[str]) -> Iterator[Event]:
    """Events ``[i, j)`` of ``cols``, as the tuples they were taken as."""
    T, K, S, A, B, C = cols.t, cols.kind, cols.station, cols.a, cols.b, cols.c
    states = _STATES
    for k in range(i, j):
        kind = K[k]
        if kind == _STATE:
            yield StateChanged(T[k], stations[S[k]], A[k], states[B[k]], reasons[C[k]])
        elif kind == _DONE:
            yield UnitsCompleted(T[k], stations[S[k]], A[k], B[k], C[k])
        elif kind == _BUFFER:
            yield BufferLevel(T[k], stations[S[k]], A[k])
        elif kind == _STORE:
            yield StoreOccupancy(T[k], stations[S[k]], A[k], B[k], bool(C[k]))
        else:
            yield UnitsReleased(T[k], A[k])


def _fresh(reducer: KpiReducer) -> KpiReducer:
    """A reducer holding ``reducer``'s line state, to be fed on (or kept) independently of it."""
    return reducer.fork(reducer.time, reducer.time + 1.0)


def _leads(
    cols: _Columns, i: int, j: int, stations: list[str], reasons: list[str], ck: Checkpoint
) -> tuple[dict[tuple[str, int], StateChanged], dict[str, StoreOccupancy]]:
    """The checkpoint's latest reports updated with the state and store events ``[i, j)``."""
    states, stores = dict(ck.states), dict(ck.stores)
    K = cols.kind
    for k in range(i, j):
        kind = K[k]
        if kind in (_STATE, _STORE):
            ev = _event_at(cols, k, stations, reasons)
            if type(ev) is StateChanged:
                states[ev.station, ev.machine] = ev
            else:
                assert type(ev) is StoreOccupancy
                stores[ev.station] = ev
    return states, stores


@dataclass(frozen=True)
class HistoryView:
    """The retained history as it was when the view was taken: query it from any thread, without a lock."""

    cols: _Columns
    n: int
    """Events in the view."""
    start_h: float
    """The earliest time a window may start (the history's cut)."""
    clock_h: float
    """The latest event time when the view was taken."""
    checkpoints: tuple[Checkpoint, ...]
    stations: list[str]
    reasons: list[str]
    """The interned reasons (append-only: every code below the view's length is there)."""
    merge_inputs: tuple[str, ...] = ()
    """The stations whose buffers merge stations take from (their levels join the state events)."""

    def _checkpoint(self, t: float) -> Checkpoint:
        cks = self.checkpoints
        return cks[max(0, bisect_right(cks, t, key=lambda ck: ck.t) - 1)]

    def since(self, t: float) -> HistoryView:
        """This view for windows that start at or after ``t``: the checkpoint at or before ``t`` (the one they fork) is
        its only one and its start, so it pickles with the events from there on only. ``t`` before the history: the view
        itself (its queries refuse such a window)."""
        if t < self.start_h:
            return self
        ck = self._checkpoint(t)
        return HistoryView(self.cols, self.n, ck.t, self.clock_h, (ck,), self.stations, self.reasons, self.merge_inputs)

    def __reduce__(self) -> tuple[type[HistoryView], tuple[object, ...]]:
        # Pickled (a window query sent to another process): no query reads an event before the first checkpoint, nor any
        # after ``n`` (the writer may have appended to the shared columns since), so only those between are copied.
        # Measured on the reference line's 48-h view (93,000 events): since() its start, 3.3 MB, 2.4 ms to pickle and
        # 1.6 ms to load; the whole view with its 48 checkpoints (each a reducer and the latest reports), 3.9 MB and
        # 40 + 180 ms: send a window's view since() its start.
        first = self.checkpoints[0].pos
        cols = _Columns(self.cols, first, self.n)
        checkpoints = tuple(ck._replace(pos=ck.pos - first) for ck in self.checkpoints)
        args = (
            cols,
            self.n - first,
            self.start_h,
            self.clock_h,
            checkpoints,
            list(self.stations),
            list(self.reasons),
            self.merge_inputs,
        )
        return (HistoryView, args)

    def kpis(self, start_h: float, end_h: float | None = None, shares: bool = False) -> RunKpis:
        """The KPIs over ``[start_h, end_h]`` (end: the clock): a ``KpiReducer`` for the window, forked from the nearest
        checkpoint at or before its start and fed the events from there to its end; equal to one attached to the source
        for that window. The window must start inside the history; it may end after the clock, taking the last
        reported states to hold until then. ``shares``: with each station's share of the window as the bottleneck."""
        end = self.clock_h if end_h is None else end_h
        if start_h < self.start_h:
            raise ValueError(f"the window starts at {start_h} h, before the retained history (from {self.start_h} h)")
        if not end > start_h:
            raise ValueError(f"the KPI window must have end_h > start_h, got [{start_h}, {end}]")
        ck = self._checkpoint(start_h)
        reducer = ck.reducer.fork(start_h, end)
        stop = bisect_right(self.cols.t, end, ck.pos, self.n)
        for ev in _events(self.cols, ck.pos, stop, self.stations, self.reasons):
            reducer(ev)
        return reducer.result(shares=shares)

    def state_events(self, start_h: float, end_h: float | None = None) -> list[StateChanged | StoreOccupancy | BufferLevel]:
        """The state events of ``[start_h, end_h)`` (no end: all), led by each machine's latest ``StateChanged`` and each
        store's latest ``StoreOccupancy`` before ``start_h`` at their own times; all in time order. On a line with
        merges, the ``BufferLevel`` events of the buffers merge stations take from too (led by their levels at
        ``start_h``): ``twin.stops`` reads from them which input ran short."""
        if start_h < self.start_h:
            raise ValueError(f"start_h ({start_h} h) is before the retained history (from {self.start_h} h)")
        if end_h is not None and end_h < start_h:
            raise ValueError(f"end_h ({end_h} h) is before start_h ({start_h} h)")
        cols, n = self.cols, self.n
        ck = self._checkpoint(start_h)
        k = bisect_left(cols.t, start_h, ck.pos, n)
        stop = n if end_h is None else bisect_left(cols.t, end_h, k, n)
        states, stores = _leads(cols, ck.pos, k, self.stations, self.reasons, ck)
        merged = self.merge_inputs
        codes = {self.stations.index(sid) for sid in merged}
        K, S = cols.kind, cols.station
        levels: dict[str, BufferLevel] = {}
        if merged:
            # the levels at the checkpoint (from its reducer), then the buffer events up to start_h
            for sid in merged:
                since, level = ck.reducer.buffer_level(sid)
                levels[sid] = BufferLevel(min(since, start_h), sid, int(level))
            for i in range(ck.pos, k):
                if K[i] == _BUFFER and S[i] in codes:
                    ev = _event_at(cols, i, self.stations, self.reasons)
                    assert isinstance(ev, BufferLevel)
                    levels[ev.station] = ev
        out: list[StateChanged | StoreOccupancy | BufferLevel] = sorted(
            [*states.values(), *stores.values(), *levels.values()], key=lambda ev: ev[0]
        )
        for i in range(k, stop):
            kind = K[i]
            if kind in (_STATE, _STORE) or (kind == _BUFFER and S[i] in codes):
                ev = _event_at(cols, i, self.stations, self.reasons)
                assert isinstance(ev, StateChanged | StoreOccupancy | BufferLevel)
                out.append(ev)
        return out

    def events(self, start_h: float, end_h: float) -> Iterator[Event]:
        """The retained events of ``[start_h, end_h)`` in time order."""
        i = bisect_left(self.cols.t, start_h, 0, self.n)
        j = bisect_left(self.cols.t, end_h, i, self.n)
        return _events(self.cols, i, j, self.stations, self.reasons)


class EventHistory:
    """The KPI events of ``line`` from ``begin_h`` on, in compact columns with checkpoints (see the module docstring).

    ``wip0`` is the units in the line at ``begin_h``. One thread calls the methods that change it; :meth:`view`
    may be called from any thread.
    """

    def __init__(
        self, line: Line, begin_h: float, *, wip0: int = 0, max_events: int = 2_000_000, checkpoint_h: float = 1.0
    ) -> None:
        if max_events < 8:
            raise ValueError(f"max_events must be at least 8, got {max_events}")
        if not checkpoint_h > 0:
            raise ValueError(f"checkpoint_h must be positive, got {checkpoint_h}")
        self.line = line
        self.max_events = max_events
        self.checkpoint_h = checkpoint_h
        self._stations = [s.id for s in line.stations]
        self._station_code = {sid: i for i, sid in enumerate(self._stations)}
        self._merge_inputs = tuple(inp.station for ins in line.inputs.values() if len(ins) > 1 for inp in ins)
        self._reasons: list[str] = [""]
        self._reason_code: dict[str, int] = {"": 0}
        self._cols = _Columns()
        self._n = 0
        self._lock = threading.Lock()  # held for O(1) hand-overs, and by the writer while it inserts in place
        self._shared = False  # a view holds the current columns: change them only on a copy
        # A window before the stream: the base checkpoint only keeps the line's state, it accumulates nothing.
        base = KpiReducer(line, begin_h - 2.0, begin_h - 1.0, begin_h=begin_h, wip0=wip0)
        self._checkpoints: tuple[Checkpoint, ...] = (Checkpoint(begin_h, 0, base, {}, {}),)
        self.start_h = begin_h
        """The earliest time a window may start: every event kept is at or after it."""
        self.trimmed = 0
        """Events let go early (rolled into the base checkpoint) to stay within ``max_events``."""
        self._cursor: _Cursor | None = None
        self._cursor_window = (math.nan, math.nan)
        # Copies of the cursor at each checkpoint_h boundary it passed, (t, pos, reducer) with reducer fed events
        # [0, pos), all those before t: a late event sets the cursor back to the last one before it, not to the start.
        self._saves: list[tuple[float, int, KpiReducer]] = []

    def __len__(self) -> int:
        return self._n

    def nbytes(self) -> int:
        """The bytes the columns take."""
        return self._cols.nbytes()

    @property
    def checkpoints(self) -> tuple[Checkpoint, ...]:
        """The checkpoints now, oldest first (the first at :attr:`start_h`)."""
        return self._checkpoints

    # -- the writer ----------------------------------------------------------------------------------------------
    def _encode(self, ev: Event) -> tuple[int, int, int, int, int]:
        if type(ev) is StateChanged:
            reason = ev[4]
            code = self._reason_code.get(reason)
            if code is None:
                code = self._reason_code[reason] = len(self._reasons)
                self._reasons.append(reason)
            return _STATE, self._station_code[ev[1]], ev[2], _STATE_CODE[ev[3]], code
        if type(ev) is UnitsCompleted:
            return _DONE, self._station_code[ev[1]], ev[2], ev[3], ev[4]
        if type(ev) is BufferLevel:
            return _BUFFER, self._station_code[ev[1]], ev[2], 0, 0
        if type(ev) is StoreOccupancy:
            return _STORE, self._station_code[ev[1]], ev[2], ev[3], int(ev[4])
        if type(ev) is UnitsReleased:
            return _RELEASED, 0, ev[1], 0, 0
        raise TypeError(f"not an event the history keeps: {ev!r}")

    def append(self, ev: Event) -> None:
        """Keep an event at or after every kept one (the in-order path: O(1))."""
        kind, station, a, b, c = self._encode(ev)
        cols = self._cols
        cols.t.append(ev[0])
        cols.kind.append(kind)
        cols.station.append(station)
        cols.a.append(a)
        cols.b.append(b)
        cols.c.append(c)
        self._n += 1  # after the columns: a view taken meanwhile reads only what is complete
        if self._n > self.max_events:
            self._trim()

    def insert(self, ev: Event) -> int:
        """Keep a late event (at or after :attr:`start_h`) in its place by time, after any at the same instant; returns
        its index."""
        t = ev[0]
        if t < self.start_h:
            raise ValueError(f"event at {t} h is before the retained history (from {self.start_h} h)")
        row = self._encode(ev)
        with self._lock:
            if self._shared:
                self._cols = _Columns(self._cols, 0, self._n)
                self._shared = False
            cols = self._cols
            i = bisect_right(cols.t, t, 0, self._n)
            cols.t.insert(i, t)
            for arr, value in zip((cols.kind, cols.station, cols.a, cols.b, cols.c), row, strict=True):
                arr.insert(i, value)
            self._n += 1
            if self._checkpoints[-1].t > t:  # they cover the events before their time: this one is missing
                self._checkpoints = tuple(ck for ck in self._checkpoints if ck.t <= t)
        if self._saves and self._saves[-1][0] > t:  # copies that should have taken this event
            self._saves = [save for save in self._saves if save[0] <= t]
        if self._cursor is not None and self._cursor.pos > i:
            # it has taken events after this one: set back to its last copy before it when next asked (once for a
            # flood of late events)
            self._cursor = None
        if self._n > self.max_events:
            i -= self._trim()
        return i

    def cut_to(self, t: float) -> int:
        """Let go of the events before ``t`` (rolling the base checkpoint forward over them); returns how many."""
        if t <= self.start_h:
            return 0
        cols, n = self._cols, self._n
        k = bisect_left(cols.t, t, 0, n)
        cks = self._checkpoints
        ck = cks[max(0, bisect_right(cks, t, key=lambda c: c.t) - 1)]
        reducer = _fresh(ck.reducer)
        for ev in _events(cols, ck.pos, k, self._stations, self._reasons):
            reducer(ev)
        states, stores = _leads(cols, ck.pos, k, self._stations, self._reasons, ck)
        cur = self._cursor
        if cur is not None and cur.pos < k:
            self._advance(cur, k)
        base = Checkpoint(t, 0, reducer, states, stores)
        kept = tuple(c._replace(pos=c.pos - k) for c in cks if c.t > t)
        new = _Columns(cols, k, n)  # a copy: a view of the old columns stays as it was
        with self._lock:
            self._cols, self._n = new, n - k
            self._shared = False
            self._checkpoints = (base, *kept)
            self.start_h = t
        if cur is not None:
            cur.pos -= k
        self._saves = [(st, pos - k, r) for st, pos, r in self._saves if pos >= k]
        return k

    def _trim(self) -> int:
        # Let go of the oldest eighth at once, so that staying within the bound costs O(1) per event.
        keep = self.max_events - self.max_events // 8
        t = self._cols.t[self._n - keep]
        k = self.cut_to(t)
        self.trimmed += k
        return k

    def build_checkpoints(self, clock_h: float) -> None:
        """Add the checkpoints due up to ``clock_h`` (after a late event, from the last one still valid)."""
        h = self.checkpoint_h
        last = self._checkpoints[-1]
        c = (math.floor(last.t / h) + 1) * h
        if c > clock_h:
            return
        cols, n = self._cols, self._n
        reducer = _fresh(last.reducer)
        states, stores = dict(last.states), dict(last.stores)
        i = last.pos
        made: list[Checkpoint] = []
        while c <= clock_h:
            # skip the boundaries of stretches without events: one checkpoint serves them all
            nxt = cols.t[i] if i < n else clock_h
            c = max(c, math.floor(nxt / h) * h)
            if c > clock_h:
                break
            j = bisect_left(cols.t, c, i, n)
            for ev in _events(cols, i, j, self._stations, self._reasons):
                reducer(ev)
                if type(ev) is StateChanged:
                    states[ev[1], ev[2]] = ev
                elif type(ev) is StoreOccupancy:
                    stores[ev[1]] = ev
            made.append(Checkpoint(c, j, _fresh(reducer), dict(states), dict(stores)))
            i = j
            c += h
        if made:
            with self._lock:
                self._checkpoints = (*self._checkpoints, *made)

    # -- the current window --------------------------------------------------------------------------------------
    def running_kpis(self, w0: float, w1: float, until: float) -> RunKpis:
        """The KPIs of ``[w0, w1]`` up to ``until`` (at or after every kept event), from a reducer that follows that
        window as events come and is fed only the events since it was last asked. A window that starts before the
        history starts at the history's start."""
        w0 = max(w0, self.start_h)
        cur = self._cursor
        if cur is None or self._cursor_window != (w0, w1):
            if self._cursor_window != (w0, w1):
                self._saves = []
            if self._saves:
                _, pos, saved = self._saves[-1]
                cur = self._cursor = _Cursor(self._copy(saved), pos)
            else:
                cks = self._checkpoints
                ck = cks[max(0, bisect_right(cks, w0, key=lambda c: c.t) - 1)]
                cur = self._cursor = _Cursor(ck.reducer.fork(w0, w1), ck.pos)
            self._cursor_window = (w0, w1)
        self._advance_saving(cur, self._n)
        return cur.reducer.result(until=until)

    def _copy(self, reducer: KpiReducer) -> KpiReducer:
        return copy.deepcopy(reducer, {id(self.line): self.line})  # the line is shared, never copied

    def _advance_saving(self, cur: _Cursor, to: int) -> None:
        """Advance the cursor to ``to``, keeping a copy of it at each ``checkpoint_h`` boundary it passes."""
        h = self.checkpoint_h
        times = self._cols.t
        saves = self._saves
        c = (math.floor((saves[-1][0] if saves else self._cursor_window[0]) / h) + 1) * h
        while True:
            j = bisect_left(times, c, cur.pos, to)
            if j >= to:
                break
            self._advance(cur, j)
            saves.append((c, j, self._copy(cur.reducer)))
            c = max(c + h, math.floor(times[j] / h) * h)  # stretches without events need no copies
        self._advance(cur, to)

    def _advance(self, cur: _Cursor, to: int) -> None:
        reducer = cur.reducer
        for ev in _events(self._cols, cur.pos, to, self._stations, self._reasons):
            reducer(ev)
        cur.pos = max(cur.pos, to)

    # -- reading -------------------------------------------------------------------------------------------------
    def view(self, clock_h: float) -> HistoryView:
        """The history now, for queries from any thread (``clock_h``: the clock to end default windows at)."""
        with self._lock:
            self._shared = True
            return HistoryView(
                self._cols, self._n, self.start_h, clock_h, self._checkpoints, self._stations, self._reasons, self._merge_inputs
            )

    def index_after(self, t: float) -> int:
        """The index of the first event after time ``t``."""
        return bisect_right(self._cols.t, t, 0, self._n)

    def next_report(self, station: str, machine: int, i: int) -> int:
        """The index of the machine's first report at index ``i`` or later (-1: none)."""
        cols = self._cols
        code = self._station_code[station]
        K, S, A = cols.kind, cols.station, cols.a
        for k in range(max(i, 0), self._n):
            if K[k] == _STATE and S[k] == code and A[k] == machine:
                return k
        return -1

    def reports_back(self, station: str, machine: int, stop: int | None = None) -> Iterator[tuple[float, MachineState, str]]:
        """The machine's reports ``(t, state, reason)`` before index ``stop`` (default: all), newest first."""
        cols = self._cols
        code = self._station_code[station]
        K, S, A = cols.kind, cols.station, cols.a
        for k in range((self._n if stop is None else stop) - 1, -1, -1):
            if K[k] == _STATE and S[k] == code and A[k] == machine:
                yield cols.t[k], _STATES[cols.b[k]], self._reasons[cols.c[k]]
