"""The virtual plant: the engine paced to the wall clock, publishing the telemetry a real line's gateways would.

Test engineers point it at a broker to exercise receivers without a plant. It speaks only the contract of
:mod:`connectors.telemetry` and publishes through a :class:`~connectors.publishing.Publisher`; it knows nothing of
MQTT. Engine time ``t`` (hours) is published as ``origin_ms + (t - t_start)`` hours on the wall clock.

**Its clock and the wall clock.** A paced feed's source clock is ``origin + speed x wall seconds since the start``
(:class:`FeedClock`). From an origin of *now* (the default) it runs ahead of the wall clock by ``speed - 1``
seconds every wall second: at x60 a wall hour puts it 59 hours ahead, and a receiver that accepts source
timestamps only a few minutes ahead of its own clock refuses everything after the first few seconds. Start the
feed in the past instead (``origin_ms`` earlier than now, ``gigatwin feed --origin -7d``: :func:`parse_origin`)
and it runs up to the present, behind the wall clock until it reaches it after ``-lead / (speed - 1)`` wall
seconds (:meth:`FeedClock.present_after_s`). :meth:`VirtualPlant.feed_clock` says all this before a run, and
:attr:`FeedStats.lead_s` reports the lead as it goes.

**Lines on the wall clock.** A line whose behaviour depends on the time of day or the date (a shift ``calendar``,
planned stops of the line or a station, changeovers on a ``schedule``: :func:`on_wall_clock`) runs its engine on the
wall clock itself: engine time ``t`` is published as ``t`` hours since the epoch, from the origin on, so that the
off-shift time, breaks and planned stops a receiver sees fall where the calendar puts them (the engine's clock is
hours since the epoch, ``twin.calendar``). Its start snapshot, if any, is moved to the origin (its contents kept:
the engine puts its machines into the planned stop the origin falls in, if any). Any other line keeps its engine's
own clock, published from the origin as above.

**Warm-up.** A line that starts empty ships nothing from its end until the first units have crossed it (the
reference line's aging store holds them 14 days). :func:`warm_start` runs the engine first and returns the
snapshot to start the feed from, as the embedded demo does: at least the hours asked, then on to the first whole
hour after which the line's next hour is typical of the day ahead (:mod:`twin.warm`), so that the first minutes a
user watches look like a normal shift and not like the slow hour the aging store happens to release then. A line on
the wall clock is warmed up the same way (on the engine's clock from 0, whose calendar is that of January 1970) and
its snapshot moved to the feed's origin: what the line holds is that of a typical working hour, and the engine puts
its machines into whatever stop of the calendar the origin falls in.

**What is published.**

- *Events* (through :class:`~connectors.telemetry.EventReadings`): state changes, cumulative counts per machine,
  buffer levels, store occupancy and the line's input counter, in the engine's order. State changes include every
  state of the vocabulary with its reason: SETUP with the changeover's name, PLANNED_STOP with ``off_shift``,
  ``break``, ``holiday`` or the planned stop's name, STARVED on a merge station with the id of the input that ran
  short, and a store's faults (the store's "machine" ``j`` is its failure mode ``j``: DOWN with the mode's name at
  the fault, WORKING at the repair). A merge station's inputs are the buffers after the stations feeding it, each
  published on its upstream station's ``buffer`` topic. The input counter counts the units released into every
  branch start together, on the first listed station's topic (the contract's ``input`` channel). Before anything
  else every machine's counters are published at zero, stamped 1 ms before the origin, so that a receiver's
  :class:`~twin.counters.CumulativeCounters` has a baseline older than the first real reading. Two counter
  readings of the same machine within the same millisecond are merged into the later: a PLC's counter holds one
  value per instant, and the receiver counts the later total either way, so the earlier message is redundant.
  Buffer levels, store occupancies and a machine's state changes are merged the same way: the store keeps the
  later of two readings of one instant (and two equal ones would reach a receiver as a duplicate), so a state the
  engine held for less than a millisecond (a machine repaired and starved at once) would be counted by a receiver
  that watched live and lost to one that rebuilt its state from the store after a restart. A run started
  from a snapshot also publishes the snapshot's buffer levels and store contents at the origin.
- *Process values*: every ``process_period_s`` of wall time (``process_period_s x speed`` simulated seconds), one
  ``process`` message per station that has ``signals``, for machine 0, carrying every signal; and one per further
  machine carrying its condition signals, for stations with at most ``condition_max_machines`` machines (larger
  stations report condition signals for machine 0 only). Station-level signals are machine 0's sensors.
  Each value is ``nominal + noise x N(0, 1)`` from a seeded numpy Generator per station (reproducible), clipped
  to physical sense: a signal whose normal range is non-negative never reads below 0, a percentage never above
  100. While a process station's machine is DOWN, in SETUP or in a PLANNED_STOP, its signals in units of motion or
  drive current (m/min, m/s, rpm, 1/min, mm/s, A) read 0: a stopped machine neither moves, vibrates nor draws
  current (a changeover stops the drives too). Other states (starved, blocked) leave the values at nominal, and so
  does a store's fault (a store keeps its clock: its positions out of use do not stop its climate). Nothing is
  published per cell.

**Condition signals drift before failures.** The engine runs ``lookahead_h`` ahead of publication; its events
are buffered and published when their time comes. So when a condition signal (``Signal.condition``) is drawn at
time ``t`` the machine's next DOWN, at ``t_fail``, is already known if it lies within the lookahead, and the
value is::

    nominal + gain x (high - low) / 2 x exp(-(t_fail - t) / tau) + noise          (machine not DOWN)

with ``condition_gain`` 3 and ``condition_tau_h`` 1 h by default ([EST], an engineering estimate: a bearing or drive
that degrades over about an hour). The rise is scaled by the normal range so that every condition signal is
equally detectable against its noise: with the default noise ``(high - low) / 6`` it is 9 standard deviations at the
failure, 3.3 an hour before, 1.2 two hours before. After the repair the signal is back at nominal, unless the
next failure is near already. A failure further ahead than the lookahead adds nothing (``exp(-4)`` < 2 % of the
rise at the default 4 h); the engine does not know anyone listens.

**Pacing.** :meth:`VirtualPlant.run` maps wall time to simulated time as ``(wall - wall0) x speed / 3600`` hours,
always from the same ``wall0``, sleeping until the next message is due. If publishing falls behind (a slow broker),
the next slice publishes everything due by then, in order and with its original timestamps, so the feed catches
up without drift; :class:`FeedStats` counts the slices that ran late and the lag. :meth:`VirtualPlant.run_unpaced`
publishes the same messages as fast as possible. SimPy is not thread-safe and a paced run sleeps: ``run`` runs in
the calling thread, which should be a worker thread, never an asyncio loop.

**Faults.** With :class:`~connectors.faults.Faults`, messages go through a
:class:`~connectors.faults.FaultInjector` (drops, duplicates, reordering, malformed payloads, recorded in
:attr:`VirtualPlant.fault_log`), and every source timestamp is shifted by ``clock_skew_s``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from connectors.faults import FaultInjector, FaultLog, Faults
from connectors.publishing import Publisher
from connectors.telemetry import (
    MS_PER_HOUR,
    BufferReading,
    Channel,
    CountsReading,
    EventReadings,
    InputReading,
    ProcessReading,
    Reading,
    StateReading,
    StoreReading,
    Topics,
    channel_of,
    encode,
)
from twin.distributions import named_stream
from twin.engine import Engine
from twin.events import BufferLevel, Event, MachineState, StateChanged, StoreOccupancy, UnitsCompleted, UnitsReleased
from twin.schema import Line, Station
from twin.snapshot import LineSnapshot
from twin.warm import typical_start

__all__ = [
    "STOPPED_UNITS",
    "FaultLog",
    "Faults",
    "FeedClock",
    "FeedStats",
    "Publisher",
    "VirtualPlant",
    "format_duration",
    "on_wall_clock",
    "parse_origin",
    "warm_start",
]

log = logging.getLogger(__name__)

STOPPED_UNITS = frozenset({"m/min", "m/s", "rpm", "1/min", "mm/s", "A"})
"""Units of motion and drive current: signals in these units read 0 while their machine is DOWN, in SETUP or in a
PLANNED_STOP."""

_EVENT_KINDS = (StateChanged, UnitsCompleted, BufferLevel, StoreOccupancy, UnitsReleased)
_MAX_SLEEP_S = 1.0  # a paced run wakes at least this often, so a quiet line still advances its lookahead
# Wall seconds within which a message counts as due: converting between wall seconds and simulated hours rounds,
# and a message a microsecond early is on time (without it a run could wake just before its message, forever).
_EPSILON_S = 1e-6
_DOWN = MachineState.DOWN
_STOPPED = frozenset({MachineState.DOWN, MachineState.SETUP, MachineState.PLANNED_STOP})


@dataclass(frozen=True)
class FeedStats:
    """What a virtual plant has published so far, and how well it kept pace."""

    messages: dict[str, int]
    """Messages produced per channel (before fault injection; the fault log says what became of them)."""
    simulated_h: float
    """Simulated hours published since the feed's start."""
    slices: int
    """Paced slices run (each publishes everything due by then)."""
    late_slices: int
    """Slices that finished more than one process period after their oldest message was due."""
    lag_s: float
    """The last slice's lag: wall seconds from when its oldest message was due to when the slice finished."""
    max_lag_s: float
    """The largest lag of any slice."""
    lead_s: float = 0.0
    """How far the source clock is ahead of the wall clock now: the source timestamp of the last published instant
    minus the wall-clock time, in seconds (negative: behind, as a feed started in the past is)."""


