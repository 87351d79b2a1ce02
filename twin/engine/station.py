"""The SimPy processes of a station: its machines (load, work, fail, repair, scrap, hand over) or its store.

Operating-basis failures need no process of their own: a working machine knows how much operating time
is left before each mode fails and stops its work there, so a starved or blocked machine cannot fail.
Calendar-basis failures run a process per machine and mode that interrupts the work in progress; the
interrupted units resume their remaining work after the repair.

Planned stops (the calendar's off-shift time and breaks, the line's and the station's planned stops) hold a
station's machines: a working machine stops at once (or, for a stop ``after_batch``, once the batch in hand is
done) and resumes its unit after the stop; an idle or broken-down machine shows PLANNED_STOP at once and goes on
waiting or being repaired behind it. Machines in a planned stop take no new work, and their operating failure
clocks stand still. A changeover (SETUP) is done between units, when the machine has made its ``every_units``
or a scheduled changeover has fallen due. Micro-stops pause the work without leaving WORKING; a speed factor
lengthens each cycle. A merge station takes ``per_unit`` units from each of its inputs at once, when every input
has them; while one has not, its machines are STARVED with that input's station as the reason.

Stores (delay stations) keep their clock through planned stops; a store's fault takes storage positions out of
use for its repair (StateChanged of the store's "machine" numbered by the failure mode: DOWN, then WORKING).
"""

from __future__ import annotations

import heapq
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from twin.calendar import StopTimeline
from twin.distributions import Distribution, Sampler, named_stream
from twin.engine.buffer import Buffer, GetRequest, PutRequest, Sink, Source
from twin.engine.emitters import Emitters
from twin.events import MachineState
from twin.schema import FailureMode, Speed, Station
from twin.snapshot import MachineSnapshot, StationSnapshot, StoreLot

__all__ = ["DelayStation", "Machine", "Outage", "ProcessStation"]

Inlet = Buffer | Source
Outlet = Buffer | Sink

WORKING, STARVED, BLOCKED, DOWN = MachineState.WORKING, MachineState.STARVED, MachineState.BLOCKED, MachineState.DOWN
SETUP, PLANNED_STOP = MachineState.SETUP, MachineState.PLANNED_STOP


class _Pause:
    """The cause of an interrupt that stops a working machine for a planned stop."""


_PAUSE = _Pause()


class _SpeedFactor:
    """A station's speed factor: a constant, or one draw per cycle on the station's own stream."""

    __slots__ = ("_block", "_i", "_rng", "constant", "spec")

    def __init__(self, speed: float | Speed, entropy: int | tuple[int, ...], name: str) -> None:
        self.spec = speed
        self.constant: float | None = float(speed) if not isinstance(speed, Speed) else None
        self._rng = named_stream(entropy, name) if isinstance(speed, Speed) else None
        self._block: list[float] = []
        self._i = 0

    def draw(self) -> float:
        """One cycle's factor."""
        if self.constant is not None:
            return self.constant
        if self._i >= len(self._block):
            spec, rng = self.spec, self._rng
            assert isinstance(spec, Speed) and rng is not None
            if spec.mode is None:
                arr = rng.uniform(spec.low, spec.high, 256)
            else:
                arr = rng.triangular(spec.low, spec.mode, spec.high, 256)
            self._block = arr.tolist()
            self._i = 0
        value = self._block[self._i]
        self._i += 1
        return value


class _Scrap:
    """Scrap decisions for one station on its own random stream."""

    __slots__ = ("_block", "_entropy", "_i", "_name", "_rng", "p")

    def __init__(self, p: float, entropy: int | tuple[int, ...], name: str) -> None:
        self.p = p
        self._entropy = entropy
        self._name = name
        self._rng: np.random.Generator | None = None  # made on first use: most lines have stations without scrap
        self._block: list[float] = []
        self._i = 0

    @property
    def rng(self) -> np.random.Generator:
        """The station's scrap stream."""
        if self._rng is None:
            self._rng = named_stream(self._entropy, self._name)
        return self._rng

    def of(self, units: int) -> int:
        """How many of ``units`` are scrapped."""
        if self.p == 0.0 or units == 0:
            return 0
        if units == 1:
            if self._i >= len(self._block):
                self._block = self.rng.random(512).tolist()
                self._i = 0
            u = self._block[self._i]
            self._i += 1
            return 1 if u < self.p else 0
        return int(self.rng.binomial(units, self.p))


