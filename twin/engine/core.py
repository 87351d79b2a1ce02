"""The engine: builds a line's SimPy model, runs it, and streams its events to whoever listens."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any, Protocol

import simpy

from twin.calendar import StopTimeline
from twin.distributions import Sampler
from twin.engine.buffer import Buffer, Sink, Source
from twin.engine.emitters import Emitters, Subscription
from twin.engine.station import DelayStation, Outage, ProcessStation
from twin.events import Event
from twin.schema import Line
from twin.snapshot import LineSnapshot

__all__ = ["Engine", "Observer"]


class Observer(Protocol):
    """Anything that takes events: the KPI reducer, the live state, a telemetry publisher."""

    def __call__(self, event: Event, /) -> None:
        """Take one event."""


class Engine:
    """One run of a line: seeded, optionally started from a snapshot, observed from outside.

    ``seed`` is an int or a tuple of ints (a replication's entropy). Observers attached before the first
    :meth:`run` see every event, as objects (:meth:`subscribe`) or as their fields (:meth:`subscribe_fields`,
    no object made); with none attached no event objects are made at all.
    """

    def __init__(
        self,
        line: Line,
        seed: int | tuple[int, ...] = 0,
        start: LineSnapshot | None = None,
        outages: Iterable[tuple[str, float, float, str]] = (),
    ) -> None:
        if start is not None:
            start.check(line)
        self.outages = list(outages)
        """``(station, at_h, hours, reason)``: a process station down from ``at_h`` (the run's clock) for ``hours``,
        its machines DOWN with ``reason`` (what-ifs: "the calender goes down now for four hours")."""
        process_ids = {s.id for s in line.stations if s.kind == "process"}
        for sid, _at, hours, reason in self.outages:
            if sid not in process_ids:
                raise ValueError(f"outage of {sid!r}: not a process station of line {line.name!r}")
            if not hours >= 0 or not reason:
                raise ValueError(f"outage of {sid!r}: needs hours >= 0 and a reason, got {hours!r}, {reason!r}")
        self.line = line
        self.seed = seed
        self.start_time = start.time_h if start is not None else 0.0
        self.env = simpy.Environment(initial_time=self.start_time)
        self._subscriptions: list[Subscription] = []
        self._built = False
        self._start = start

    def subscribe(self, observer: Observer, kinds: Iterable[type] | None = None) -> None:
        """Send the events of this run to ``observer`` (before the run starts); ``kinds`` limits it to
        those event types, and the engine makes no event of a type nobody takes."""
        if self._built:
            raise RuntimeError("subscribe observers before the first run()")
        self._subscriptions.append((observer, frozenset(kinds) if kinds is not None else None, False))

    def subscribe_fields(self, kind: type, handler: Callable[..., None]) -> None:
        """Send the events of type ``kind`` (an event named tuple) to ``handler`` as their fields,
        ``handler(*event)``, without making event objects (before the run starts): for observers that
        take every event of long runs, such as the KPI reducer."""
        if self._built:
            raise RuntimeError("subscribe observers before the first run()")
        self._subscriptions.append((handler, frozenset((kind,)), True))

    def _build(self) -> None:
        env, line, start = self.env, self.line, self._start
        self.emitters = emitters = Emitters(self._subscriptions)
        crews = {name: simpy.Resource(env, capacity=n) for name, n in line.repair_crews.items()}
        levels = start.buffers if start is not None else {}
        snaps = start.stations if start is not None else {}
        self.source: Source | Buffer
        if line.arrival is None:
            self.source = Source(env, emitters.released)
        else:
            queued = start.arrivals_queued if start is not None else 0
            self.source = Buffer(env, "_arrivals", None, None, level=queued)
            env.process(self._arrivals(self.source))
        self.buffers: dict[str, Buffer] = {}
        self.sink = Sink(env)
        self.stations: list[ProcessStation | DelayStation] = []
        inputs = line.inputs
        for i, spec in enumerate(line.stations):
            last = i == len(line.stations) - 1
            outlet: Buffer | Sink
            if last:
                outlet = self.sink
            else:
                outlet = Buffer(env, spec.id, spec.buffer_after, emitters.buffer, level=levels.get(spec.id, 0))
                self.buffers[spec.id] = outlet
            ins = inputs[spec.id]
            inlet: Source | Buffer
            merge: list[tuple[Buffer, int]] | None = None
            if not ins:
                inlet = self.source if i == 0 else Source(env, emitters.released)
            elif len(ins) == 1 and ins[0].per_unit == 1:
                inlet = self.buffers[ins[0].station]
            else:
                merge = [(self.buffers[inp.station], inp.per_unit) for inp in ins]
                inlet = merge[0][0]
            station: ProcessStation | DelayStation
            if spec.kind == "delay":
                station = DelayStation(env, spec, inlet, outlet, self.seed, emitters, snaps.get(spec.id))
            else:
                timeline = StopTimeline(line.calendar, line.planned_stops, spec.planned_stops)
                station = ProcessStation(
                    env, spec, inlet, outlet, self.seed, crews, emitters, snaps.get(spec.id), merge, timeline
                )
            self.stations.append(station)
        by_id = {st.id: st for st in self.stations}
        for sid, at, hours, reason in self.outages:
            target = by_id[sid]
            assert isinstance(target, ProcessStation)
            for m in target.machines:
                env.process(m.outage(Outage(env, reason, at, at + hours)))
        self._built = True

    def _arrivals(self, into: Buffer) -> Generator[simpy.Event, Any, None]:
        arrival = self.line.arrival
        assert arrival is not None and not isinstance(arrival.interarrival, int | float)
        gap = Sampler(arrival.interarrival, self.seed, "arrivals")
        emit = self.emitters.released
        while True:
            yield self.env.timeout(gap.draw())
            if emit is not None:
                emit(self.env.now, arrival.lot)
            into.put(arrival.lot)

    @property
    def now(self) -> float:
        """The run's clock, in hours."""
        return self.env.now

    def run(self, until: float) -> None:
        """Advance the run to time ``until`` (hours on the run's clock); a time not after now does nothing."""
        if not self._built:
            self._build()
        if until > self.env.now:
            self.env.run(until=until)

    def snapshot(self) -> LineSnapshot:
        """The line's state now, from which another run can start."""
        if not self._built:
            self._build()
        return LineSnapshot(
            time_h=self.env.now,
            buffers={sid: b.level for sid, b in self.buffers.items()},
            arrivals_queued=self.source.level,
            stations={s.id: s.snapshot() for s in self.stations},
        )