_ORIGIN_OFFSET = re.compile(r"-(?:\d+(?:\.\d+)?[dhms])+")
_OFFSET_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_origin(text: str, now_ms: int) -> int:
    """The source timestamp (ms since the epoch) a feed starts at, from ``now``, an ISO 8601 time (UTC when it
    names no offset) or a negative offset from ``now_ms`` such as ``-7d``, ``-36h``, ``-1d12h`` or ``-90m``
    (also written ``now-7d``, which a command line does not take for an option). Raises ValueError naming the text."""
    value = text.strip()
    if value.lower() == "now":
        return now_ms
    if value.lower().startswith("now-"):
        value = value[3:]
    if _ORIGIN_OFFSET.fullmatch(value):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _OFFSET_PART.findall(value))
        return now_ms - round(seconds * 1000)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"origin: expected 'now', an ISO 8601 time such as 2026-11-22T06:00:00Z, or a negative offset such as "
            f"-7d, -36h or -90m (now-7d, or --origin=-7d on a command line); got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # the plant's clocks are UTC, as the shift origin is
    return round(when.timestamp() * 1000)


def format_duration(seconds: float) -> str:
    """A duration for people: ``45 s``, ``12.5 min``, ``3.2 h``, ``6.9 d`` (sign kept)."""
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if math.isinf(s):
        return f"{sign}forever"
    if s < 90:
        return f"{sign}{s:.0f} s"
    if s < 90 * 60:
        return f"{sign}{s / 60:.1f} min"
    if s < 48 * 3600:
        return f"{sign}{s / 3600:.1f} h"
    return f"{sign}{s / 86400:.1f} d"


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class FeedClock:
    """How a paced feed's source clock relates to the wall clock:
    ``source time = origin + speed x wall seconds since start``."""

    origin_ms: int
    """The source timestamp of the feed's start (ms since the epoch), clock skew included."""
    start_ms: int
    """The wall-clock time of the feed's start (ms since the epoch)."""
    speed: float
    """Simulated (source) seconds per wall second."""

    def source_ms(self, after_s: float) -> float:
        """The source time after ``after_s`` wall seconds of running (ms since the epoch)."""
        return self.origin_ms + self.speed * after_s * 1000

    def lead_s(self, after_s: float) -> float:
        """Seconds the source clock is ahead of the wall clock after ``after_s`` wall seconds (negative: behind)."""
        return (self.origin_ms - self.start_ms) / 1000 + (self.speed - 1) * after_s

    def present_after_s(self) -> float:
        """Wall seconds after which the source clock reaches the wall clock (0 if it starts at or ahead of it,
        infinity if it never does)."""
        return self.ahead_after_s(0.0)

    def ahead_after_s(self, lead_s: float) -> float:
        """Wall seconds after which the source clock is more than ``lead_s`` ahead of the wall clock (0 if it is
        from the start, infinity if it never is): when a receiver accepting ``lead_s`` would begin to refuse."""
        behind = lead_s - self.lead_s(0.0)
        if behind < 0:
            return 0.0
        if self.speed <= 1:
            return math.inf
        return behind / (self.speed - 1)

    def describe(self, run_s: float | None = None) -> list[str]:
        """The mapping in words: the origin, the formula, the lead at the start, per wall hour, and after ``run_s``
        wall seconds (the run's end) when given."""
        lead0 = self.lead_s(0.0)
        out = [
            f"source time = {_iso(self.origin_ms)} + {self.speed:g} x wall seconds since {_iso(self.start_ms)}",
        ]
        if lead0 < 0:
            present = self.present_after_s()
            when = "never" if math.isinf(present) else f"after {format_duration(present)} of wall time"
            out.append(f"the source clock starts {format_duration(-lead0)} behind the wall clock and reaches it {when}")
        else:
            out.append(f"the source clock starts {format_duration(lead0)} ahead of the wall clock")
        if self.speed != 1:
            out.append(f"it gains {format_duration((self.speed - 1) * 3600)} on the wall clock per wall hour")
        if run_s is not None:
            lead = self.lead_s(run_s)
            where = "ahead of" if lead >= 0 else "behind"
            out.append(
                f"at the end ({format_duration(run_s)} of wall time) it is {format_duration(abs(lead))} {where} the wall clock"
            )
        return out

    def as_dict(self, run_s: float | None = None) -> dict[str, Any]:
        """The mapping as JSON-ready values (what ``gigatwin feed`` prints on its ``clock`` line)."""
        out: dict[str, Any] = {
            "origin": _iso(self.origin_ms),
            "start": _iso(self.start_ms),
            "speed": self.speed,
            "lead_s_at_start": round(self.lead_s(0.0), 3),
            "present_after_s": None if math.isinf(p := self.present_after_s()) else round(p, 3),
        }
        if run_s is not None:
            out["run_s"] = round(run_s, 3)
            out["lead_s_at_end"] = round(self.lead_s(run_s), 3)
            out["max_lead_s"] = round(max(0.0, self.lead_s(0.0), self.lead_s(run_s)), 3)
        return out