class _Mode:
    """A failure mode as one machine sees it: its samplers (made on first use: in a forecast's few hours most
    machines never fail, and a big line has a thousand of them) and its crew."""

    __slots__ = ("_entropy", "_name", "_ttf", "_ttr", "basis", "crew", "name", "spec")

    def __init__(self, spec: FailureMode, entropy: int | tuple[int, ...], name: str, crew: simpy.Resource | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.basis = spec.basis
        self.crew = crew
        self._entropy = entropy
        self._name = name
        self._ttf: Sampler | None = None
        self._ttr: Sampler | None = None

    @property
    def ttf(self) -> Sampler:
        """Time to failure (stream ``<station>/<machine>/<mode>/ttf``)."""
        if self._ttf is None:
            self._ttf = self._sampler(self.spec.ttf, "/ttf")
        return self._ttf

    @property
    def ttr(self) -> Sampler:
        """Time to repair (stream ``<station>/<machine>/<mode>/ttr``)."""
        if self._ttr is None:
            self._ttr = self._sampler(self.spec.ttr, "/ttr")
        return self._ttr

    def _sampler(self, dist: Distribution, suffix: str) -> Sampler:
        return Sampler(dist, self._entropy, self._name + suffix)


class _Fixed:
    """A duration source that always gives ``value`` (what an outage's "failure mode" draws)."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value

    def draw(self) -> float:
        """The value."""
        return self.value


class _Until:
    """The time left to ``end`` on ``env``'s clock: an outage's repair lasts to its end, whenever it begins."""

    __slots__ = ("end", "env")

    def __init__(self, env: simpy.Environment, end: float) -> None:
        self.env, self.end = env, end

    def draw(self) -> float:
        """The hours left."""
        return max(self.end - self.env.now, 0.0)


class Outage:
    """A station down from ``at`` to ``end`` (engine hours) for ``name``: a what-if's "the calender goes down now for
    four hours". Its machines go DOWN with the reason ``name`` as for a calendar-basis failure that lasts to ``end``
    (a machine already down goes down for it once repaired, for what is left of it)."""

    basis = "calendar"
    crew: simpy.Resource | None = None

    def __init__(self, env: simpy.Environment, name: str, at: float, end: float) -> None:
        self.name = name
        self.at = at
        self.end = end
        self.ttr = _Until(env, end)
        self.ttf = _Fixed(float("inf"))


class Machine:
    """One machine of a process station, running as a SimPy process."""

    def __init__(self, station: ProcessStation, index: int, start: MachineSnapshot | None) -> None:
        self.station = station
        self.index = index
        self.env = station.env
        self.state: MachineState | None = None
        self.reason = ""
        self.units = 0
        self.work_left = 0.0
        self.step_start = 0.0
        self.working = False
        self.down = False
        self.up_event: simpy.Event | None = None
        self.repair_end = 0.0
        self.get_req: GetRequest | None = None
        self.put_req: PutRequest | None = None
        # planned stops: the stop asked for (None: none), whether PLANNED_STOP is shown, the event of its end
        self.hold: str | None = None
        self.hold_after_batch = False
        self.showing_stop = False
        self.resume: simpy.Event | None = None
        self.interrupting = False
        self.parked = False
        self.setup_end: float | None = None
        self.since_changeover = start.units_since_changeover if start is not None else 0
        self.changeover_due = start.changeover_due if start is not None else False
        spec, entropy, crews = station.spec, station.entropy, station.crews
        self.modes: list[_Mode] = []
        for f in spec.failures:
            self.modes.append(_Mode(f, entropy, f"{spec.id}/{index}/{f.name}", crews.get(f.crew) if f.crew else None))
        self.op_modes = [m for m in self.modes if m.basis == "operating"]
        given = start.ttf_left_h if start is not None else {}
        # operating clocks: operating hours left; calendar clocks: absolute time of the next failure
        self.ttf_left: dict[str, float] = {m.name: given[m.name] if m.name in given else m.ttf.draw() for m in self.op_modes}
        self.calendar_due: dict[str, float] = {}
        micro = station.micro
        self.micro_left: float | None = None
        if micro is not None:
            given_micro = start.micro_stop_left_h if start is not None else None
            self.micro_left = given_micro if given_micro is not None else micro[0].draw()
        self.process = self.env.process(self._run(start))
        for m in self.modes:
            if m.basis == "calendar":
                if m.name in given:
                    self.calendar_due[m.name] = self.env.now + given[m.name]
                elif start is not None and start.state == DOWN and start.reason == m.name:
                    self.calendar_due[m.name] = float("inf")  # under repair: the clock restarts when it ends
                else:
                    self.calendar_due[m.name] = self.env.now + m.ttf.draw()
                self.env.process(self._calendar_failures(m))

    # -- states -----------------------------------------------------------------------------------------
    def _set(self, state: MachineState, reason: str = "") -> None:
        if state is self.state and reason == self.reason:
            return
        self.state = state
        self.reason = reason
        if self.showing_stop:
            return  # behind a planned stop: shown when it ends
        emit = self.station.emitters.state
        if emit is not None:
            emit(self.env.now, self.station.id, self.index, state, reason)

    # -- planned stops --------------------------------------------------------------------------------------
    def stop(self, reason: str, after_batch: bool) -> None:
        """A planned stop begins (or changes its reason): see the module docstring."""
        self.hold, self.hold_after_batch = reason, after_batch
        if self.resume is None:
            self.resume = self.env.event()
        if self.working:
            # a step ending this very instant is let finish (its unit is done at the stop, not after it)
            if not after_batch and not self.interrupting and self._step_ends_after_now():
                self.interrupting = True
                self.process.interrupt(_PAUSE)
            return  # shown once the machine stops
        self._show_stop()

    def _step_ends_after_now(self) -> bool:
        # the step's end from its timeout (SimPy keeps the delay): recording it for every step would cost each unit
        target = self.process.target
        return self.step_start + float(getattr(target, "_delay", 0.0)) > self.env.now

    def go(self) -> None:
        """The planned stop ends: the machine shows its own state again and goes on."""
        self.hold = None
        resume, self.resume = self.resume, None
        if self.showing_stop:
            self.showing_stop = False
            if self.state is not None and not self.parked:  # a parked machine shows its next state itself
                emit = self.station.emitters.state
                if emit is not None:
                    emit(self.env.now, self.station.id, self.index, self.state, self.reason)
        if resume is not None:
            resume.succeed()

    def _show_stop(self) -> None:
        emit = self.station.emitters.state
        if not self.showing_stop:
            self.showing_stop = True
        elif self._shown_reason == self.hold:
            return
        self._shown_reason = self.hold
        if emit is not None:
            emit(self.env.now, self.station.id, self.index, PLANNED_STOP, self.hold)

    _shown_reason: str | None = None

    def _stopped(self) -> Generator[simpy.Event, Any, None]:
        """Wait out the planned stop (and a repair that outlasts it); the caller sets the state that follows."""
        while self.hold is not None:
            self._show_stop()
            resume = self.resume
            assert resume is not None
            self.parked = True
            yield resume
            self.parked = False
            self.state = None  # the caller's next state is shown, whatever it was before the stop
            if self.down:
                assert self.up_event is not None
                yield self.up_event

    def _changeover_due(self) -> bool:
        change = self.station.changeover
        if change is None:
            return False
        return self.changeover_due or (change.every_units is not None and self.since_changeover >= change.every_units)

    def _between_units(self) -> Generator[simpy.Event, Any, None]:
        """Before loading: a changeover that is due, done outside planned stops."""
        while self._changeover_due():
            if self.hold is not None:
                yield from self._stopped()
                continue
            setup_time = self.station.setup_time
            assert setup_time is not None
            yield from self._setup(setup_time.draw())

    def _setup(self, duration: float) -> Generator[simpy.Event, Any, None]:
        change = self.station.changeover
        assert change is not None
        self._set(SETUP, change.name)
        self.setup_end = self.env.now + duration
        yield self.env.timeout(duration)
        self.setup_end = None
        self.since_changeover = 0
        self.changeover_due = False
        # the setup is over: the machine shows its next state (loading, working) itself; left at SETUP, a machine
        # that then loads behind a planned stop would be snapshot as in SETUP holding units
        self.state = None

    # -- the machine's life -------------------------------------------------------------------------------
    def _run(self, start: MachineSnapshot | None) -> Generator[simpy.Event, Any, None]:
        st = self.station
        env = self.env
        emit_loaded, emit_completed = st.emitters.loaded, st.emitters.completed
        inlet, outlet = st.inlet, st.outlet
        want = st.spec.batch_size or st.spec.lot
        batch = st.spec.batch_size is not None
        timeout = st.spec.batch_timeout
        per_batch = batch
        cycle = st.cycle
        draw_one = cycle.draw
        scrap = st.scrap
        op_modes, ttf_left = self.op_modes, self.ttf_left
        sid, idx = st.id, self.index
        speed = st.speed
        unit_speed = speed.constant == 1.0
        micro = st.micro
        inputs = st.inputs
        merge = inputs is not None
        changeover = st.changeover

        phase = "load"
        have = 0
        if start is not None:
            have = start.units
            if start.state == SETUP:
                yield from self._setup(start.setup_left_h)
                have = 0
            elif start.state == PLANNED_STOP:
                # stopped mid-unit, holding finished units, or idle: go on from there once the stop allows
                self.work_left = start.work_left_h
                if have and start.finished:
                    phase = "put"
                elif have and start.work_left_h > 0:
                    phase = "work"
                    # units loaded (or stopped mid-work) in a stop wait for its end, even for a stop after the batch
                    yield from self._stopped()
            elif start.state == WORKING:
                phase, self.work_left = "work", start.work_left_h
            elif start.state == BLOCKED:
                phase = "put"
            elif start.state == DOWN:
                mode = next(m for m in self.modes if m.name == start.reason)
                self.units = have
                self.work_left = start.work_left_h
                yield from self._repair(mode, start.repair_left_h)
                if mode.basis == "calendar" and self.calendar_due[mode.name] == float("inf"):
                    self.calendar_due[mode.name] = env.now + mode.ttf.draw()
                elif mode.basis == "operating" and self.ttf_left[mode.name] <= 0:
                    self.ttf_left[mode.name] = mode.ttf.draw()  # the clock that ran out restarts after its repair
                if have and start.finished:
                    phase = "put"
                elif have and (start.work_left_h > 0 or not batch):
                    phase = "work"
            if phase == "load" and not batch:
                have = 0  # a unit machine idles empty
        while True:
            if phase == "load":
                # a machine in a planned stop still takes material (as it would have waited for it anyway) but
                # starts no work; a changeover that is due is done before loading, outside planned stops
                if changeover is not None and self._changeover_due():
                    yield from self._between_units()
                if merge:
                    assert inputs is not None
                    while True:
                        short = None
                        for inp, per in inputs:
                            if inp.available < want * per:
                                short = inp
                                break
                        if short is None:
                            break
                        self._set(STARVED, short.station)
                        yield short.wait_for(want * per)
                    for inp, per in inputs:
                        got = inp.get(want * per, True)
                        assert got.done
                    have = want
                else:
                    req = inlet.get(want, batch, timeout, have)
                    if not req.done:
                        assert req.event is not None
                        self._set(STARVED)
                        self.get_req = req
                        have = int((yield req.event))
                        self.get_req = None
                    else:
                        have = req.have
                if emit_loaded is not None:
                    emit_loaded(env.now, sid, idx, have)
                self.units = have
                self.work_left = draw_one() if per_batch or have == 1 else cycle.draw_sum(have)
                if not unit_speed:
                    self.work_left /= speed.draw()
                if self.down:  # broke down (calendar) while loading: repair before starting
                    assert self.up_event is not None
                    yield self.up_event
                if self.hold is not None:  # loaded while a planned stop held the machine
                    yield from self._stopped()
                phase = "work"
            if phase == "work":
                self.units = have
                if self.state is not WORKING or self.reason:
                    self._set(WORKING)
                # the work, in steps up to the next operating failure (inline: it runs for every unit)
                if self.hold is not None and not self.hold_after_batch:  # started (or restarted) inside a stop
                    yield from self._stopped()
                    self._set(WORKING)
                while self.work_left > 0:
                    step = self.work_left
                    failing: _Mode | None = None
                    for m in op_modes:
                        left = ttf_left[m.name]
                        if left < step:
                            step, failing = left, m
                    if micro is not None:
                        micro_next = False
                        assert self.micro_left is not None
                        if self.micro_left < step:
                            step, failing, micro_next = self.micro_left, None, True
                    self.step_start = env.now
                    self.working = True
                    try:
                        yield env.timeout(step)
                    except simpy.Interrupt as intr:
                        yield from self._interrupted(intr)
                        continue
                    self.working = False
                    self.work_left -= step
                    for m in op_modes:
                        ttf_left[m.name] -= step
                    if micro is not None:
                        assert self.micro_left is not None
                        self.micro_left -= step
                        if micro_next:
                            # a micro-stop: the machine stays WORKING and makes nothing meanwhile
                            yield env.timeout(micro[1].draw())
                            self.micro_left = micro[0].draw()
                            if self.hold is not None and not self.hold_after_batch and self.work_left > 0:
                                yield from self._stopped()  # a stop began during the micro-stop
                                self._set(WORKING)
                    if failing is not None:
                        yield from self._repair(failing, failing.ttr.draw())
                        ttf_left[failing.name] = failing.ttf.draw()
                        self._set(WORKING)
                        if self.hold is not None and not self.hold_after_batch and self.work_left > 0:
                            yield from self._stopped()  # a stop began during the repair
                            self._set(WORKING)
                self.work_left = 0.0
                if changeover is not None:
                    self.since_changeover += have
                bad = scrap.of(have)
                good = have - bad
                if emit_completed is not None:
                    emit_completed(env.now, sid, idx, good, bad)
                have = good
            # hand over (phase "work" falls through to "put")
            if self.hold is not None and not self.showing_stop:
                self._show_stop()  # the batch in hand is done: the stop it waited for shows now
            if have:
                self.units = have
                put = outlet.put(have)
                if not put.done:
                    assert put.event is not None
                    self._set(BLOCKED)
                    self.put_req = put
                    yield put.event
                    self.put_req = None
                    self.units = 0
                    if self.down:
                        assert self.up_event is not None
                        yield self.up_event
            have = 0
            self.units = 0
            phase = "load"

    def _interrupted(self, intr: simpy.Interrupt) -> Generator[simpy.Event, Any, None]:
        """A calendar failure or a planned stop struck mid-step: book the work done, then repair (and set the
        mode's next due time) or wait out the stop."""
        env = self.env
        self.working = False
        self.interrupting = False
        done = env.now - self.step_start
        self.work_left -= done
        ttf_left = self.ttf_left
        for m in self.op_modes:
            ttf_left[m.name] -= done
        if self.micro_left is not None:
            self.micro_left -= done
        cause = intr.cause
        if cause is _PAUSE:
            yield from self._stopped()
            self._set(WORKING)
            return
        assert isinstance(cause, _Mode | Outage)
        yield from self._repair(cause, cause.ttr.draw())
        if isinstance(cause, _Mode):
            self.calendar_due[cause.name] = env.now + cause.ttf.draw()
        self._set(WORKING)
        if self.hold is not None and not self.hold_after_batch and self.work_left > 0:
            yield from self._stopped()  # a stop began during the repair
            self._set(WORKING)

    def _repair(self, mode: _Mode | Outage, duration: float) -> Generator[simpy.Event, Any, None]:
        env = self.env
        self.down = True
        self.up_event = env.event()
        self._set(DOWN, mode.name)
        if mode.crew is not None:
            self.repair_end = float("inf")
            with mode.crew.request() as req:
                yield req
                self.repair_end = env.now + duration
                yield env.timeout(duration)
        else:
            self.repair_end = env.now + duration
            yield env.timeout(duration)
        self.down = False
        up, self.up_event = self.up_event, None
        up.succeed()

    def outage(self, out: Outage) -> Generator[simpy.Event, Any, None]:
        """Go DOWN for ``out`` from its start to its end (see :class:`Outage`)."""
        env = self.env
        if out.at > env.now:
            yield env.timeout(out.at - env.now)
        while True:
            if self.down:
                assert self.up_event is not None
                yield self.up_event
                continue
            if env.now >= out.end:
                return
            if self.working:
                if self.interrupting:  # something else stops it this instant: strike once it has
                    yield env.timeout(0)
                    continue
                self.interrupting = True
                self.process.interrupt(out)
                return
            before, reason = self.state, self.reason
            yield from self._repair(out, out.ttr.draw())
            if self.state is DOWN and before is not None:
                self._set(before, reason)
            return

    def _calendar_failures(self, mode: _Mode) -> Generator[simpy.Event, Any, None]:
        env = self.env
        while True:
            if self.down:
                # a failure that falls due during another repair strikes when the machine is back up
                assert self.up_event is not None
                yield self.up_event
                continue
            due = self.calendar_due[mode.name]
            if due > env.now:
                yield env.timeout(due - env.now)
                continue  # the due time may have moved meanwhile; look again
            if self.working:
                if self.interrupting:  # a planned stop is stopping it this instant: strike once it has
                    yield env.timeout(0)
                    continue
                # the machine repairs itself and sets the next due time
                self.calendar_due[mode.name] = float("inf")
                self.interrupting = True
                self.process.interrupt(mode)
                yield env.timeout(0)
                continue
            # idle (starved or blocked): down in place; the machine waits for the repair before going on
            before, reason = self.state, self.reason
            yield from self._repair(mode, mode.ttr.draw())
            self.calendar_due[mode.name] = env.now + mode.ttf.draw()
            if self.state is DOWN and before is not None:
                self._set(before, reason)

    # -- snapshot -----------------------------------------------------------------------------------------
    def snapshot(self) -> MachineSnapshot:
        """This machine now."""
        now = self.env.now
        ttf = dict(self.ttf_left)
        work_left = self.work_left
        micro_left = self.micro_left
        if self.working:
            done = now - self.step_start
            work_left -= done
            ttf = {k: v - done for k, v in ttf.items()}
            if micro_left is not None:
                micro_left -= done
        for name, due in self.calendar_due.items():
            if due != float("inf"):  # a mode under repair has no clock running: it restarts when the repair ends
                ttf[name] = max(due - now, 0.0)
        state = self.state or STARVED
        units, finished = self.units, False
        if self.put_req is not None:
            units, finished = self.put_req.left, True
        elif self.get_req is not None:
            units = self.get_req.have
        reason = self.reason if state in (DOWN, SETUP) else ""
        if self.showing_stop and self.hold is not None and state not in (DOWN, SETUP):
            # a repair or a setup behind the stop is kept as it is: its time left is what a warm start needs
            state, reason = PLANNED_STOP, self.hold
        return MachineSnapshot(
            state=state,
            units=units,
            finished=finished and state in (DOWN, PLANNED_STOP),
            work_left_h=max(work_left, 0.0),
            repair_left_h=max(self.repair_end - now, 0.0) if state is DOWN else 0.0,
            reason=reason,
            ttf_left_h={k: max(v, 0.0) for k, v in ttf.items()},
            setup_left_h=max(self.setup_end - now, 0.0) if state is SETUP and self.setup_end is not None else 0.0,
            units_since_changeover=self.since_changeover,
            changeover_due=self.changeover_due,
            micro_stop_left_h=max(micro_left, 0.0) if micro_left is not None else None,
        )


class _StationBase:
    """What every station has: its place between an inlet and an outlet, its events and its scrap stream."""

    def __init__(
        self,
        env: simpy.Environment,
        spec: Station,
        inlet: Inlet,
        outlet: Outlet,
        entropy: int | tuple[int, ...],
        emitters: Emitters,
    ) -> None:
        self.env = env
        self.spec = spec
        self.id = spec.id
        self.inlet = inlet
        self.outlet = outlet
        self.entropy = entropy
        self.emitters = emitters
        self.scrap = _Scrap(spec.scrap, entropy, f"{spec.id}/scrap")


class ProcessStation(_StationBase):
    """A group of identical parallel machines sharing an inlet (or, for a merge, one buffer per input) and an outlet."""

    def __init__(
        self,
        env: simpy.Environment,
        spec: Station,
        inlet: Inlet,
        outlet: Outlet,
        entropy: int | tuple[int, ...],
        crews: dict[str, simpy.Resource],
        emitters: Emitters,
        start: StationSnapshot | None,
        inputs: list[tuple[Buffer, int]] | None = None,
        timeline: StopTimeline | None = None,
    ) -> None:
        super().__init__(env, spec, inlet, outlet, entropy, emitters)
        self.crews = crews
        assert spec.cycle_time is not None and not isinstance(spec.cycle_time, int | float)
        self.cycle = Sampler(spec.cycle_time, entropy, f"{spec.id}/cycle")
        # new sources of randomness get streams of their own, so a station without them draws what it drew before
        self.speed = _SpeedFactor(spec.speed, entropy, f"{spec.id}/speed")
        self.micro: tuple[Sampler, Sampler] | None = None
        if spec.micro_stops is not None:
            ms = spec.micro_stops
            self.micro = (
                Sampler(ms.every, entropy, f"{spec.id}/micro_stops/every"),
                Sampler(ms.duration, entropy, f"{spec.id}/micro_stops/duration"),
            )
        self.changeover = spec.changeover
        self.setup_time: Sampler | None = None
        if spec.changeover is not None:
            self.setup_time = Sampler(spec.changeover.duration, entropy, f"{spec.id}/changeover")
        self.inputs = inputs
        given = start.machines if start is not None else []
        self.machines = [Machine(self, i, given[i] if i < len(given) else None) for i in range(spec.machines)]
        self.timeline = timeline
        if timeline is not None and not timeline.always_working:
            first = timeline.at(env.now)
            self._stop_reason: str | None = None
            self._apply(first.reason, first.after_batch)
            env.process(self._planned_stops(timeline))
        if spec.changeover is not None and spec.changeover.schedule is not None:
            env.process(self._changeover_schedule())

    def _apply(self, reason: str | None, after_batch: bool) -> None:
        if reason == self._stop_reason:
            return
        self._stop_reason = reason
        for m in self.machines:
            if reason is None:
                m.go()
            else:
                m.stop(reason, after_batch)

    def _planned_stops(self, timeline: StopTimeline) -> Generator[simpy.Event, Any, None]:
        env = self.env
        t = env.now
        while True:
            w = timeline.at(t)
            self._apply(w.reason, w.after_batch)
            yield env.timeout(max(w.end - env.now, 0.0))
            t = max(env.now, w.end)  # the clock may land a rounding error short of the end

    def _changeover_schedule(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        change = self.changeover
        assert change is not None and change.schedule is not None
        sched = change.schedule
        zone = self.timeline.zone if self.timeline is not None else "UTC"
        while True:
            upcoming = [a for a, _b in sched.windows(env.now, env.now + (sched.every or 1e6) * 2 + 1.0, zone) if a > env.now]
            if not upcoming:
                return
            yield env.timeout(upcoming[0] - env.now)
            for m in self.machines:
                m.changeover_due = True

    def snapshot(self) -> StationSnapshot:
        """This station now."""
        return StationSnapshot(machines=[m.snapshot() for m in self.machines])


class DelayStation(_StationBase):
    """A storage step: up to ``capacity`` units each stay at least their dwell, then leave in order of readiness."""

    def __init__(
        self,
        env: simpy.Environment,
        spec: Station,
        inlet: Inlet,
        outlet: Outlet,
        entropy: int | tuple[int, ...],
        emitters: Emitters,
        start: StationSnapshot | None,
    ) -> None:
        assert spec.capacity is not None and spec.dwell is not None and not isinstance(spec.dwell, int | float)
        super().__init__(env, spec, inlet, outlet, entropy, emitters)
        self.capacity = spec.capacity
        self.dwell = Sampler(spec.dwell, entropy, f"{spec.id}/dwell")
        self.lots: list[tuple[float, int, int]] = []  # (ready time, sequence, units)
        self._seq = 0
        self.occupancy = 0
        self.held = 0
        self.full = False
        self._arrived: simpy.Event | None = None
        self._room: simpy.Event | None = None
        self._releasing: PutRequest | None = None
        self._intake_req: GetRequest | None = None
        self.out_of_use = 0
        self.faults: dict[str, float] = {}  # mode -> repair end
        self.fault_due: dict[str, float] = {}  # mode -> next failure time
        given_ttf = start.ttf_left_h if start is not None else {}
        given_faults = start.faults if start is not None else {}
        for j, f in enumerate(spec.failures):
            mode = _Mode(f, entropy, f"{spec.id}/{j}/{f.name}", None)
            env.process(self._failures(j, mode, given_ttf.get(f.name), given_faults.get(f.name)))
        for lot in start.lots if start is not None else []:
            self.lots.append((env.now + lot.dwell_left_h, self._seq, lot.units))
            self._seq += 1
            self.occupancy += lot.units
        heapq.heapify(self.lots)
        env.process(self._intake())
        env.process(self._release())

    def _admit(self, units: int, ready: float) -> None:
        heapq.heappush(self.lots, (ready, self._seq, units))
        self._seq += 1
        self.occupancy += units

    def _report(self) -> None:
        emit = self.emitters.store
        if emit is not None:
            emit(self.env.now, self.id, self.occupancy - self.held, self.held, self.full)

    def _failures(
        self, index: int, mode: _Mode, ttf: float | None, repair_left: float | None
    ) -> Generator[simpy.Event, Any, None]:
        """One failure mode of the store: positions out of use from each fault to its repair (calendar clock)."""
        env = self.env
        lost = mode.spec.positions or self.capacity
        emit = self.emitters.state
        while True:
            if repair_left is None:
                wait = ttf if ttf is not None else mode.ttf.draw()
                ttf = None
                self.fault_due[mode.name] = env.now + wait
                yield env.timeout(wait)
                repair_left = mode.ttr.draw()
            self.fault_due.pop(mode.name, None)
            self.out_of_use += lost
            self._limit_intake()
            self.faults[mode.name] = env.now + repair_left
            if emit is not None:
                emit(env.now, self.id, index, DOWN, mode.name)
            yield env.timeout(repair_left)
            repair_left = None
            del self.faults[mode.name]
            self.out_of_use -= lost
            if emit is not None:
                emit(env.now, self.id, index, WORKING, "")
            self._room_freed()

    def _intake(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        emit = self.emitters.loaded
        while True:
            free = self.capacity - self.out_of_use - self.occupancy
            if free <= 0:
                if not self.full:
                    self.full = True
                    self._report()
                self._room = env.event()
                yield self._room
                continue
            if self.full:
                self.full = False
                self._report()
            req = self.inlet.get(free, wait=True)
            assert req.event is not None
            self._intake_req = req
            units = int((yield req.event))
            self._intake_req = None
            if not units:  # withdrawn by a fault that took the free positions
                continue
            self._admit(units, env.now + self.dwell.draw())
            if emit is not None:
                emit(env.now, self.id, 0, units)
            self._report()
            if self._arrived is not None:
                ev, self._arrived = self._arrived, None
                ev.succeed()

    def _release(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        emit = self.emitters.completed
        while True:
            if not self.lots:
                self._arrived = env.event()
                yield self._arrived
                continue
            ready = self.lots[0][0]
            if ready > env.now:
                yield env.timeout(ready - env.now)
                continue
            ready, _seq, units = heapq.heappop(self.lots)
            bad = self.scrap.of(units)
            good = units - bad
            if emit is not None:
                emit(env.now, self.id, 0, good, bad)
            if bad:
                self.occupancy -= bad
                self._report()
            if good:
                put = self.outlet.put(good)
                if put.done:
                    self.occupancy -= good
                else:
                    assert put.event is not None
                    # units leave as the next buffer takes them: each frees its position at once
                    self.occupancy -= good - put.left
                    self.held = put.left
                    put.on_place = self._placed
                    self._releasing = put
                    self._report()
                    if put.left < good:
                        self._room_freed()
                    yield put.event
                    self._releasing = None
                    self.held = 0
                self._report()
            self._room_freed()

    def _limit_intake(self) -> None:
        """A fault took positions: the intake's pending request may not take more than the positions still free."""
        req = self._intake_req
        if req is None or req.done:
            return
        free = self.capacity - self.out_of_use - self.occupancy
        if free <= 0:
            self.inlet.cancel(req)
            req.done = True
            assert req.event is not None
            req.event.succeed(req.have)
        elif req.want > free:
            req.want = free

    def _placed(self, units: int) -> None:
        self.occupancy -= units
        self.held -= units
        self._report()
        self._room_freed()

    def _room_freed(self) -> None:
        if self._room is not None:
            ev, self._room = self._room, None
            ev.succeed()

    def snapshot(self) -> StationSnapshot:
        """This store now: its lots with their dwell left (a lot held at the exit has none left)."""
        now = self.env.now
        lots = [StoreLot(units=u, dwell_left_h=max(r - now, 0.0)) for r, _s, u in sorted(self.lots)]
        if self._releasing is not None and self._releasing.left:
            lots.insert(0, StoreLot(units=self._releasing.left, dwell_left_h=0.0))
        return StationSnapshot(
            lots=lots,
            faults={k: max(v - now, 0.0) for k, v in self.faults.items()},
            ttf_left_h={k: max(v - now, 0.0) for k, v in self.fault_due.items()},
        )
