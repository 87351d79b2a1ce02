"""The live stream: state changes and KPI updates fanned out to every Server-Sent-Events client.

The hub is an observer of the ingest pipeline (its thread): it only appends state changes to a bounded deque,
which costs the pipeline nothing measurable. A task on the event loop (:meth:`StreamHub.run`) gathers them
every ``stream_period_s`` into one ``state`` message (the machines that changed, and the new summary of each
station they belong to) and every ``kpi_period_s`` sends a ``kpi`` message (the shift against plan, OEE and
its losses for the line and each station, buffer levels, counts, dead letters). Both read the live state's
latest published snapshot (``api.live``), never a lock. Each message is serialised once and queued for every
client.

A client that cannot keep up (its queue of ``client_queue`` messages is full) is not allowed to hold memory
or slow the others: its queue is emptied and a ``resync`` message tells it to fetch the status afresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from api.live import LiveSnapshot
from api.schemas import hours_to_iso
from api.views import oee_out, station_out
from twin.events import Event, StateChanged, StoreOccupancy
from twin.schema import Line

__all__ = ["Changes", "SnapshotSource", "StreamClient", "StreamHub", "StreamMessage"]

log = logging.getLogger("gigatwin.stream")

StreamMessage = tuple[int, str, str]
"""(id, event name, JSON data)."""

CLOSED: StreamMessage = (0, "", "")
"""Put in a client's queue when the service shuts down: the stream ends (the browser reconnects when it is back)."""

_MAX_CHANGES = 500  # machine changes listed per message; the station summaries always say where things stand


_iso = hours_to_iso


class SnapshotSource(Protocol):
    """Where the hub reads the live state: anything with the latest published snapshot."""

    @property
    def snapshot(self) -> LiveSnapshot:
        """The latest published snapshot."""
        ...


Changes = tuple[list[StateChanged], int, frozenset[str]]
"""State changes as :meth:`StreamHub.drain` hands them over: the first (up to a bound), how many more, and every
station a change or an occupancy touched."""