def on_wall_clock(line: Line) -> bool:
    """Whether the line's behaviour depends on the time of day or the date (a shift calendar, planned stops, scheduled
    changeovers), so that a feed must run its engine on the wall clock (module docstring)."""
    if line.calendar is not None or line.planned_stops:
        return True
    return any(st.planned_stops or (st.changeover is not None and st.changeover.schedule is not None) for st in line.stations)


def warm_start(line: Line, seed: int, hours: float) -> LineSnapshot | None:
    """The line after at least ``hours`` simulated hours from empty, stopped where the next hour of a feed run with
    ``seed`` is a typical one (:func:`twin.warm.typical_start`), as a snapshot to start the feed from (None for 0
    hours). A feed moves the snapshot of a line on the wall clock (:func:`on_wall_clock`) to its origin."""
    if not (hours >= 0 and math.isfinite(hours)):
        raise ValueError(f"warmup: simulated hours must be >= 0, got {hours}")
    if hours == 0:
        return None
    warm = typical_start(line, seed, hours)
    log.info(
        "warm-up: %g simulated hours; the first hour ships %d good units, %s (median hour of the day ahead: %g)",
        warm.hours,
        warm.first_hour_good,
        "a typical hour" if warm.typical else "no typical hour found",
        warm.typical_per_hour,
    )
    return warm.snapshot


