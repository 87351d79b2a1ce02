"""Buffers between stations: counts of units with a capacity, blocking after service, FIFO service of machines.

A buffer holds fungible units (the line moves counts, not identities). Machines ask for units with
:meth:`Buffer.get` and hand finished units over with :meth:`Buffer.put`; requests are served first come,
first served. A capacity of 0 is a direct hand-off: a machine's finished units pass straight into a
waiting downstream machine, and the upstream machine stays BLOCKED until one takes them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy

__all__ = ["Buffer", "GetRequest", "PutRequest", "Sink", "Source"]

Emit = Callable[..., None]
"""An emitter of the fields of an event (see ``twin.engine.emitters``)."""


class GetRequest:
    """A machine's request for up to ``want`` units: ``done`` once filled, and then ``have`` is the number loaded.

    ``event`` (None when the request was filled at once) succeeds with the number loaded.
    """

    __slots__ = ("batch", "done", "event", "have", "timeout", "want")

    def __init__(self, event: simpy.Event | None, want: int, batch: bool, timeout: float | None, have: int) -> None:
        self.event = event
        self.want = want
        self.batch = batch
        self.timeout = timeout
        self.have = have
        self.done = False


class PutRequest:
    """A machine's hand-over of finished units: ``done`` when all ``left`` units are placed.

    ``event`` (None when the units were placed at once) succeeds when they are.
    """

    __slots__ = ("done", "event", "left", "on_place")

    def __init__(self, event: simpy.Event | None, left: int) -> None:
        self.event = event
        self.left = left
        self.done = left == 0
        self.on_place: Callable[[int], None] | None = None
        """Told how many units were placed each time some are (a store counts its units out as they leave)."""


_PLACED = PutRequest(None, 0)
"""What a hand-over placed at once returns: done, nothing left, no event (one object for all of them)."""


class Buffer:
    """The units waiting after station ``station``: ``capacity`` None is unbounded, 0 a direct hand-off."""

    def __init__(self, env: simpy.Environment, station: str, capacity: int | None, emit: Emit | None, level: int = 0) -> None:
        self.env = env
        self.station = station
        self.capacity = capacity
        self.level = level
        self._emit = emit
        self._getters: deque[GetRequest] = deque()
        self._putters: deque[PutRequest] = deque()
        self._watchers: list[tuple[int, simpy.Event]] = []

    @property
    def available(self) -> int:
        """Units a request could take now: those waiting here and those held by machines blocked on it."""
        if not self._putters:
            return self.level
        return self.level + sum(p.left for p in self._putters)

    def wait_for(self, units: int) -> simpy.Event:
        """An event that succeeds once :attr:`available` reaches ``units`` (a merge station waits on its inputs
        this way, taking from all of them at once when all have enough)."""
        event = self.env.event()
        if self.available >= units:
            return event.succeed()
        self._watchers.append((units, event))
        return event

    def _wake(self) -> None:
        available = self.available
        still = []
        for units, event in self._watchers:
            if available >= units:
                event.succeed()
            else:
                still.append((units, event))
        self._watchers = still

    def get(self, want: int, batch: bool = False, timeout: float | None = None, have: int = 0, wait: bool = False) -> GetRequest:
        """Ask for units: a unit request takes 1 to ``want`` as soon as any are there; a batch request
        fills up to ``want`` and starts early ``timeout`` hours after its first unit (never, if None).

        A request filled at once is ``done`` and has no event (unless ``wait``: the caller yields the event
        whatever happens, so it is made, and succeeds, as if the request had waited).
        """
        level = self.level
        if level and not wait and not self._getters and not self._putters and (not batch or level >= want - have):
            # the common case, filled at once from what is there: _settle's arithmetic without its loop
            take = want - have if want - have < level else level
            self.level = level - take
            req = GetRequest(None, want, batch, timeout, have + take)
            req.done = True
            if self._emit is not None:
                self._emit(self.env.now, self.station, self.level)
            return req
        # An event nobody waits on would still be scheduled and stepped by SimPy: most requests are
        # filled at once, so they get none.
        req = GetRequest(self.env.event() if wait else None, want, batch, timeout, have)
        self._getters.append(req)
        if have and batch and timeout is not None:
            self._arm(req)
        self._settle()
        if req.event is None and not req.done:
            req.event = self.env.event()
        return req

    def put(self, units: int) -> PutRequest:
        """Hand over ``units`` finished units: ``done`` if all are placed at once, else its event succeeds once they are."""
        cap = self.capacity
        if units and not self._getters and not self._putters and (cap is None or self.level + units <= cap):
            # the common case, room for all and nobody waiting: _settle's arithmetic without its loop
            self.level += units
            if self._emit is not None:
                self._emit(self.env.now, self.station, self.level)
            if self._watchers:
                self._wake()
            return _PLACED
        req = PutRequest(None, units)
        self._putters.append(req)
        self._settle()
        if not req.done:
            req.event = self.env.event()
        if self._watchers:
            self._wake()
        return req

    def cancel(self, req: GetRequest) -> int:
        """Withdraw a pending get; returns the units it had already loaded."""
        if not req.done:
            self._getters.remove(req)
        return req.have

    def _arm(self, req: GetRequest) -> None:
        assert req.timeout is not None
        self.env.timeout(req.timeout).callbacks.append(lambda _ev: self._expire(req))

    def _expire(self, req: GetRequest) -> None:
        if req.done or req not in self._getters:
            return
        self._getters.remove(req)
        req.done = True
        assert req.event is not None  # a request armed and not filled at once has its event
        req.event.succeed(req.have)
        self._settle()

    def _settle(self) -> None:
        before = self.level
        getters, putters, cap = self._getters, self._putters, self.capacity
        while True:
            if getters:
                g = getters[0]
                need = g.want - g.have
                take = 0
                if self.level > 0:
                    take = need if need < self.level else self.level
                    self.level -= take
                elif putters and cap == 0:
                    p = putters[0]
                    take = need if need < p.left else p.left
                    p.left -= take
                    if p.on_place is not None:
                        p.on_place(take)
                    if p.left == 0:
                        putters.popleft()
                        p.done = True
                        if p.event is not None:
                            p.event.succeed()
                if take:
                    first = g.have == 0
                    g.have += take
                    if g.have >= g.want:
                        getters.popleft()
                        g.done = True
                        if g.event is not None:
                            g.event.succeed(g.have)
                    elif first and g.batch and g.timeout is not None:
                        self._arm(g)
                    continue
            if putters and (cap is None or self.level < cap):
                p = putters[0]
                room = p.left if cap is None else min(p.left, cap - self.level)
                self.level += room
                p.left -= room
                if p.on_place is not None:
                    p.on_place(room)
                if p.left == 0:
                    putters.popleft()
                    p.done = True
                    if p.event is not None:
                        p.event.succeed()
                continue
            if getters and not getters[0].batch and getters[0].have:
                # a unit request takes everything there is now, up to its want, then starts
                g = getters.popleft()
                g.done = True
                if g.event is not None:
                    g.event.succeed(g.have)
                continue
            break
        if self._emit is not None and self.level != before:
            self._emit(self.env.now, self.station, self.level)


class Source:
    """Unlimited supply before the first station: every request is filled at once."""

    def __init__(self, env: simpy.Environment, released: Emit | None) -> None:
        self.env = env
        self.level = 0
        self.capacity: int | None = None
        self._released = released

    def get(self, want: int, batch: bool = False, timeout: float | None = None, have: int = 0, wait: bool = False) -> GetRequest:
        """Fill the request completely, now (the units enter the line); its event only if ``wait``."""
        req = GetRequest(None, want, batch, timeout, want)
        req.done = True
        if wait:
            req.event = self.env.event().succeed(want)
        if self._released is not None and want > have:
            self._released(self.env.now, want - have)
        return req

    def cancel(self, req: GetRequest) -> int:
        """Nothing to withdraw: requests are filled at once."""
        return req.have


class Sink:
    """Shipping after the last station: takes everything at once."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.level = 0
        self.capacity: int | None = None
        self.shipped = 0

    def put(self, units: int) -> PutRequest:
        """Ship ``units`` now (the request is done at once)."""
        self.shipped += units
        return _PLACED