class StreamClient:
    """One subscriber's queue of messages."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[StreamMessage] = asyncio.Queue(maxsize=size)
        self.resyncs = 0


class StreamHub:
    """Collects state changes from the pipeline and broadcasts ``state``, ``kpi`` and ``resync`` messages."""

    def __init__(
        self,
        line: Line,
        live: SnapshotSource,
        *,
        extra: Callable[[], dict[str, Any]] | None = None,
        max_pending: int = 100_000,
        client_queue: int = 64,
    ) -> None:
        self.line = line
        self.live = live
        self.extra = extra
        """More fields for every ``kpi`` message (dead letters, ingest counters)."""
        self.client_queue = client_queue
        self._pending: deque[Event] = deque(maxlen=max_pending)
        self._clients: set[StreamClient] = set()
        self._seq = 0
        self._recheck: set[str] = set()
        self._recheck_version = 0
        self._more = 0  # changes taken (take()) beyond those listed, and the stations they touched
        self._touched: set[str] = set()
        self.sent = 0
        self.overflowed = 0
        """State changes dropped because the loop fell behind by more than ``max_pending``."""

    # -- the pipeline thread --------------------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        """Take an event (an ingest observer): state changes and store occupancy are kept for the next message."""
        if type(event) is StateChanged or type(event) is StoreOccupancy:
            pending = self._pending
            if len(pending) == pending.maxlen:
                self.overflowed += 1
            pending.append(event)  # deque.append is atomic: no lock needed against the loop's popleft

    def drain(self, max_changes: int = _MAX_CHANGES) -> Changes:
        """Take what was gathered, to hand to another process's hub (:meth:`take`): the first ``max_changes`` state
        changes, the count of the others, and the stations touched. Bounded, so a flood of changes costs the receiver
        a bounded message."""
        pending = self._pending
        listed: list[StateChanged] = []
        stations: set[str] = set()
        more = 0
        while pending:
            ev = pending.popleft()
            assert isinstance(ev, StateChanged | StoreOccupancy)  # the only kinds __call__ keeps
            stations.add(ev.station)
            if type(ev) is StateChanged:
                if len(listed) < max_changes:
                    listed.append(ev)
                else:
                    more += 1
        return listed, more, frozenset(stations)

    def take(self, changes: Changes) -> None:
        """Gather changes drained from another process's hub (:meth:`drain`), for the next message."""
        listed, more, stations = changes
        if not (listed or more or stations):
            return
        for event in listed:
            self(event)
        self._more += more
        self._touched |= stations

    # -- clients ------------------------------------------------------------------------------------------------
    @property
    def clients(self) -> int:
        """Clients connected now."""
        return len(self._clients)

    @property
    def pending(self) -> int:
        """State changes waiting for the next message."""
        return len(self._pending)

    def subscribe(self) -> StreamClient:
        """A new client's queue; pass it to :meth:`unsubscribe` when the client goes."""
        client = StreamClient(self.client_queue)
        self._clients.add(client)
        return client

    def unsubscribe(self, client: StreamClient) -> None:
        """Forget a client."""
        self._clients.discard(client)

    def broadcast(self, event: str, data: dict[str, Any]) -> None:
        """Queue one message for every client (a full queue is emptied and told to resync)."""
        if not self._clients:
            return
        self._seq += 1
        message = (self._seq, event, json.dumps(data, separators=(",", ":"), default=str))
        for client in self._clients:
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                while not client.queue.empty():
                    client.queue.get_nowait()
                client.resyncs += 1
                client.queue.put_nowait((self._seq, "resync", '{"reason":"the client fell behind"}'))
        self.sent += 1

    def close(self) -> None:
        """End every client's stream (the service is shutting down)."""
        for client in list(self._clients):
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(CLOSED)

    # -- the event loop --------------------------------------------------------------------------------------------
    def state_message(self) -> dict[str, Any] | None:
        """The state changes gathered since the last call, with the new summaries of their stations (None: none)."""
        pending = self._pending
        snapshot = self.live.snapshot  # the latest published snapshot: no lock
        # Stations changed by events the pipeline handed on before its last snapshot was published may show their old
        # summary; they are sent again once a newer snapshot (which has those events) is out.
        recheck = self._recheck if self._recheck and snapshot.version > self._recheck_version else set()
        if not pending and not recheck and not self._touched:
            return None
        changes: list[dict[str, Any]] = []
        stations, more = self._touched, self._more
        self._touched, self._more = set(), 0
        while pending:
            ev = pending.popleft()
            assert isinstance(ev, StateChanged | StoreOccupancy)  # the only kinds __call__ keeps
            stations.add(ev.station)
            if type(ev) is StateChanged:
                if len(changes) < _MAX_CHANGES:
                    changes.append(
                        {
                            "t": _iso(ev.t),
                            "station": ev.station,
                            "machine": ev.machine,
                            "state": ev.state.value,
                            "reason": ev.reason,
                        }
                    )
                else:
                    more += 1

        if recheck:
            self._recheck = set()
        self._recheck |= stations
        self._recheck_version = snapshot.version
        stations |= recheck
        status = snapshot.status
        return {
            "now": None if status.clock_h is None else _iso(status.clock_h),
            "changes": changes,
            "more_changes": more,
            "stations": {
                sid: station_out(st).model_dump(mode="json", exclude={"machines", "process_values"})
                for sid, st in status.stations.items()
                if sid in stations
            },
        }

    def kpi_message(self) -> dict[str, Any]:
        """The shift against plan, OEE with its losses, counts and levels now."""

        def build(snapshot: LiveSnapshot) -> dict[str, Any]:
            status = snapshot.status
            kpis = snapshot.shift_kpis
            shift = status.shift
            return {
                "now": None if status.clock_h is None else _iso(status.clock_h),
                "shift": None
                if shift is None
                else {
                    "start": _iso(shift.start_h),
                    "end": _iso(shift.end_h),
                    "good": shift.good,
                    "plan": shift.plan,
                    "attainment": shift.good / shift.plan if shift.plan > 0 else None,
                },
                "plan_per_hour": snapshot.plan_per_hour,
                "good": status.good,
                "scrapped": status.scrapped,
                "wip": status.wip,
                "oee": None if kpis is None else oee_out(self.line, kpis).model_dump(mode="json"),
                "buffers": {sid: st.buffer_level for sid, st in status.stations.items() if st.buffer_level is not None},
            }

        data = build(self.live.snapshot)  # the latest published snapshot: no lock, no replay
        if self.extra is not None:
            data.update(self.extra())
        return data

    async def run(self, stream_period_s: float, kpi_period_s: float) -> None:
        """Send ``state`` messages every ``stream_period_s`` and ``kpi`` messages every ``kpi_period_s``, until cancelled."""
        loop = asyncio.get_running_loop()
        next_kpi = loop.time()
        while True:
            try:
                if self._clients:
                    state = self.state_message()
                    if state is not None:
                        self.broadcast("state", state)
                    if loop.time() >= next_kpi:
                        next_kpi = loop.time() + kpi_period_s
                        self.broadcast("kpi", self.kpi_message())
                else:
                    self._pending.clear()  # nobody listens: a newcomer starts from the status anyway
                    self._touched, self._more = set(), 0
            except Exception:
                log.exception("the live stream could not build a message")
            await asyncio.sleep(stream_period_s)