class _Entry:
    """An engine reading waiting for its time (hours since the feed's start) to be published."""

    __slots__ = ("reading", "sent", "t")

    def __init__(self, t: float, reading: Reading) -> None:
        self.t = t
        self.reading = reading
        self.sent = False


class _Signals(NamedTuple):
    """A station's signals as arrays, in the order of its ``signals`` mapping (condition signals included)."""

    names: tuple[str, ...]
    units: tuple[str, ...]
    nominal: np.ndarray
    sigma: np.ndarray
    low: np.ndarray  # clip limits
    high: np.ndarray
    stopped: np.ndarray  # bool: reads 0 while the machine is DOWN
    drift: np.ndarray  # rise at the failure (0 for signals that are not condition signals)
    condition: np.ndarray  # indices of the condition signals


def _signals(station: Station, gain: float) -> _Signals:
    specs = list(station.signals.items())
    names = tuple(n for n, _ in specs)
    units = tuple(s.unit for _, s in specs)
    nominal = np.array([s.nominal for _, s in specs], dtype=float)
    sigma = np.array([s.sigma for _, s in specs], dtype=float)
    low = np.array([0.0 if s.normal[0] >= 0 else -np.inf for _, s in specs])
    high = np.array([100.0 if s.unit == "%" else np.inf for _, s in specs])
    stopped = np.array([s.unit in STOPPED_UNITS for _, s in specs], dtype=bool)
    drift = np.array([gain * (s.normal[1] - s.normal[0]) / 2 if s.condition else 0.0 for _, s in specs])
    condition = np.array([i for i, (_, s) in enumerate(specs) if s.condition], dtype=np.intp)
    return _Signals(names, units, nominal, sigma, low, high, stopped, drift, condition)


def _round(value: float) -> float:
    # six significant digits: sensor resolution, and short payloads
    return float(f"{value:.6g}")


class VirtualPlant:
    """A simulated line publishing the telemetry contract's messages, paced to the wall clock (x ``speed``).

    ``line`` runs from empty, or from ``start`` (a snapshot, e.g. of a warmed-up engine). ``seed`` seeds the engine
    and the process-value noise. ``origin_ms`` is the wall-clock timestamp (ms since the epoch) of the feed's start,
    the wall clock now by default. ``speed`` is simulated seconds per wall second; ``lookahead_h`` how far the engine
    runs ahead of publication; ``condition_gain`` and ``condition_tau_h`` shape the drift of condition signals before
    a failure (module docstring); ``faults`` switches fault injection on. ``clock`` (seconds, monotonic) and
    ``sleep`` are injectable for tests; without ``sleep`` a paced run waits on its ``stop`` event (or ``time.sleep``);
    ``wall_clock`` (seconds since the epoch) is the wall clock the lead is measured against.
    One thread runs it; any thread may read :meth:`stats`.
    """

    def __init__(
        self,
        line: Line,
        *,
        topics: Topics,
        publisher: Publisher,
        speed: float = 60.0,
        seed: int = 0,
        origin_ms: int | None = None,
        lookahead_h: float = 4.0,
        process_period_s: float = 1.0,
        condition_max_machines: int = 16,
        condition_gain: float = 3.0,
        condition_tau_h: float = 1.0,
        faults: Faults | None = None,
        start: LineSnapshot | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed: simulated seconds per wall second must be positive, got {speed}")
        if not lookahead_h >= 0:
            raise ValueError(f"lookahead_h: must be >= 0, got {lookahead_h}")
        if not (process_period_s > 0 and math.isfinite(process_period_s)):
            raise ValueError(f"process_period_s: must be positive, got {process_period_s}")
        if condition_max_machines < 0:
            raise ValueError(f"condition_max_machines: must be >= 0, got {condition_max_machines}")
        if not condition_tau_h > 0:
            raise ValueError(f"condition_tau_h: must be positive, got {condition_tau_h}")
        if origin_ms is None:
            origin_ms = round(time.time() * 1000)
        if origin_ms < 2:
            raise ValueError(f"origin_ms: a timestamp in ms since the epoch, got {origin_ms}")
        self.line = line
        self.topics = topics
        self.speed = float(speed)
        self.seed = seed
        self.origin_ms = origin_ms
        self.lookahead_h = float(lookahead_h)
        self.process_period_s = float(process_period_s)
        self.condition_max_machines = condition_max_machines
        self.condition_tau_h = float(condition_tau_h)
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._start_wall_ms: int | None = None  # when the first paced run began
        self._injector = FaultInjector(publisher, faults) if faults is not None else None
        self._out: Publisher = self._injector if self._injector is not None else publisher
        self._skew_ms = faults.clock_skew_ms if faults is not None else 0

        if on_wall_clock(line):
            # the engine's clock is the wall clock (hours since the epoch): the calendar's stops fall where it says
            origin_h = origin_ms / MS_PER_HOUR
            start = LineSnapshot(time_h=origin_h) if start is None else start.model_copy(update={"time_h": origin_h})
        self._engine = Engine(line, seed, start)
        self._engine.subscribe(self._take, kinds=_EVENT_KINDS)
        self._t0 = self._engine.start_time
        # EventReadings stamps engine time t as its origin + t hours; the feed's origin is the engine's start time
        # (on the wall clock the two coincide and the offset is 0)
        self._readings = EventReadings(topics.site, topics.line, line.stations[0].id, origin_ms - round(self._t0 * MS_PER_HOUR))
        self._start = start
        self._pending: deque[_Entry] = deque()
        self._counters: dict[tuple[type, str, int], _Entry] = {}
        self._topic_of: dict[tuple[str, Channel], str] = {}
        self._tick_h = self.process_period_s * self.speed / 3600.0
        self._next_tick = 0
        self._published_h = 0.0
        self._begun = False

        # process values: per station its signal arrays, its noise stream and the machines reporting condition signals
        self._states: dict[tuple[str, int], MachineState] = {}
        self._failures: dict[tuple[str, int], deque[float]] = {}
        self._stations: list[tuple[Station, _Signals, np.random.Generator, tuple[int, ...]]] = []
        for st in line.stations:
            if not st.signals:
                continue
            sig = _signals(st, condition_gain)
            tracked: tuple[int, ...] = ()
            if len(sig.condition) and st.kind == "process":
                tracked = tuple(range(st.machines)) if st.machines <= condition_max_machines else (0,)
            for m in tracked:
                self._failures[(st.id, m)] = deque()
            self._stations.append((st, sig, named_stream(seed, f"feed/process/{st.id}"), tracked))

        self._lock = threading.Lock()
        self._messages: dict[str, int] = {c.value: 0 for c in Channel}
        self._slices = 0
        self._late = 0
        self._lag = 0.0
        self._max_lag = 0.0

    # -- what the caller reads ------------------------------------------------------------------------------
    def stats(self) -> FeedStats:
        """What has been published so far (safe to call from another thread)."""
        with self._lock:
            published_h = self._published_h
            stats = FeedStats(
                messages=dict(self._messages),
                simulated_h=published_h,
                slices=self._slices,
                late_slices=self._late,
                lag_s=self._lag,
                max_lag_s=self._max_lag,
            )
        source_ms = self.origin_ms + self._skew_ms + published_h * MS_PER_HOUR
        return replace(stats, lead_s=source_ms / 1000 - self._wall_clock())

    def feed_clock(self) -> FeedClock:
        """How the source clock relates to the wall clock: from the start of the first paced run, or from now if
        none has begun. Source timestamps include the fault injector's clock skew."""
        start = self._start_wall_ms
        if start is None:
            start = round(self._wall_clock() * 1000) - round(self._published_h * MS_PER_HOUR / self.speed)
        return FeedClock(origin_ms=self.origin_ms + self._skew_ms, start_ms=start, speed=self.speed)

    @property
    def fault_log(self) -> FaultLog | None:
        """What the fault injector did (None without faults)."""
        return self._injector.log if self._injector is not None else None

    @property
    def engine(self) -> Engine:
        """The engine behind the feed (it runs ``lookahead_h`` ahead of what is published)."""
        return self._engine

    # -- running ----------------------------------------------------------------------------------------------
    def run_unpaced(self, until_h: float) -> None:
        """Publish everything up to ``until_h`` simulated hours after the feed's start, as fast as possible.

        A later call continues where this one stopped. Messages held back for reordering are released at the end.
        """
        self._begin()
        h = self._published_h
        while h < until_h:
            h = min(until_h, h + 1.0)  # hour slices keep the engine's lookahead buffer small
            self._publish_until(h)
        self._flush()

    def run(self, stop: threading.Event | None = None, until_h: float | None = None) -> None:
        """Publish in (scaled) real time in the calling thread, until ``stop`` is set or ``until_h`` simulated hours
        after the feed's start are published. Exceptions of the publisher propagate; a later call continues."""
        sleep = self._sleep
        if sleep is None:
            sleep = stop.wait if stop is not None else time.sleep
        clock = self._clock
        scale = 3600.0 / self.speed  # wall seconds per simulated hour
        wall0 = clock() - self._published_h * scale
        if self._start_wall_ms is None:
            self._start_wall_ms = round(self._wall_clock() * 1000)
        self._begin()
        try:
            while stop is None or not stop.is_set():
                now = clock() + _EPSILON_S
                target = (now - wall0) / scale
                if until_h is not None and target >= until_h:
                    target = until_h
                due = self._next_due_h()
                if due <= target:
                    self._publish_until(target)
                    self._paced(max(0.0, clock() - (wall0 + due * scale)))
                elif target > self._published_h:
                    self._publish_until(target)  # nothing due yet, but the engine's lookahead moves on
                if until_h is not None and self._published_h >= until_h:
                    break
                wake = min(self._next_due_h(), self._published_h + _MAX_SLEEP_S / scale)
                if until_h is not None:
                    wake = min(wake, until_h)
                wait = wall0 + wake * scale - clock()
                if wait > _EPSILON_S:
                    sleep(wait)
        finally:
            self._flush()

    # -- internals --------------------------------------------------------------------------------------------
    def _paced(self, lag: float) -> None:
        with self._lock:
            self._slices += 1
            self._lag = lag
            if lag > self._max_lag:
                self._max_lag = lag
            if lag > self.process_period_s:
                self._late += 1

    def _flush(self) -> None:
        if self._injector is not None:
            self._injector.flush()

    def _begin(self) -> None:
        """Publish the counters' zero baseline (and a snapshot's levels), then run the engine into its lookahead."""
        if self._begun:
            return
        self._begun = True
        readings = self._readings
        baseline_ms = self.origin_ms - 1
        for st in self.line.stations:
            for r in readings.counters(st.id, st.machines, self._t0):
                self._send(r._replace(ts_ms=baseline_ms))
        if self._start is not None:
            ts = readings.ts_ms(self._t0)
            # kept like the engine's own readings, so that one of the same millisecond replaces them
            for sid, level in self._start.buffers.items():
                self._queue_merged(0.0, BufferReading(readings.source(sid), 0, ts, level))
            for st in self.line.stations:
                snap = self._start.stations.get(st.id)
                if st.kind == "delay" and snap is not None:
                    units = sum(lot.units for lot in snap.lots)
                    full = st.capacity is not None and units >= st.capacity
                    self._queue_merged(0.0, StoreReading(readings.source(st.id), 0, ts, units, 0, full))
        self._engine.run(self._t0 + self.lookahead_h)

    def _take(self, ev: Event) -> None:
        """The engine's observer: turn an event into its reading and queue it (the engine runs ahead)."""
        reading = self._readings(ev)
        if reading is None:
            return
        # every time below is relative to the start, so that "due" and "published" compare exactly
        t = ev.t - self._t0
        if isinstance(ev, StateChanged) and ev.state is _DOWN:
            future = self._failures.get((ev.station, ev.machine))
            if future is not None:
                future.append(t)
        if isinstance(reading, CountsReading | InputReading | BufferReading | StoreReading | StateReading):
            self._queue_merged(t, reading)
        else:
            self._pending.append(_Entry(t, reading))

    def _queue_merged(self, t: float, reading: Reading) -> None:
        """Queue a reading of one value per instant (a counter, a level, a machine's state): the later of one
        millisecond replaces the earlier, if that is not published yet."""
        key = (type(reading), reading.source.station, reading.machine)
        last = self._counters.get(key)
        if last is not None and not last.sent and last.reading.ts_ms == reading.ts_ms:
            last.reading = reading
            return
        entry = _Entry(t, reading)
        self._counters[key] = entry
        self._pending.append(entry)

    def _next_due_h(self) -> float:
        """Simulated hours (since the start) at which the next unpublished message is due."""
        tick = self._next_tick * self._tick_h if self._stations else math.inf
        # nothing queued: the engine has produced nothing up to its lookahead horizon
        event = self._pending[0].t if self._pending else self._engine.now - self._t0
        return min(tick, event)

    def _publish_until(self, target_h: float) -> None:
        """Publish every queued reading and process tick due at or before ``target_h`` hours since the start."""
        self._engine.run(self._t0 + target_h + self.lookahead_h)
        pending = self._pending
        end = target_h
        ticking = bool(self._stations)
        while True:
            tick = self._next_tick * self._tick_h if ticking else math.inf
            limit = tick if tick < end else end
            while pending and pending[0].t <= limit:
                entry = pending.popleft()
                entry.sent = True
                self._publish_reading(entry.reading)
            if tick > end:
                break
            self._publish_tick(tick)
            self._next_tick += 1
        with self._lock:
            self._published_h = max(self._published_h, target_h)

    def _publish_reading(self, reading: Reading) -> None:
        if isinstance(reading, StateReading):
            self._states[(reading.source.station, reading.machine)] = reading.state
        self._send(reading)

    def _send(self, reading: Reading) -> None:
        if self._skew_ms:
            reading = reading._replace(ts_ms=reading.ts_ms + self._skew_ms)
        channel = channel_of(reading)
        key = (reading.source.station, channel)
        topic = self._topic_of.get(key)
        if topic is None:
            topic = self._topic_of[key] = self.topics.topic(reading.source.station, channel)
        self._out.publish(topic, encode(reading))
        self._messages[channel.value] += 1

    def _publish_tick(self, t: float) -> None:
        """One process message per station (machine 0) and per further machine that reports condition signals;
        ``t`` in hours since the start."""
        ts = self._readings.ts_ms(self._t0 + t)
        states, failures, tau = self._states, self._failures, self.condition_tau_h
        for st, sig, rng, tracked in self._stations:
            source = self._readings.source(st.id)
            process = st.kind == "process"  # a store's "machines" are its failure modes: a fault stops no drive
            n = len(sig.names)
            cond = sig.condition
            extra = len(tracked) - 1 if tracked else 0
            z = rng.standard_normal(n + extra * len(cond))
            values = sig.nominal + sig.sigma * z[:n]
            if tracked:
                values[cond] += sig.drift[cond] * self._rise(failures[(st.id, 0)], t, tau)
            if process and states.get((st.id, 0)) in _STOPPED:
                values[sig.stopped] = 0.0
            np.clip(values, sig.low, sig.high, out=values)
            named = zip(sig.names, values.tolist(), sig.units, strict=True)
            self._send(ProcessReading(source, 0, ts, tuple((nm, _round(v), u) for nm, v, u in named)))
            for j, m in enumerate(tracked[1:]):
                zc = z[n + j * len(cond) : n + (j + 1) * len(cond)]
                vals = sig.nominal[cond] + sig.sigma[cond] * zc + sig.drift[cond] * self._rise(failures[(st.id, m)], t, tau)
                if process and states.get((st.id, m)) in _STOPPED:
                    vals[sig.stopped[cond]] = 0.0
                np.clip(vals, sig.low[cond], sig.high[cond], out=vals)
                named_cond = zip(cond.tolist(), vals.tolist(), strict=True)
                self._send(ProcessReading(source, m, ts, tuple((sig.names[i], _round(v), sig.units[i]) for i, v in named_cond)))

    @staticmethod
    def _rise(future: deque[float], t: float, tau: float) -> float:
        """exp(-(t_fail - t) / tau) for the machine's next failure after ``t`` (0 if none is known)."""
        while future and future[0] <= t:
            future.popleft()  # failures that have happened: the machine is DOWN or repaired
        if not future:
            return 0.0
        return math.exp(-(future[0] - t) / tau)
